"""Who voted tab: which parts of the model pushed a token up (logit attribution), and where the information
that decides an answer sits (activation patching). explorer/attribution.py does the work.

Logit attribution runs the analysed prompt once more with hooks (one forward pass, in the compute
slot) when the tab is built and when the token or the foil changes. Patching has prompts of its
own: a clean and a corrupted one of the same length in tokens, and runs the corrupted prompt once
per site, batched, when the visitor presses Patch. The buttons under the heads' map open the
Attention tab at that head.
"""

from __future__ import annotations

import gradio as gr

from .. import model_runs, panels, validation
from ..analysis import labels_for
from ..attribution import PATCHING_EXAMPLES, SITES
from .parts.controls import Dropdown, Textbox, checked, explanation, opened
from .parts.shared import Shared, Tab, View, user_errors

OPEN_BUTTONS = 3  # the largest heads get a button that opens them in the Attention tab
MAX_PATCH_TOKENS = 40  # a patching prompt's tokens: the run costs one pass per layer and position
SITE_CHOICES = [("the stream after each block", "resid_post"), ("the stream before each block", "resid_pre"),
                ("each head's output", "head_out"), ("each attention output", "attn_out"),
                ("each MLP output", "mlp_out")]
assert {value for _, value in SITE_CHOICES} <= set(SITES)


class TokenChoice(gr.Dropdown):
    """A token: one of the listed most likely tokens (its id as text) or typed text of one token. The handler
    checks it against the model (panels.resolve_token); here only its size is bounded."""

    is_template = True

    def preprocess(self, payload):
        if payload is not None and (not isinstance(payload, str) or len(payload) > panels.MAX_TOKEN_TEXT):
            raise gr.Error(f"{self.label} must be a token of at most {panels.MAX_TOKEN_TEXT} characters",
                           print_exception=False)
        return payload


def _example(speaks_gpt2: bool):
    return PATCHING_EXAMPLES["gpt2" if speaks_gpt2 else "trained"]


