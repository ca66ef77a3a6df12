"""Attention tab: one head's pattern, all heads at a glance, head statistics, and the score table."""

from __future__ import annotations

import gradio as gr

from .. import panels
from .parts.ablation import build_ablation
from .parts.code_view import code_view
from .parts.controls import Checkbox, Slider, explanation, index_slider_update, opened
from .parts.head_walk_view import head_walk_view
from .parts.shared import Shared, Tab, View, user_errors

# Moving the frame around the selected head in the overview happens in the page: sending and
# redrawing the whole overview (144 tiles and their labels) for it is a visible wait in the
# browser (benchmarks/README.md, "Timings behind design choices"). The geometry comes from the figure's layout.meta (plots.attention_overview).
FRAME_SELECTED_HEAD = """(layer, head) => {
    const plot = document.querySelector('#attention-overview .js-plotly-plot');
    const meta = plot && plot.layout && plot.layout.meta;
    if (meta && window.Plotly && plot.layout.shapes && plot.layout.shapes.length) {
        const frame = Object.assign({}, plot.layout.shapes[0], {x0: head * meta.step - 1, x1: head * meta.step + meta.tile,
                                                               y0: layer * meta.step - 1, y1: layer * meta.step + meta.tile});
        window.Plotly.relayout(plot, {shapes: [frame]});
    }
    return [layer, head];
}"""


def build(shared: Shared) -> Tab:
    with gr.Tab("Attention", id="attention"):
        with gr.Row():
            layer = Slider(0, 11, value=0, step=1, label="Layer", elem_id="attention-layer")
            head = Slider(0, 11, value=0, step=1, label="Head")
            query = Slider(0, 1023, value=1023, step=1, label="Query position (outlined row)")
            mean_heads = Checkbox(False, label="Mean over heads")
        with gr.Row():
            heatmap = gr.Plot(label="Attention heatmap", show_label=False, elem_id="attention-heatmap")
            overview = gr.Plot(label="All heads", show_label=False, elem_id="attention-overview")
        scores = gr.Plot(label="Head scores", show_label=False)
        text = explanation("Attention explained", open=True)
        walk = head_walk_view()  # the selected head, end to end, for the selected query
        code = code_view("attention")
        ablation = build_ablation(shared, layer, head)

    def figures(analysis, loaded, layer_index, head_index, mean, query_index) -> dict:
        return {heatmap: panels.attention_heatmap(analysis, layer_index, head_index, mean, query_index),
                text: panels.attention_text(loaded, analysis, layer_index, head_index, mean, query_index)
                } | walk.figures(analysis, loaded, layer_index, head_index, mean, query_index)

    def show(view: View) -> dict:
        analysis, config = view.analysis, view.analysis.trace.config
        # Keep the selected head when it exists in this model (sizes differ in layers and heads).
        layer_index = min(view.values["layer"], config.n_layer - 1)
        head_index = min(view.values["head"], config.n_head - 1)
        last = analysis.trace.n_tokens - 1
        return figures(analysis, view.loaded, layer_index, head_index, view.values["mean_heads"], last) | {
            layer: index_slider_update(config.n_layer, layer_index, sent=view.values["layer"]),
            head: index_slider_update(config.n_head, head_index, sent=view.values["head"]),
            query: index_slider_update(last + 1, last),
            overview: panels.attention_overview(analysis, layer_index, head_index),
            scores: panels.head_scores_figure(analysis),
        } | ablation.rebuild(analysis, view.loaded, view.values.get("ablation"))

    @user_errors
    def select_head(handle, layer_index, head_index, mean, query_index) -> dict:
        analysis, loaded = shared.analysis_of(handle)
        layer_index, head_index = panels.check_head(analysis, layer_index, head_index)
        query_index = panels.clamp_query(analysis, query_index)
        result = figures(analysis, loaded, layer_index, head_index, mean, query_index)
        shared.remember(handle)
        return result  # the overview stays: the page moves its frame (FRAME_SELECTED_HEAD)

    gr.on([layer.input, head.input, query.input, mean_heads.input], select_head,
          inputs=[shared.analysis, layer, head, mean_heads, query], outputs=[heatmap, text, *walk.components],
          api_name="select_head", api_visibility="undocumented", show_progress="hidden", trigger_mode="always_last",
          queue=shared.queue_views)
    gr.on([layer.input, head.input], None, inputs=[layer, head], js=FRAME_SELECTED_HEAD, api_visibility="private",
          trigger_mode="always_last")
    def story(view: View, explanation_name: str) -> dict:  # a story card's head and query
        analysis, controls = view.analysis, view.values
        layer_index, head_index = panels.check_head(analysis, controls.get("layer", 0), controls.get("head", 0))
        query_index = panels.clamp_query(analysis, controls.get("query"))
        mean = bool(controls.get("mean_heads", False))
        c = analysis.trace.config
        return figures(analysis, view.loaded, layer_index, head_index, mean, query_index) | {
            layer: index_slider_update(c.n_layer, layer_index), head: index_slider_update(c.n_head, head_index),
            query: index_slider_update(analysis.trace.n_tokens, query_index), mean_heads: mean,
            overview: panels.attention_overview(analysis, layer_index, head_index),
        } | opened(walk.text if explanation_name == "head_walk" else text)

    return Tab(show=show, outputs=[layer, head, query, heatmap, overview, scores, text, *walk.components,
                                   *ablation.outputs],
               inputs={"layer": layer, "head": head, "mean_heads": mean_heads, "ablation": ablation.state},
               code=code, story=story,
               story_keys=frozenset({"layer", "head", "query", "mean_heads"}),
               story_outputs=[mean_heads, text.accordion, walk.text.accordion])
