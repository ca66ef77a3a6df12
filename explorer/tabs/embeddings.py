"""Embeddings tab: token and position embeddings, their sum, a PCA, the position curve, cosine similarities."""

from __future__ import annotations

import gradio as gr

from .. import panels
from .parts.code_view import code_view
from .parts.controls import explanation, opened
from .parts.shared import Shared, Tab, View


def build(shared: Shared) -> Tab:
    with gr.Tab("Embeddings", id="embeddings"):
        with gr.Tabs() as views:
            with gr.Tab("Token", id="token"):
                token = gr.Plot(label="Token embeddings", show_label=False)
            with gr.Tab("Position", id="position"):
                position = gr.Plot(label="Position embeddings", show_label=False)
            with gr.Tab("Sum", id="sum"):
                total = gr.Plot(label="Embedding sum", show_label=False)
        with gr.Row():
            pca = gr.Plot(label="Embedding PCA", show_label=False)
            curve = gr.Plot(label="Position curve", show_label=False)
        cosine = gr.Plot(label="Cosine similarity", show_label=False)
        text = explanation("Embeddings explained")
        code = code_view("embeddings")
    plots = {"token": token, "position": position, "sum": total, "pca": pca, "curve": curve, "cosine": cosine}

    def show(view: View) -> dict:
        figures = panels.embedding_figures(view.analysis, view.loaded)
        return {plots[name]: figure for name, figure in figures.items()} | {text: panels.embeddings_text(view.analysis, view.loaded)}

    def story(view: View, name: str) -> dict:  # the story's card reads the Sum heatmap: show it
        return opened(text) | {views: gr.Tabs(selected="sum")}

    return Tab(show=show, outputs=[*plots.values(), text], code=code, story=story, story_outputs=[text.accordion, views])
