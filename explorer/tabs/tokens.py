"""Tokens tab: the prompt as coloured chips, one per token, and how BPE cut it."""

from __future__ import annotations

import gradio as gr

from .. import panels
from .parts.code_view import code_view
from .parts.controls import explanation, opened
from .parts.shared import Shared, Tab, View


def build(shared: Shared) -> Tab:
    with gr.Tab("Tokens", id="tokens"):
        chips = gr.HTML(label="Token chips", elem_id="token-chips")
        text = explanation("Tokens explained")
        code = code_view("tokens")

    def show(view: View) -> dict:
        trace = view.analysis.trace
        return {chips: panels.token_chips(trace), text: panels.tokens_text(trace, view.loaded.facts)}

    return Tab(show=show, outputs=[chips, text], code=code, story=lambda view, name: opened(text),
               story_outputs=[text.accordion])
