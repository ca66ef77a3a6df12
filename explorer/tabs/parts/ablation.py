"""Turn heads off from the attention tab: the selected head, its layer, or every head of its kind.

The visitor's own small gr.State holds what is turned off (an interventions.Ablation: (layer,
head) pairs and a mode, at most every head of the model), so the before/after panel stays
until Clear is pressed: choosing another head and pressing "Turn off" adds it to the set, and
a new prompt runs the same set when the Attention tab is built for it (`Ablation.rebuild`, called
by the tab's `show`: no event of its own, so an Analyze with nothing turned off costs nothing here).
One ablation is one forward pass without capture (interventions.run_ablation), compared with the
analysis the budget already keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from ... import interventions, model_runs, panels, plots
from .controls import Dropdown
from .shared import Shared, user_errors

NOTHING_OFF = "Nothing is turned off. Choose a head above, then press **Turn off**."


def _fitting(ablation: interventions.Ablation | None, config) -> interventions.Ablation | None:
    """The part of a kept ablation that exists in this model (a new Analyze may use a smaller one)."""
    if ablation is None:
        return None
    heads = [(l, h) for l, h in ablation.heads if l < config.n_layer and h < config.n_head]
    return interventions.make_ablation(config, heads, mode=ablation.mode) if heads else None


@dataclass
class Ablation:
    """The panel's state (what is turned off), every component a rebuild may fill, and the rebuild."""

    state: gr.State
    outputs: list
    rebuild: Callable  # (analysis, loaded, ablation) -> dict: the kept heads run on this analysis


def build_ablation(shared: Shared, layer, head) -> Ablation:
    """The ablation panel, under the attention tab's head sliders (`layer`, `head`). The tab's `show` calls
    `rebuild` with the visitor's state, so a new prompt runs the heads that are turned off."""
    with gr.Accordion("Experiment: turn heads off (ablation)", open=True):
        gr.Markdown("Remove what heads write (their slice of z before c_proj) and run the prompt again. "
                    "“All heads of this kind” takes every head with the selected head's label.")
        with gr.Row(equal_height=True):
            scope = Dropdown(list(interventions.SCOPES), value=interventions.SCOPES[0], label="Turn off")
            mode = Dropdown(list(interventions.MODES), value="zero", label="Replace their output with",
                            info="zero, or its mean over the positions up to each token")
            turn_off = gr.Button("Turn off", variant="primary", elem_id="ablation-turn-off")
            clear = gr.Button("Clear", elem_id="ablation-clear")
        summary = gr.Markdown(NOTHING_OFF, label="Ablation explained", elem_id="ablation-summary")
        # The three figures show only while something is turned off: empty, they were a screen of blank plots.
        with gr.Column(visible=False, elem_id="ablation-figures") as comparison:
            with gr.Row():
                bars = gr.Plot(label="Ablation before and after", show_label=False, elem_id="ablation-bars")
                moved = gr.Plot(label="Ablation moved most", show_label=False)
            surprise = gr.Plot(label="Ablation surprise", show_label=False)
    turned_off = gr.State(None, time_to_live=1800)  # an interventions.Ablation, or None
    figures = [summary, comparison, bars, moved, surprise]

    def panel(analysis, loaded, ablation) -> dict:
        if ablation is None:
            blank = plots.empty_figure("Turn a head off to compare.")
            return {summary: NOTHING_OFF, comparison: gr.Column(visible=False), bars: blank, moved: blank,
                    surprise: blank, turned_off: None}
        ids = analysis.trace.token_ids.tolist()
        result = shared.run(model_runs.ablation, loaded.name, ids, ablation.heads, ablation.mode,
                            seconds=model_runs.gpu_seconds(shared.store, loaded.name, len(ids), passes=2))
        shown = panels.ablation_figures(analysis, result)
        return {summary: panels.ablation_text(analysis, result), comparison: gr.Column(visible=True),
                bars: shown["bars"], moved: shown["moved"], surprise: shown["surprise"], turned_off: ablation}

    @user_errors
    def add(handle, layer_index, head_index, scope_name, mode_name, ablation) -> dict:
        analysis, loaded = shared.analysis_of(handle)
        layer_index, head_index = panels.check_head(analysis, layer_index, head_index)
        heads = interventions.heads_in_scope(analysis.scores.labels(), scope_name, layer_index, head_index)
        kept = _fitting(ablation, analysis.trace.config)
        heads = list(kept.heads if kept else ()) + heads
        return panel(analysis, loaded, interventions.make_ablation(analysis.trace.config, heads, mode=mode_name))

    def rebuild(analysis, loaded, ablation) -> dict:  # a new analysis: the same heads on the new prompt
        if not isinstance(ablation, interventions.Ablation):
            return {}  # nothing is turned off: the panel stays as it is
        return panel(analysis, loaded, _fitting(ablation, analysis.trace.config))

    turn_off.click(add, inputs=[shared.analysis, layer, head, scope, mode, turned_off],
                   outputs=[*figures, turned_off], api_name="ablate", api_visibility="undocumented")
    clear.click(lambda: panel(None, None, None), outputs=[*figures, turned_off], api_name="clear_ablation",
                api_visibility="undocumented", queue=False)
    return Ablation(turned_off, [*figures, turned_off], rebuild)
