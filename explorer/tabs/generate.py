"""Generate tab: text sampled token by token, streamed, or one step at a time with its distribution."""

from __future__ import annotations

import codecs

import gradio as gr

from gpt2.generate import slide_keep

from .. import model_runs, panels, plots, validation
from ..analysis import encode_prompt
from ..stepping import next_step, start_steps, step_window
from .parts.branches import build_branches
from .parts.code_view import code_view
from .parts.controls import Slider, checked, explanation, opened
from .parts.shared import Shared, Tab, View, user_errors


def build(shared: Shared) -> Tab:
    sampling = [shared.controls[name] for name in ("temperature", "top_k", "top_p", "seed")]  # from Next token
    with gr.Tab("Generate", id="generate"):
        # A StepState: the ids so far and the generator's state. Made inside the tab: made before it, among
        # the tabs, it made Gradio's page show the next tab as a second "Generate".
        step_state = gr.State(None, time_to_live=1800)
        gr.Markdown("Uses the temperature, top-k, top-p and seed from the *Next token* tab.")
        with gr.Row():
            max_new_tokens = checked(Slider(1, validation.MAX_NEW_TOKENS, value=40, step=1, label="Max new tokens"),
                                     validation.max_new_tokens)
            generate_button = gr.Button("Generate", variant="primary")
            step_button = gr.Button("Step (one token)")
            stop_button = gr.Button("Stop", variant="stop")
            reset_button = gr.Button("Reset")
        output = gr.Textbox(label="Text", lines=8, buttons=["copy"], interactive=False)
        step_plot = gr.Plot(label="Step distribution", show_label=False)
        # ---- branching (explorer/tabs/parts/branches.py): pick another token, go back through the tree ----
        branches = build_branches(shared, step_state, output, reset_button, step_plot)
        # ---- end of branching ----
        text = explanation("Generation explained")
        code = code_view("generate")

    def show(view: View) -> dict:
        return {text: panels.generate_text(view.analysis.trace.config)}

    @user_errors
    def generate(prompt, model_name, max_new_tokens, temperature, top_k, top_p, seed, progress=gr.Progress()):
        loaded = shared.load(model_name, progress)
        n_ctx = loaded.model.config.n_ctx
        ids, notice = encode_prompt(loaded.tokenizer, prompt, n_ctx)
        t, k, p = panels.parse_sampling(temperature, top_k, top_p)
        if notice:
            gr.Warning(notice)
        if len(ids) + max_new_tokens > n_ctx:
            gr.Warning(f"Prompt + new tokens exceed this model's {n_ctx}-token context: past it, the model sees "
                       f"only the most recent {slide_keep(n_ctx)} to {n_ctx} tokens (a sliding window).")
        tokens = shared.stream(model_runs.generation, loaded.name, ids, max_new_tokens, t, k, p, seed,
                               seconds=model_runs.gpu_seconds(shared.store, loaded.name, len(ids),
                                                              generated=max_new_tokens))
        enc, decoder = loaded.tokenizer, codecs.getincrementaldecoder("utf-8")(errors="replace")
        text_so_far = enc.decode(ids)
        yield text_so_far
        for token in tokens:  # one token at a time: other visitors' passes run in between
            text_so_far += decoder.decode(enc.decode_single_token_bytes(token))
            yield text_so_far
        yield text_so_far + decoder.decode(b"", final=True)

    @user_errors
    def step(prompt, model_name, state, tree, temperature, top_k, top_p, seed, progress=gr.Progress()):
        loaded = shared.load(model_name, progress)
        if state is None or state.model_name != loaded.name or state.prompt != prompt:
            state = start_steps(loaded, prompt, seed)
        window = step_window(loaded, state)
        logits = shared.run(model_runs.next_logits, loaded.name, window,
                            seconds=model_runs.gpu_seconds(shared.store, loaded.name, len(window)))
        figure, anatomy = next_step(loaded, state, temperature, top_k, top_p, logits=logits)
        return {output: loaded.tokenizer.decode(state.ids), step_state: state, step_plot: figure} | \
            branches.after_step(loaded, state, anatomy, tree)

    generating = generate_button.click(
        generate, inputs=[shared.prompt, shared.model_name, max_new_tokens, *sampling], outputs=[output],
        api_name="generate")
    step_button.click(step, inputs=[shared.prompt, shared.model_name, step_state, branches.tree, *sampling],
                      outputs=[output, step_state, step_plot, *branches.outputs], api_name="step",
                      api_visibility="undocumented")
    generate_button.click(lambda: None, outputs=[step_state], api_visibility="private", queue=False)
    reset_button.click(lambda: (None, "", plots.empty_figure("Press Step to add one token.")),
                       outputs=[step_state, output, step_plot], api_visibility="private", queue=False)
    shared.prompt.change(lambda: None, outputs=[step_state], api_visibility="private", queue=False)
    stop_button.click(None, cancels=[generating], api_visibility="private")
    def story(view: View, explanation_name: str) -> dict:
        count = view.values.get("max_new_tokens", max_new_tokens.value)
        return {max_new_tokens: count} | opened(text)

    return Tab(show=show, outputs=[text], code=code, story=story, story_keys=frozenset({"max_new_tokens"}),
               story_outputs=[max_new_tokens, text.accordion], controls={"generation_tree": branches.tree})
