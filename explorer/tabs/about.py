"""About this model tab: its parameters counted from the loaded weights, weight tying, GPT-2 next to the
2017 Transformer, and how OpenAI's checkpoint names map onto the modules (explorer/about.py)."""

from __future__ import annotations

import gradio as gr

from ..about import about_markdown
from .parts.controls import ANALYZE_FIRST
from .parts.shared import Shared, Tab, View


def build(shared: Shared) -> Tab:
    with gr.Tab("About this model", id="about"):
        text = gr.Markdown(ANALYZE_FIRST, label="About this model", elem_classes=["wide-tables"])

    def show(view: View) -> dict:
        return {text: about_markdown(view.loaded.view_model, view.loaded.facts)}

    return Tab(show=show, outputs=[text])
