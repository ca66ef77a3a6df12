"""Build only what the learner looks at: the open tab's panels, and another tab's when it is opened.

Analyze runs the prompt once (the forward pass and the statistics every view needs) and then
builds and sends the panels of the open tab only. Each other tab is built the first time it is
opened for that analysis. The page keeps what it was sent, so opening a tab again sends nothing
and is instant.

What the page holds is recorded in a small per-visitor gr.State, `shown`:
{"analysis": serial, "tabs": [tab ids]}, the tabs whose panels belong to the analysis with that
serial (AnalysisHandle.serial, new at each Analyze). A tab opened while an Analyze was still
running is built for the old analysis; Analyze's follow-up (ui.py's `follow_up`, through `catch_up`)
sees the serial changed and builds the open tab again for the new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr

from ...budget import AnalysisHandle
from .shared import Shared, Tab, View, user_errors

NOTHING_SHOWN = {"analysis": None, "tabs": []}


def is_fresh(handle, shown, tab_id: str) -> bool:
    """Whether the page's panels of `tab_id` already show the analysis behind `handle`."""
    shown = shown or NOTHING_SHOWN
    return (isinstance(handle, AnalysisHandle) and shown["analysis"] == handle.serial
            and tab_id in shown["tabs"])


def marked(handle: AnalysisHandle, shown, *tab_ids: str) -> dict:
    """`shown` once the panels of `tab_ids` for `handle`'s analysis are on their way to the page."""
    shown = shown or NOTHING_SHOWN
    kept = shown["tabs"] if shown["analysis"] == handle.serial else []
    return {"analysis": handle.serial, "tabs": sorted(set(kept) | set(tab_ids))}


@dataclass
class OpenTabs:
    """The tabs by id, the visitor's open tab and what the page shows, and how to build one tab."""

    shared: Shared
    tabs: dict[str, Tab]
    open_tab: gr.State  # the id of the tab the visitor has open
    shown: gr.State  # see the module's docstring
    values: dict = field(default_factory=dict)  # every tab's inputs by name: what `show` reads as view.values
    strip: gr.Tabs | None = None  # the tab strip, once `connect` has seen it

    def outputs_of(self, tab_id: str) -> list:
        """Every component building `tab_id` may fill: its panels and its code box."""
        tab = self.tabs[tab_id]
        return [*tab.outputs, *([tab.code.markdown] if tab.code is not None else [])]

    @property
    def outputs(self) -> list:
        return list(dict.fromkeys(c for tab_id in self.tabs for c in self.outputs_of(tab_id)))

    def cleared(self, keep: str) -> dict:
        """Every other tab's figures emptied, for a new analysis: a tab opened later shows an empty plot
        until its own arrive, never the last prompt's, and the browser does not draw figures that are
        about to be replaced. (Texts stay: they cost nothing to draw and are replaced with the figures.)"""
        return {c: None for tab_id in self.tabs if tab_id != keep for c in self.outputs_of(tab_id)
                if isinstance(c, gr.Plot)}

    def panels(self, tab_id: str, view: View) -> dict:
        """The panels and code box of one tab for this analysis and these control values."""
        tab = self.tabs[tab_id]
        result = tab.show(view) if tab.show is not None else {}
        return result | (tab.code.show(view) if tab.code is not None else {})

    def build(self, tab_id: str, handle, shown, values: dict) -> dict:
        """What opening `tab_id` sends: nothing when the page already shows it for this analysis,
        else its panels built from the kept analysis (no forward pass unless the budget dropped it)."""
        result = {self.open_tab: tab_id}
        if not isinstance(handle, AnalysisHandle) or is_fresh(handle, shown, tab_id):
            return result
        analysis, loaded = self.shared.analysis_of(handle)
        result |= self.panels(tab_id, View(analysis, loaded, values))
        self.shared.remember(handle)  # a view may have cached something on the analysis (e.g. the surprise)
        return result | {self.shown: marked(handle, shown, tab_id)}

    def go_to(self, tab_id: str, handle, shown, values: dict, controls: dict) -> dict:
        """Select `tab_id` with some of its controls set (e.g. {"layer": 3, "head": 1}): the tab is built
        first if the page does not show it for this analysis, then its `story` sets the controls and
        redraws what they change."""
        analysis, loaded = self.shared.analysis_of(handle)
        result = {self.strip: gr.Tabs(selected=tab_id), self.open_tab: tab_id}
        if not is_fresh(handle, shown, tab_id):
            result |= self.panels(tab_id, View(analysis, loaded, {**values, **controls}))
            result |= {self.shown: marked(handle, shown, tab_id)}
        result |= self.tabs[tab_id].story(View(analysis, loaded, controls), "")
        self.shared.remember(handle)
        return result

    def go_to_outputs(self, tab_id: str) -> list:
        tab = self.tabs[tab_id]
        return list(dict.fromkeys([self.strip, self.open_tab, self.shown, *self.outputs_of(tab_id),
                                   *tab.story_outputs]))

    def connect(self, tab_strip: gr.Tabs) -> None:
        """Build a tab when the visitor opens it; keep the open tab's id for Analyze."""
        self.strip = tab_strip
        for child in tab_strip.children:
            if isinstance(child, gr.Tab) and child.id in self.tabs:
                self._connect_tab(child)

    def _connect_tab(self, tab: gr.Tab) -> None:
        @user_errors
        def opened(handle, shown, **values) -> dict:
            return self.build(tab.id, handle, shown, values)

        tab.select(opened, inputs=[self.shared.analysis, self.shown], inputs_kwargs=self.values,
                   outputs=[self.open_tab, self.shown, *self.outputs_of(tab.id)], api_name=f"open_tab_{tab.id}",
                   api_visibility="undocumented", queue=self.shared.queue_views, show_progress="minimal")

    def catch_up(self, handle, shown, tab_id, values: dict) -> dict:
        """After Analyze: build the open tab if the visitor opened another one while it ran."""
        if not isinstance(handle, AnalysisHandle) or tab_id not in self.tabs:
            return {}
        return self.build(tab_id, handle, shown, values)
