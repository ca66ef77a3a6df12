"""Take a run home: one click writes the current analysis as a self-contained page plus its numbers.

The files live in the app's own shelf (export.HandoutShelf): a temporary folder, names the app
makes, only each visitor's last handout kept. Gradio serves them from there as static files
(gr.set_static_paths), without copying them into its cache, so deleting a handout really frees
its space. Nothing a visitor sends is part of a path: the handler takes only their analysis handle.
The app refuses uploads (app.py); downloads are GET requests for files the app wrote.
"""

from __future__ import annotations

import gradio as gr

from ...export import HandoutShelf
from .shared import Shared, user_errors

# Press the (now filled) download button, so the page downloads with the same click that made it.
START_DOWNLOAD = "() => { document.querySelector('#handout-html')?.click(); }"


def build_handout(shared: Shared, shelf: HandoutShelf | None = None) -> HandoutShelf:
    """A "Take this run home" button and the two downloads it fills (the page, the numbers)."""
    shelf = shelf or HandoutShelf()
    gr.set_static_paths([str(shelf.folder)])
    make = gr.Button("Take this run home", size="sm", elem_id="handout-make")
    with gr.Row():
        page = gr.DownloadButton("Page (.html)", size="sm", visible=False, elem_id="handout-html")
        numbers = gr.DownloadButton("Numbers (.json)", size="sm", visible=False, elem_id="handout-json")

    @user_errors
    def write(handle, request: gr.Request) -> dict:
        analysis, loaded = shared.analysis_of(handle)
        analysis = shared.lens_for(analysis, handle.lens_positions)  # the page and numbers include the lens
        shared.remember(handle)
        html_path, json_path = shelf.write(request.session_hash or handle.key, loaded, analysis)
        return {page: gr.DownloadButton(value=str(html_path), visible=True),
                numbers: gr.DownloadButton(value=str(json_path), visible=True)}

    hidden = {page: gr.DownloadButton(visible=False), numbers: gr.DownloadButton(visible=False)}
    shared.analysis.change(lambda: hidden, outputs=[page, numbers], api_visibility="private", queue=False)
    make.click(write, inputs=[shared.analysis], outputs=[page, numbers], api_name="handout",
               api_visibility="undocumented").success(None, js=START_DOWNLOAD, api_visibility="private")
    return shelf
