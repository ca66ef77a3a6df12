"""Layers tab: the residual stream's size layer by layer, what each block adds, and the logit lens."""

from __future__ import annotations

import dataclasses

import gradio as gr

from .. import panels
from ..analysis import LENS_POSITIONS, MAX_LENS_POSITIONS
from .parts.code_view import code_view
from .parts.controls import Slider, explanation, opened
from .parts.shared import Shared, Tab, View, user_errors


def build(shared: Shared) -> Tab:
    with gr.Tab("Layers", id="layers"):
        with gr.Row():
            residual = gr.Plot(label="Residual norms", show_label=False)
            contributions = gr.Plot(label="Block contributions", show_label=False)
        lens_positions = Slider(1, MAX_LENS_POSITIONS, value=LENS_POSITIONS, step=1,
                                label="Logit lens: how many of the last positions to show")
        lens = gr.Plot(label="Logit lens", show_label=False, elem_id="logit-lens")
        text = explanation("Layers explained")
        code = code_view("layers")

    def show(view: View) -> dict:
        analysis = shared.lens_for(view.analysis, view.values["lens_positions"])  # made after Analyze, or now
        resid, contrib, lens_grid = panels.layer_figures(analysis)
        return {residual: resid, contributions: contrib, lens: lens_grid, text: panels.layers_text(analysis)}

    @user_errors
    def relens(handle, n_positions) -> dict:
        analysis, loaded = shared.analysis_of(handle)
        analysis = shared.relens(analysis, n_positions)  # onto the whole vocabulary: a model-sized job
        shared.remember(handle)
        handle = dataclasses.replace(handle, lens_positions=n_positions)  # a recomputation keeps this window
        return {lens: panels.layer_figures(analysis)[2], text: panels.layers_text(analysis), shared.analysis: handle}

    lens_positions.input(relens, inputs=[shared.analysis, lens_positions], outputs=[lens, text, shared.analysis],
                         api_name="lens", api_visibility="undocumented", trigger_mode="always_last")
    def story(view: View, explanation_name: str) -> dict:  # the card's lens window, recomputed if it differs
        n_positions = view.values.get("lens_positions", LENS_POSITIONS)
        return opened(text) | show(View(view.analysis, view.loaded, {**view.values, "lens_positions": n_positions})) | {
            lens_positions: n_positions}

    return Tab(show=show, outputs=[residual, contributions, lens, text], inputs={"lens_positions": lens_positions},
               code=code, story=story, story_keys=frozenset({"lens_positions"}),
               story_outputs=[lens_positions, text.accordion])
