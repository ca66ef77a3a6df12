"""Compare tab: the prompt on two models side by side (explorer/compare.py does the work).

Both models come from the store (its allow-list, its limit on models in memory). A comparison
is two captures, one at a time in the compute slot, each with room made for it in the analysis
budget first; only their small results (top tokens, surprise, head labels) are kept and shown,
never the traces, so the comparison holds no more memory than one Analyze while it runs and
almost none afterwards.
"""

from __future__ import annotations

import gradio as gr

from .. import panels
from ..analysis import analysis_bytes
from .. import model_runs
from ..store import SNAPSHOT_MARK
from .. import teaching
from .parts.controls import Dropdown, explanation, opened
from .parts.shared import Shared, Tab, View, user_errors


def default_pair(store) -> tuple[str, str]:
    """Model A is the app's first model; B another model that can be loaded now, else A's own snapshot from
    just before its heads formed (the shipped model alone, offline), else A's first snapshot."""
    choices = store.compare_choices()
    first = choices[0]
    others = [name for name in choices if name != first and SNAPSHOT_MARK not in name]
    if others:
        return first, others[0]
    return first, store.before_heads_formed(first) or next((c for c in choices if c != first), first)


def build(shared: Shared) -> Tab:
    choices = shared.store.compare_choices()
    model_a_default, model_b_default = default_pair(shared.store)
    with gr.Tab("Compare", id="compare"):
        gr.Markdown("The prompt above on two models: what each predicts next, how surprised each is by every "
                    "token, and what kinds of head each has.")
        with gr.Row(equal_height=True):
            model_a = Dropdown(choices, value=model_a_default, label="Model A")
            model_b = Dropdown(choices, value=model_b_default, label="Model B")
            run = gr.Button("Compare", variant="primary", elem_id="compare-run")
        text = gr.Markdown("Press Compare to run the prompt on both models.", label="Comparison explained",
                           elem_id="compare-text")
        sides = {}
        with gr.Row(visible=False, elem_id="compare-figures") as figures_row:  # shown once a comparison ran
            for key in ("a", "b"):
                with gr.Column(min_width=320):
                    sides[key] = {name: gr.Plot(label=f"Compare {key.upper()} {name}", show_label=False,
                                                elem_id=f"compare-{key}-{name}")
                                  for name in ("bars", "surprise", "heads")}
        explained = explanation("Compare explained")
    plots_out = [plot for side in sides.values() for plot in side.values()]

    def reading(loaded) -> str:
        own = shared.store.before_heads_formed(loaded.name) if shared.store.folder(loaded.name) else None
        return teaching.render("compare", when={"own_snapshot": bool(own) and model_b_default == own},
                               model_b=model_b_default)

    def show(view: View) -> dict:
        return {explained: reading(view.loaded)}

    def story(view: View, explanation_name: str) -> dict:  # the card sets nothing: the learner presses Compare
        return show(view) | opened(explained)

    @user_errors
    def run_comparison(prompt, name_a, name_b, progress=gr.Progress()) -> dict:
        loaded_a, loaded_b = (shared.store.compare_model(name) if SNAPSHOT_MARK in name else shared.load(name, progress)
                              for name in (name_a, name_b))
        n_tokens = max(min(len(m.tokenizer.encode(prompt)), m.model.config.n_ctx) for m in (loaded_a, loaded_b))
        configs = (loaded_a.model.config, loaded_b.model.config)
        shared.budget.make_room(max(analysis_bytes(c, n_tokens) for c in configs))  # one trace at a time
        comparison = shared.run(model_runs.comparison, loaded_a.name, loaded_b.name, prompt,
                                seconds=model_runs.gpu_seconds(shared.store, (loaded_a.name, loaded_b.name), n_tokens,
                                                               passes=2))
        figures = panels.comparison_figures(comparison)
        return {text: panels.comparison_text(comparison), figures_row: gr.Row(visible=True)} | {
            sides[key][name]: figure for key, by_name in figures.items() for name, figure in by_name.items()}

    run.click(run_comparison, inputs=[shared.prompt, model_a, model_b], outputs=[text, *plots_out, figures_row],
              api_name="compare", api_visibility="undocumented")
    return Tab(show=show, outputs=[explained], story=story, story_outputs=[explained.accordion])
