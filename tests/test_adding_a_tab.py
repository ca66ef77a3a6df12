"""Adding a tab is one module with `build(shared) -> Tab` and one line in ui.TABS: a throwaway tab proves it."""

from __future__ import annotations

import types

import gradio as gr
import pytest

from explorer import ui
from explorer.budget import AnalysisBudget
from explorer.store import ModelStore
from explorer.tabs import Shared, Tab, View
from explorer.tabs.parts.controls import Slider


def make_tab_module(name: str, input_name: str) -> types.ModuleType:
    """A tab module as a newcomer would write it: a slider Analyze reads and a text that shows the prompt's length."""
    module = types.ModuleType(f"explorer.tabs.{name}")

    def build(shared: Shared) -> Tab:
        with gr.Tab(name.title(), id=name):
            window = Slider(1, 10, value=3, step=1, label=f"{name} window")
            text = gr.Markdown(label=f"{name} text")

        def show(view: View) -> dict:
            return {text: f"{view.analysis.trace.n_tokens} tokens, window {view.values[input_name]}"}
        return Tab(show=show, outputs=[text], inputs={input_name: window})
    module.build = build
    return module


class Request:
    session_hash = "adding-a-tab"


def test_a_new_tab_module_gets_its_input_and_fills_its_output_when_open(tiny_checkpoint_dir):
    store = ModelStore(tiny_checkpoint_dir)
    tabs = (*ui.TABS, make_tab_module("counts", "counts_window"))
    app = ui.build_app(store, budget=AnalysisBudget(2**30), tabs_in_order=tabs)
    analyze = next(fn.fn for fn in app.fns.values() if fn.api_name == "analyze")
    values = {key: c.value for tab in app.explorer_tabs.values() for key, c in tab.inputs.items()}
    values["counts_window"] = 7
    off_story = {"index": 0, "on": False}
    text = next(component for component in app.explorer_tabs["counts"].outputs)
    n_tokens = len(store.get(store.default).tokenizer.encode("one two three"))
    result = analyze("one two three", store.default, None, off_story, "counts", Request(), **values)
    assert result[text] == f"{n_tokens} tokens, window 7"  # Analyze builds the open tab
    # With another tab open, Analyze leaves it alone; opening it builds it from the kept analysis.
    result = analyze("one two three", store.default, None, off_story, "tokens", Request(), **values)
    assert text not in result
    handle, shown = result[app.explorer_open_tabs.shared.analysis], result[app.explorer_open_tabs.shown]
    opened = app.explorer_open_tabs.build("counts", handle, shown, values)
    assert opened[text] == f"{n_tokens} tokens, window 7"


def test_two_tabs_publishing_one_input_name_are_refused_at_build(tiny_checkpoint_dir):
    store = ModelStore(tiny_checkpoint_dir)
    tabs = (*ui.TABS, make_tab_module("first", "window"), make_tab_module("second", "window"))
    with pytest.raises(ValueError, match="'first' and 'second' both publish the input 'window'"):
        ui.build_app(store, tabs_in_order=tabs)
