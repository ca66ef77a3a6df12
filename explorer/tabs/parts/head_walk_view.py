"""Under the Attention tab's score table: the selected head end to end for the selected query.

q·k → ÷√d → softmax → Σ w·v → z → z W_O (explorer/head_walk.py), drawn as the query's weights next to
the sizes of the value vectors, with the text of every step. Kept apart from attention.py so that
tab's module stays about the pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ... import plots
from ...head_walk import walk_head, walk_text
from .controls import explanation

MEAN_OF_HEADS = "The mean over heads is not one computation: untick *Mean over heads* to walk through one head."


@dataclass
class HeadWalkView:
    plot: gr.Plot
    text: gr.Markdown

    @property
    def components(self) -> list:
        return [self.plot, self.text]

    def figures(self, analysis, loaded, layer: int, head: int, mean_over_heads: bool, query: int) -> dict:
        if mean_over_heads:
            return {self.plot: plots.empty_figure(MEAN_OF_HEADS), self.text: MEAN_OF_HEADS}
        trace = analysis.trace
        walk = walk_head(loaded.view_model, trace, layer, head, query)
        title = f"Layer {layer}, head {head}, query {query} ({trace.tokens[query]}): weights and value sizes"
        return {self.plot: plots.head_walk_bars(trace.tokens, walk.weights, walk.value_norms, title),
                self.text: walk_text(walk, trace.tokens)}


def head_walk_view() -> HeadWalkView:
    plot = gr.Plot(label="Head walk", show_label=False, elem_id="head-walk")
    text = explanation("Head walk explained", title="One head, end to end")
    return HeadWalkView(plot, text)