def build(shared: Shared) -> Tab:
    first = _example(shared.store.speaks_gpt2(shared.model_name.value))  # the model the page opens with
    with gr.Tab("Who voted", id="attribution"):
        gr.Markdown("Which parts of the model pushed a token up? **Logit attribution** splits the analysed prompt's "
                    "next-token logit into what each head and MLP wrote. **Patching** runs a clean and a corrupted "
                    "prompt and copies one activation at a time from one into the other, to find where the "
                    "answer is decided.")
        with gr.Tabs(elem_id="attribution-views"):
            with gr.Tab("Logit attribution", id="attribution-split"):
                with gr.Row():
                    target = TokenChoice(choices=[], value=None, allow_custom_value=True, label="Token to explain",
                                         elem_id="attribution-target")
                    foil = TokenChoice(choices=[], value=None, allow_custom_value=True,
                                       label="Against this token (optional foil)", elem_id="attribution-foil")
                heads_plot = gr.Plot(label="Attribution by head", show_label=False, elem_id="attribution-heads")
                with gr.Row(elem_id="attribution-open"):
                    buttons = [gr.Button(visible=False, size="sm", elem_id=f"attribution-open-{i}")
                               for i in range(OPEN_BUTTONS)]
                # What the tab shows: which analysis (model, prompt) its split is of, and the (layer, head) of each
                # button, largest first. The handout uses the learner's token and foil only for that analysis.
                picked = gr.State(None, time_to_live=1800)
                layers_plot = gr.Plot(label="Attribution by layer", show_label=False, elem_id="attribution-layers")
                text = explanation("Attribution explained", open=True)
            with gr.Tab("Patching", id="patching"):
                with gr.Row():
                    clean = checked(Textbox(value=first.clean, label="Clean prompt", lines=2,
                                            max_length=validation.MAX_PROMPT_CHARS), validation.prompt)
                    corrupted = checked(Textbox(value=first.corrupted, label="Corrupted prompt", lines=2,
                                                max_length=validation.MAX_PROMPT_CHARS), validation.prompt)
                with gr.Row(equal_height=True):
                    answer = Textbox(value=first.answer, label="Clean answer (one token)",
                                     max_length=panels.MAX_TOKEN_TEXT)
                    wrong = Textbox(value=first.foil, label="Corrupted answer (one token)",
                                    max_length=panels.MAX_TOKEN_TEXT)
                    site = Dropdown(SITE_CHOICES, value="resid_post", label="Copy what")
                with gr.Row():
                    run = gr.Button("Patch", variant="primary", elem_id="patching-run")
                    example = gr.Button("Load this model's example", size="sm", elem_id="patching-example")
                patch_plot = gr.Plot(label="Patching map", show_label=False, elem_id="patching-map")
                patched = gr.State(None, time_to_live=1800)  # the last run, for the handout (a few KB)
                patch_text = gr.Markdown(f"Press Patch. The example: {first.why}.", label="Patching explained",
                                         elem_id="patching-text")

    def split(analysis, loaded, target_id, foil_id) -> dict:
        ids = analysis.trace.token_ids.tolist()
        n_tokens = len(ids)
        result = shared.run(model_runs.attribution, loaded.name, ids, target_id, foil_id,
                            seconds=model_runs.gpu_seconds(shared.store, loaded.name, n_tokens))
        figures = panels.attribution_figures(result, analysis.label)
        heads = panels.top_heads(result, OPEN_BUTTONS)
        shown = {"model": analysis.model_name, "prompt": analysis.prompt, "heads": [h[:2] for h in heads]}
        return {heads_plot: figures["heads"], layers_plot: figures["layers"], picked: shown,
                text: panels.attribution_text(result, analysis.label, analysis.trace.config)} | {
            button: gr.Button(f"Open head {layer}.{head} ({panels._signed(part)}) in Attention", visible=True)
            for button, (layer, head, part) in zip(buttons, heads)}

    def show(view: View) -> dict:
        analysis, loaded = view.analysis, view.loaded
        choices = panels.token_choices(analysis)
        return split(analysis, loaded, None, None) | {
            target: gr.Dropdown(choices=choices, value=choices[0][1]),
            foil: gr.Dropdown(choices=[("none", "")] + choices[1:], value="")}

    @user_errors
    def resplit(handle, target_value, foil_value) -> dict:
        analysis, loaded = shared.analysis_of(handle)
        n_vocab, tokenizer = analysis.trace.config.n_vocab, loaded.tokenizer
        target_id = panels.resolve_token(tokenizer, n_vocab, target_value, "Token to explain")
        foil_id = panels.resolve_token(tokenizer, n_vocab, foil_value, "Foil", optional=True)
        if foil_id == target_id:
            raise validation.BadInput("Foil: pick another token than the one to explain, or none")
        return split(analysis, loaded, target_id, foil_id)

    gr.on([target.input, foil.input], resplit, inputs=[shared.analysis, target, foil],
          outputs=[heads_plot, layers_plot, text, picked, *buttons], api_name="attribution", api_visibility="undocumented",
          trigger_mode="always_last", show_progress="minimal")

    @user_errors
    def run_patching(model_name, clean_text, corrupted_text, answer_text, wrong_text, site_value) -> dict:
        loaded = shared.load(model_name)
        tokenizer, config = loaded.tokenizer, loaded.model.config
        ids = {}
        for name, value in (("Clean prompt", clean_text), ("Corrupted prompt", corrupted_text)):
            ids[name] = tokenizer.encode(value)
            if len(ids[name]) > min(MAX_PATCH_TOKENS, config.n_ctx):
                raise validation.BadInput(f"{name}: {len(ids[name])} tokens; patching takes prompts of at most "
                                          f"{min(MAX_PATCH_TOKENS, config.n_ctx)} tokens (it runs the corrupted "
                                          "prompt once for every layer and position)")
        target_id = panels.resolve_token(tokenizer, config.n_vocab, answer_text, "Clean answer")
        foil_id = panels.resolve_token(tokenizer, config.n_vocab, wrong_text, "Corrupted answer")
        clean_ids, corrupted_ids = ids["Clean prompt"], ids["Corrupted prompt"]
        sites = config.n_layer * (config.n_head if site_value == "head_out" else len(clean_ids))
        try:
            result = shared.run(model_runs.patching, loaded.name, clean_ids, corrupted_ids, target_id, foil_id,
                                site_value, seconds=model_runs.gpu_seconds(shared.store, loaded.name,
                                                                           sites * len(clean_ids)))
        except ValueError as err:  # different lengths, same prompts, nothing to recover: the visitor can fix it
            raise validation.BadInput(str(err)) from None
        label = labels_for(tokenizer)
        clean_tokens = [label(i) for i in clean_ids]
        corrupted_tokens = [label(i) for i in corrupted_ids]
        return {patch_plot: panels.patching_figure(result, clean_tokens),
                patch_text: panels.patching_text(result, label, clean_tokens, corrupted_tokens),
                patched: {"model": loaded.name, "result": result, "clean": clean_text, "corrupted": corrupted_text,
                          "clean_tokens": clean_tokens, "corrupted_tokens": corrupted_tokens}}

    run.click(run_patching, inputs=[shared.model_name, clean, corrupted, answer, wrong, site],
              outputs=[patch_plot, patch_text, patched], api_name="patching", api_visibility="undocumented",
              show_progress="minimal")

    def load_example(model_name) -> dict:
        chosen = _example(shared.store.speaks_gpt2(model_name))
        return {clean: chosen.clean, corrupted: chosen.corrupted, answer: chosen.answer, wrong: chosen.foil,
                patch_text: f"Press Patch. The example: {chosen.why}.", patch_plot: None}

    example.click(load_example, inputs=[shared.model_name],
                  outputs=[clean, corrupted, answer, wrong, patch_text, patch_plot], api_visibility="private",
                  queue=False)

    def story(view: View, explanation_name: str) -> dict:
        return show(view) | opened(text)

    def opener(index: int, open_tabs):
        @user_errors
        def go(handle, shown, split, **values) -> dict:
            heads = split.get("heads") if isinstance(split, dict) else None
            if not isinstance(heads, list) or index >= len(heads):
                raise validation.BadInput("Open the Who voted tab after an Analyze first: there is no head to open")
            layer, head = heads[index]
            return open_tabs.go_to("attention", handle, shown, values, {"layer": int(layer), "head": int(head)})
        return go

    def wire(open_tabs) -> None:
        """Each head button opens the Attention tab at its head (once every tab exists)."""
        if "attention" not in open_tabs.tabs:  # a page built without it (tests build some tabs only)
            return
        for index, button in enumerate(buttons):
            button.click(opener(index, open_tabs), inputs=[shared.analysis, open_tabs.shown, picked],
                         inputs_kwargs=open_tabs.values, outputs=open_tabs.go_to_outputs("attention"),
                         api_name=f"attribution_open_head_{index}", api_visibility="undocumented",
                         show_progress="minimal")

    return Tab(show=show, outputs=[target, foil, heads_plot, layers_plot, text, picked, *buttons], story=story,
               story_outputs=[text.accordion], wire=wire,
               controls={"attribution_target": target, "attribution_foil": foil, "attribution_shown": picked,
                         "patching_run": patched})
