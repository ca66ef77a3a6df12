"""Inside a block tab: one block opened at one position, its LayerNorm and its MLP neuron by neuron."""

from __future__ import annotations

import gradio as gr

from .. import plots
from ..block import block_text, open_block
from .parts.code_view import code_view
from .parts.controls import Slider, explanation, index_slider_update, opened
from .parts.shared import Shared, Tab, View, user_errors

LEAD = ("The **residual stream** is one vector per position (d_model numbers) that runs from the embeddings "
        "to the output; every block reads it and *adds* its result to it. A block adds twice: "
        "**attention moves information between positions**; **the MLP works on each position alone**.")


def build(shared: Shared) -> Tab:
    with gr.Tab("Inside a block", id="block"):
        gr.Markdown(LEAD)
        with gr.Row():
            layer = Slider(0, 11, value=0, step=1, label="Block (layer)", elem_id="block-layer")
            position = Slider(0, 1023, value=1023, step=1, label="Position")
        layer_norm = gr.Plot(label="LayerNorm before and after", show_label=False, elem_id="block-layer-norm")
        gelu = gr.Plot(label="MLP neurons on the GELU curve", show_label=False, elem_id="block-gelu")
        text = explanation("Block explained", open=True)
        code = code_view("block")

    def figures(analysis, loaded, layer_index, position_index) -> dict:
        trace = analysis.trace
        view = open_block(loaded.view_model, trace, layer_index, position_index)
        where = f"block {view.layer}, position {view.position} ({trace.tokens[view.position]})"
        return {
            layer_norm: plots.layer_norm_before_after(view.ln_1.input, view.ln_1.output, f"LN₁ of {where}"),
            gelu: plots.gelu_curve(view.mlp_pre, view.mlp_post, view.top_neurons, f"MLP neurons of {where}"),
            text: block_text(view, trace.tokens[view.position]),
        }

    def set_controls(view: View, layer_index: int, position_index: int, sent_layer: int | None = None) -> dict:
        trace = view.analysis.trace
        layer_index = min(max(int(layer_index), 0), trace.config.n_layer - 1)
        position_index = min(max(int(position_index), 0), trace.n_tokens - 1)
        return figures(view.analysis, view.loaded, layer_index, position_index) | {
            layer: index_slider_update(trace.config.n_layer, layer_index, sent=sent_layer),
            position: index_slider_update(trace.n_tokens, position_index)}

    def show(view: View) -> dict:
        sent = view.values.get("block_layer", 0)
        return set_controls(view, sent, view.analysis.trace.n_tokens - 1, sent_layer=sent)

    def story(view: View, explanation_name: str) -> dict:
        trace = view.analysis.trace
        controls = view.values
        return set_controls(view, controls.get("layer", 0), controls.get("position", trace.n_tokens - 1)) | opened(text)

    @user_errors
    def redraw(handle, layer_index, position_index) -> dict:
        analysis, loaded = shared.analysis_of(handle)
        return figures(analysis, loaded, layer_index, position_index)

    gr.on([layer.input, position.input], redraw, inputs=[shared.analysis, layer, position],
          outputs=[layer_norm, gelu, text], api_name="open_block", api_visibility="undocumented",
          show_progress="hidden", trigger_mode="always_last", queue=shared.queue_views)
    return Tab(show=show, outputs=[layer, position, layer_norm, gelu, text], inputs={"block_layer": layer},
               code=code, story=story, story_keys=frozenset({"layer", "position"}), story_outputs=[text.accordion])
