"""Surprise tab: how surprised the model was by each token of the prompt, which is its training loss.

The surprise needs a T x n_vocab product (capture.token_surprise), so Analyze's answer goes
without it. On a CPU the follow-up that runs once the page has drawn the answer makes it if the
server is idle (ui.py); otherwise the tab makes it when it is built: when it is opened, or Analyze
runs while it is open, or the story shows it (tabs/parts/open_tabs.py).
"""

from __future__ import annotations

import gradio as gr

from .. import panels, plots
from .parts.code_view import code_view
from .parts.controls import explanation, opened
from .parts.shared import Shared, Tab, View


def build(shared: Shared) -> Tab:
    with gr.Tab("Surprise", id="surprise"):
        tokens = gr.Plot(label="Surprise per token", show_label=False, elem_id="surprise-tokens")
        text = explanation("Surprise explained", open=True)
        code = code_view("surprise")

    def figures(analysis, facts) -> dict:
        trace = analysis.trace
        surprise = shared.surprise_for(analysis)  # made once, then kept on the trace
        return {tokens: plots.surprise_tokens(trace.tokens, surprise, analysis.model_name),
                text: panels.surprise_text(trace, surprise, facts)}

    def show(view: View) -> dict:
        return figures(view.analysis, view.loaded.facts)

    def story(view: View, explanation_name: str) -> dict:
        return figures(view.analysis, view.loaded.facts) | opened(text)

    return Tab(show=show, outputs=[tokens, text], code=code, story=story, story_outputs=[text.accordion])
