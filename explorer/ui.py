"""The GPT-2 Explorer app: assembles the tabs (explorer/tabs/), the shared state and the queue settings.

Each tab's module lays out its own components and wires its own events (see tabs/__init__.py
for the pattern). This module holds what they share: the prompt and model controls, the
visitor's analysis handle, and Analyze, which runs the prompt once and hands the fresh
analysis to every tab's `show`.

Memory: every visitor's analysis lives in one byte budget (explorer/budget.py); the visitor's
gr.State holds only a handle. The handle is dropped from the budget when its session ends
(`unload`, when the page is closed) or its state expires.

Public API endpoints: `analyze` (prompt -> every panel) and `generate` (streams text).
Slider redraws and step mode are `undocumented`: callable by the page, not listed.
"""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from . import panels, validation
from .budget import AnalysisBudget, AnalysisHandle
from .models import ModelStore
from .tabs import Shared, View, attention, compare, embeddings, generate, layers, next_token, tokens, user_errors
from .tabs.controls import Dropdown, Textbox, checked
from .tabs.handout import build_handout

ASSETS = Path(__file__).resolve().parent.parent / "assets"
EXAMPLES = json.loads((ASSETS / "examples.json").read_text(encoding="utf-8"))
CSS = (ASSETS / "style.css").read_text(encoding="utf-8")
# The tabs in page order. A tab may read controls published by a tab before it (Generate uses Next token's).
TABS = (tokens, embeddings, attention, layers, next_token, generate, compare)
STATE_SECONDS = 1800  # an abandoned session's handle (and with it its analysis) is dropped after this


def build_app(store: ModelStore, default: str | None = None, budget: AnalysisBudget | None = None) -> gr.Blocks:
    budget = budget or AnalysisBudget(2**30)
    with gr.Blocks(title="GPT-2 Explorer", analytics_enabled=False) as app:
        gr.Markdown("# GPT-2 Explorer\nType a prompt and look inside GPT-2: its tokens, embeddings, every "
                    "attention head, the residual stream layer by layer, and the next-token distribution.")
        analysis_state = gr.State(None, time_to_live=STATE_SECONDS,
                                  delete_callback=lambda handle: handle is not None and budget.drop(handle.key))
        with gr.Row(equal_height=True):
            prompt = checked(Textbox(label="Prompt", value=EXAMPLES[0]["prompt"], lines=3,
                                     max_length=validation.MAX_PROMPT_CHARS, scale=5), validation.prompt)
            with gr.Column(scale=1, min_width=200):
                model_name = Dropdown(store.choices, value=default or store.default, label="Model")
                analyze_button = gr.Button("Analyze", variant="primary")
        gr.Examples([[e["prompt"]] for e in EXAMPLES], inputs=[prompt], label="Example prompts", examples_per_page=9)
        status = gr.Markdown("Loading…", label="Status", elem_id="status")

        shared = Shared(store, budget, prompt, model_name, analysis_state)
        build_handout(shared)
        with gr.Tabs():
            tabs = []
            for module in TABS:
                tab = module.build(shared)
                shared.controls.update(tab.controls)
                tabs.append(tab)

        @user_errors
        def analyze(prompt, model_name, handle, request: gr.Request, progress=gr.Progress(), **values):
            loaded = shared.load(model_name, progress)
            # The visitor's key is reused, so a new prompt replaces their old analysis in the budget.
            key = handle.key if isinstance(handle, AnalysisHandle) else budget.new_key(request.session_hash)
            budget.drop(key)
            n_tokens = min(len(loaded.tokenizer.encode(prompt)), loaded.model.config.n_ctx)
            budget.make_room(panels.analysis_bytes(loaded.model.config, n_tokens))
            with shared.compute():
                analysis = panels.analyze(loaded, prompt, values["lens_positions"])
            budget.put(key, analysis)
            handle = AnalysisHandle(key, loaded.name, prompt, values["lens_positions"])
            view = View(analysis, loaded, values)
            result = {status: panels.status_line(loaded, analysis), analysis_state: handle}
            for tab in tabs:
                if tab.show is not None:
                    result |= tab.show(view)
            budget.remeasure(key)  # figures' caches (e.g. the overview tiles) were made by the tabs
            return result

        gr.on([analyze_button.click, prompt.submit], analyze, inputs=[prompt, model_name, analysis_state],
              inputs_kwargs={name: c for tab in tabs for name, c in tab.inputs.items()},
              outputs=[status, analysis_state, *(c for tab in tabs for c in tab.outputs)], api_name="analyze")
        app.load(user_errors(lambda name: panels.status_line(store.get(name))), inputs=[model_name],
                 outputs=[status], api_visibility="private")

        def forget(request: gr.Request):  # the page was closed: its analyses go now, not when the state expires
            if request.session_hash:
                budget.drop_session(request.session_hash)
        app.unload(forget)
    return app


def launch_options() -> dict:
    """Arguments for `app.launch` that the Blocks need (Gradio 6 takes CSS at launch)."""
    return {"css": CSS, "theme": gr.themes.Soft(), "show_error": False}
