"""Take a run home: one click writes the current analysis as a self-contained page plus its numbers.

The files live in the app's own shelf (export.HandoutShelf): a temporary folder, names the app
makes, only each visitor's last handout kept. Gradio serves them from there as static files
(gr.set_static_paths), without copying them into its cache, so deleting a handout really frees
its space. Nothing a visitor sends is part of a path: the handler takes only their analysis handle.
The app refuses uploads (app.py); downloads are GET requests for files the app wrote.
"""

from __future__ import annotations

import gradio as gr

from ... import model_runs, panels
from ...branching import BranchTree
from ...export import Experiments, HandoutShelf
from .shared import Shared, user_errors

# Press the (now filled) download button, so the page downloads with the same click that made it.
# The button gets its file in the same update that shows it, and the page applies that update after this
# script starts: so press it once it is on screen, and a moment later, when its file has arrived.
START_DOWNLOAD = """() => {
  const press = (tries) => {
    const button = document.querySelector('#handout-html');
    if (button && button.offsetParent !== null) setTimeout(() => button.click(), 150);
    else if (tries > 0) setTimeout(() => press(tries - 1), 100);
  };
  press(50);
}"""


def build_handout(shared: Shared, shelf: HandoutShelf | None = None):
    """A "Take this run home" button and the two downloads it fills (the page, the numbers).

    Returns `connect(values)`, called once the tabs exist with their inputs by name: the handout is made
    with the head and the sampling settings the learner has set (layer, head, temperature, top_k, top_p),
    and the Who voted tab's token, foil and last patching run (published in shared.controls).
    """
    shelf = shelf or HandoutShelf()
    gr.set_static_paths([str(shelf.folder)])
    make = gr.Button("Take this run home", size="sm", elem_id="handout-make")
    with gr.Row():
        page = gr.DownloadButton("Page (.html)", size="sm", visible=False, elem_id="handout-html")
        numbers = gr.DownloadButton("Numbers (.json)", size="sm", visible=False, elem_id="handout-json")

    def experiments(analysis, loaded, target=None, foil=None, split_of=None, patched=None, tree=None) -> Experiments:
        """The Who voted tab as the learner left it: their token and foil split (if the tab shows this analysis;
        else the most likely token's), their last patching run on this model; and their generation tree, if
        they stepped from this prompt."""
        tree = tree if isinstance(tree, BranchTree) and len(tree.nodes) > 1 and tree.nodes[0].text == analysis.prompt \
            else None
        n_vocab, tokenizer = analysis.trace.config.n_vocab, loaded.tokenizer
        same = isinstance(split_of, dict) and (split_of.get("model"), split_of.get("prompt")) == (
            analysis.model_name, analysis.prompt)
        target, foil = (target, foil) if same else (None, None)
        target_id = panels.resolve_token(tokenizer, n_vocab, target or None, "Token to explain", optional=True)
        foil_id = panels.resolve_token(tokenizer, n_vocab, foil or None, "Foil", optional=True)
        if foil_id == target_id:
            foil_id = None
        ids = analysis.trace.token_ids.tolist()
        split = shared.run(model_runs.attribution, loaded.name, ids, target_id, foil_id,
                           seconds=model_runs.gpu_seconds(shared.store, loaded.name, len(ids)))
        if not isinstance(patched, dict) or patched.get("model") != loaded.name:
            return Experiments(split, tree=tree)
        return Experiments(split, patched["result"], patched["clean_tokens"], patched["corrupted_tokens"],
                           patched["clean"], patched["corrupted"], tree=tree)

    @user_errors
    def write(handle, layer, head, temperature, top_k, top_p, request: gr.Request, **tab_values) -> dict:
        analysis, loaded = shared.analysis_of(handle)
        analysis = shared.lens_for(analysis, handle.lens_positions)  # the page and numbers include the lens
        shared.remember(handle)
        panels.parse_sampling(temperature, top_k, top_p)  # numbers, or a message naming what is wrong
        html_path, json_path = shelf.write(request.session_hash or handle.key, loaded, analysis, layer, head,
                                           (temperature, top_k, top_p), experiments(analysis, loaded, **tab_values))
        return {page: gr.DownloadButton(value=str(html_path), visible=True),
                numbers: gr.DownloadButton(value=str(json_path), visible=True)}

    hidden = {page: gr.DownloadButton(visible=False), numbers: gr.DownloadButton(visible=False)}
    shared.analysis.change(lambda: hidden, outputs=[page, numbers], api_visibility="private", queue=False)

    def connect(values: dict) -> None:
        seen = [values[name] for name in ("layer", "head", "temperature", "top_k", "top_p")]
        who_voted = {key: shared.controls[name] for key, name in (("target", "attribution_target"),
                                                                   ("foil", "attribution_foil"),
                                                                   ("split_of", "attribution_shown"),
                                                                   ("patched", "patching_run"),
                                                                   ("tree", "generation_tree"))
                     if name in shared.controls}  # absent from a page built without the Who voted tab
        make.click(write, inputs=[shared.analysis, *seen], inputs_kwargs=who_voted, outputs=[page, numbers],
                   api_name="handout", api_visibility="undocumented").success(None, js=START_DOWNLOAD,
                                                                              api_visibility="private")
    return connect
