"""Surprise tab: how surprised the model was by each token of the prompt, which is its training loss.

The surprise needs a T x n_vocab product (capture.token_surprise), so it is computed when the
tab is opened (or Analyze runs while it is open, or the story shows it), not by every Analyze.
"""

from __future__ import annotations

import gradio as gr

from .. import panels, plots
from .parts.code_view import code_view
from .parts.controls import ANALYZE_FIRST, explanation, opened
from .parts.shared import Shared, Tab, View, user_errors

OPEN_TO_COMPUTE = "Open this tab to measure how surprised the model was by each token."


def build(shared: Shared) -> Tab:
    with gr.Tab("Surprise", id="surprise") as tab:
        tokens = gr.Plot(label="Surprise per token", show_label=False, elem_id="surprise-tokens")
        text = explanation("Surprise explained", open=True)
        code = code_view("surprise")

    def figures(analysis) -> dict:
        trace = analysis.trace
        surprise = trace.token_surprise  # computed on first access, then kept on the trace
        return {tokens: plots.surprise_tokens(trace.tokens, surprise, analysis.model_name),
                text: panels.surprise_text(trace, surprise)}

    def show(view: View) -> dict:
        if view.values.get("open_tab") == "surprise":
            return figures(view.analysis)
        return {tokens: plots.empty_figure(OPEN_TO_COMPUTE), text: OPEN_TO_COMPUTE}

    def story(view: View, explanation_name: str) -> dict:
        return figures(view.analysis) | opened(text)

    @user_errors
    def selected(handle) -> dict:
        if handle is None:
            return {text: ANALYZE_FIRST}
        analysis, _ = shared.analysis_of(handle)
        result = figures(analysis)
        shared.remember(handle)  # the surprise is now kept on the trace: count it
        return result

    tab.select(selected, inputs=[shared.analysis], outputs=[tokens, text], api_visibility="private",
               show_progress="minimal")
    return Tab(show=show, outputs=[tokens, text], code=code, story=story, story_outputs=[text.accordion])
