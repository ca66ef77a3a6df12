"""The GPT-2 Explorer app: Gradio Blocks layout and event wiring, nothing more.

Work happens in named functions elsewhere (panels.py, models.py); this module lays out
components and connects them. One model store is shared by all users; each user's
analysed prompt lives in a `gr.State`. Events that run the model share one
concurrency slot (a 2-core CPU gains nothing from two forward passes at once); events
that only redraw from the stored analysis are cheap and run freely.

Public API endpoints: `analyze` (prompt -> every panel) and `generate` (streams text).
Slider redraws and step mode are `undocumented`: callable by the page, not listed.
"""

from __future__ import annotations

import codecs
import functools
import inspect
import json
import logging
from pathlib import Path

import gradio as gr

import gpt2
from gpt2.download import DownloadError

from . import panels, plots
from .models import ModelStore

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
EXAMPLES = json.loads((ASSETS / "examples.json").read_text(encoding="utf-8"))
CSS = (ASSETS / "style.css").read_text(encoding="utf-8")
MODEL_EVENTS = "model"  # concurrency id shared by every event that runs the model
MAX_NEW_TOKENS = 256
ANALYZE_FIRST = "Analyze a prompt to see this panel explained with its own numbers."
# Moving the frame around the selected head in the overview happens in the page: sending and
# redrawing the whole overview (144 tiles and their labels) for it took ~0.3 s of drawing in
# the browser. The geometry comes from the figure's layout.meta (plots.attention_overview).
FRAME_SELECTED_HEAD = """(layer, head) => {
    const plot = document.querySelector('#attention-overview .js-plotly-plot');
    const meta = plot && plot.layout && plot.layout.meta;
    if (meta && window.Plotly && plot.layout.shapes && plot.layout.shapes.length) {
        const frame = Object.assign({}, plot.layout.shapes[0], {x0: head * meta.step - 1, x1: head * meta.step + meta.tile,
                                                               y0: layer * meta.step - 1, y1: layer * meta.step + meta.tile});
        window.Plotly.relayout(plot, {shapes: [frame]});
    }
    return [layer, head];
}"""


def _as_user_error(fn_name: str, err: Exception) -> gr.Error:
    if isinstance(err, gr.Error):
        return err
    if isinstance(err, (ValueError, TypeError, DownloadError, gpt2.CheckpointError, FileNotFoundError)):
        return gr.Error(str(err), print_exception=False)
    log.error("unexpected error in %s", fn_name, exc_info=err)  # details stay in the server log
    return gr.Error("Something went wrong on the server. Try again, or try a shorter prompt.", print_exception=False)


def user_errors(fn):
    """Show the errors a user can cause as a readable message in the page (gr.Error), never a traceback."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as err:
                raise _as_user_error(fn.__name__, err) from None
        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            raise _as_user_error(fn.__name__, err) from None
    return call


def explanation(open: bool = False) -> gr.Markdown:
    """A panel's collapsible teaching text, filled in once a prompt is analysed."""
    with gr.Accordion("How this works", open=open):
        return gr.Markdown(ANALYZE_FIRST)


def _need_analysis(analysis):
    if analysis is None:
        raise ValueError("Analyze a prompt first.")
    return analysis


def build_app(store: ModelStore, default: str | None = None) -> gr.Blocks:
    def load_model(name, progress):
        if store.needs_download(name):
            progress(0, desc=f"Downloading GPT-2 {name} (once; later starts read it from the cache)")

            def on_progress(file_name, done, total):
                if total:
                    progress((done, total), desc=f"Downloading {file_name}", unit="bytes")
            return store.get(name, on_progress)
        return store.get(name)

    @user_errors
    def analyze(prompt, model_name, layer, head, mean_heads, temperature, top_k, top_p, seed, lens_positions,
                progress=gr.Progress()):
        loaded = load_model(model_name, progress)
        analysis = panels.analyze(loaded, prompt, lens_positions)
        trace = analysis.trace
        # Keep the selected head when it exists in this model (sizes differ in layers and heads).
        layer = min(max(int(layer), 0), trace.config.n_layer - 1)
        head = min(max(int(head), 0), trace.config.n_head - 1)
        emb = panels.embedding_figures(analysis, loaded)
        query = trace.n_tokens - 1
        heatmap, overview = panels.attention_figures(analysis, layer, head, mean_heads, query)
        resid, contributions, lens = panels.layer_figures(analysis)
        bars, anatomy = panels.distribution_figure(trace.logits, temperature, top_k, top_p, seed)
        c = trace.config
        return (
            panels.status_line(loaded, analysis), analysis,
            panels.token_chips(trace), panels.tokens_text(trace),
            emb["token"], emb["position"], emb["sum"], emb["pca"], emb["curve"], emb["cosine"],
            panels.embeddings_text(analysis),
            gr.update(maximum=c.n_layer - 1, value=layer), gr.update(maximum=c.n_head - 1, value=head),
            gr.update(maximum=query, value=query),
            heatmap, overview, panels.head_scores_figure(analysis),
            panels.attention_text(loaded, analysis, layer, head, mean_heads, query),
            resid, contributions, lens, panels.layers_text(analysis),
            bars, panels.next_token_text(trace, anatomy),
            panels.generate_text(c),
        )

    @user_errors
    def select_head(analysis, layer, head, mean_heads, query):
        analysis = _need_analysis(analysis)
        layer, head = panels.clamp_head(analysis, layer, head)
        query, mean_heads = panels.clamp_query(analysis, query), bool(mean_heads)
        heatmap = panels.attention_heatmap(analysis, layer, head, mean_heads, query)
        text = panels.attention_text(store.get(analysis.model_name), analysis, layer, head, mean_heads, query)
        return heatmap, text  # the overview stays: the page moves its frame (FRAME_SELECTED_HEAD)

    @user_errors
    def relens(analysis, lens_positions):
        analysis = panels.update_lens(store.get(_need_analysis(analysis).model_name), analysis, lens_positions)
        return panels.layer_figures(analysis)[2], panels.layers_text(analysis)

    @user_errors
    def resample(analysis, temperature, top_k, top_p, seed):
        analysis = _need_analysis(analysis)
        bars, anatomy = panels.distribution_figure(analysis.trace.logits, temperature, top_k, top_p, seed)
        return bars, panels.next_token_text(analysis.trace, anatomy)

    @user_errors
    def generate(prompt, model_name, max_new_tokens, temperature, top_k, top_p, seed, progress=gr.Progress()):
        loaded = load_model(model_name, progress)
        ids, notice = panels.encode_prompt(prompt, loaded.model.config.n_ctx)
        max_new_tokens = int(max_new_tokens)
        if not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
            raise ValueError(f"max new tokens must be between 1 and {MAX_NEW_TOKENS}")
        t, k, p = panels.parse_sampling(temperature, top_k, top_p)
        n_ctx = loaded.model.config.n_ctx
        if notice:
            gr.Warning(notice)
        if len(ids) + max_new_tokens > n_ctx:
            gr.Warning(f"Prompt + new tokens exceed GPT-2's {n_ctx}-token context: past it, the model only sees "
                       f"the most recent {n_ctx - n_ctx // 4} tokens (a sliding window).")
        tokens = gpt2.generate(loaded.model, ids, max_new_tokens, temperature=t, top_k=k, top_p=p,
                               seed=panels.parse_seed(seed))
        enc, decoder = gpt2.get_tokenizer(), codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = enc.decode(ids)
        yield text
        for token in tokens:
            text += decoder.decode(enc.decode_single_token_bytes(token))
            yield text
        yield text + decoder.decode(b"", final=True)

    @user_errors
    def step(prompt, model_name, step_state, temperature, top_k, top_p, seed, progress=gr.Progress()):
        loaded = load_model(model_name, progress)
        if step_state is None or step_state.model_name != loaded.name:
            step_state = panels.start_steps(loaded, prompt, seed)
        figure, anatomy = panels.next_step(loaded, step_state, temperature, top_k, top_p)
        text = gpt2.get_tokenizer().decode(step_state.ids)
        return text, step_state, figure

    with gr.Blocks(title="GPT-2 Explorer", analytics_enabled=False) as app:
        gr.Markdown("# GPT-2 Explorer\nType a prompt and look inside GPT-2: its tokens, embeddings, every "
                    "attention head, the residual stream layer by layer, and the next-token distribution.")
        analysis_state = gr.State(None, time_to_live=3600)
        step_state = gr.State(None, time_to_live=3600)
        with gr.Row(equal_height=True):
            prompt = gr.Textbox(label="Prompt", value=EXAMPLES[0]["prompt"], lines=3, max_length=20000, scale=5)
            with gr.Column(scale=1, min_width=200):
                model_name = gr.Dropdown(store.choices, value=default or store.default, label="Model")
                analyze_button = gr.Button("Analyze", variant="primary")
        gr.Examples([[e["prompt"]] for e in EXAMPLES], inputs=[prompt], label="Example prompts", examples_per_page=9)
        status = gr.Markdown("Loading…", elem_id="status")

        with gr.Tabs():
            with gr.Tab("Tokens"):
                chips = gr.HTML(elem_id="token-chips")
                tokens_md = explanation(open=False)
            with gr.Tab("Embeddings"):
                with gr.Tabs():
                    with gr.Tab("Token"):
                        emb_token = gr.Plot(show_label=False)
                    with gr.Tab("Position"):
                        emb_position = gr.Plot(show_label=False)
                    with gr.Tab("Sum"):
                        emb_sum = gr.Plot(show_label=False)
                with gr.Row():
                    emb_pca = gr.Plot(show_label=False)
                    emb_curve = gr.Plot(show_label=False)
                emb_cosine = gr.Plot(show_label=False)
                embeddings_md = explanation(open=False)
            with gr.Tab("Attention"):
                with gr.Row():
                    layer = gr.Slider(0, 11, value=0, step=1, label="Layer")
                    head = gr.Slider(0, 11, value=0, step=1, label="Head")
                    query = gr.Slider(0, 1023, value=1023, step=1, label="Query position (outlined row)")
                    mean_heads = gr.Checkbox(False, label="Mean over heads")
                with gr.Row():
                    attn_heatmap = gr.Plot(show_label=False, elem_id="attention-heatmap")
                    attn_overview = gr.Plot(show_label=False, elem_id="attention-overview")
                head_scores = gr.Plot(show_label=False)
                attention_md = explanation(open=True)
            with gr.Tab("Layers"):
                with gr.Row():
                    resid_plot = gr.Plot(show_label=False)
                    contrib_plot = gr.Plot(show_label=False)
                lens_positions = gr.Slider(1, panels.MAX_LENS_POSITIONS, value=panels.LENS_POSITIONS, step=1,
                                           label="Logit lens: how many of the last positions to show")
                lens_plot = gr.Plot(show_label=False, elem_id="logit-lens")
                layers_md = explanation(open=False)
            with gr.Tab("Next token"):
                with gr.Row():
                    temperature = gr.Slider(0, 2, value=1.0, step=0.05, label="Temperature (0 = greedy)")
                    top_k = gr.Slider(0, 200, value=0, step=1, label="Top-k (0 = off)")
                    top_p = gr.Slider(0.01, 1, value=1.0, step=0.01, label="Top-p (1 = off)")
                    seed = gr.Number(value=0, precision=0, label="Seed", minimum=0)
                bars = gr.Plot(show_label=False, elem_id="next-token-bars")
                next_token_md = explanation(open=True)
            with gr.Tab("Generate"):
                gr.Markdown("Uses the temperature, top-k, top-p and seed from the *Next token* tab.")
                with gr.Row():
                    max_new_tokens = gr.Slider(1, MAX_NEW_TOKENS, value=40, step=1, label="Max new tokens")
                    generate_button = gr.Button("Generate", variant="primary")
                    step_button = gr.Button("Step (one token)")
                    stop_button = gr.Button("Stop", variant="stop")
                    reset_button = gr.Button("Reset")
                output = gr.Textbox(label="Text", lines=8, buttons=["copy"], interactive=False)
                step_plot = gr.Plot(show_label=False)
                generate_md = explanation(open=False)

        sampling = [temperature, top_k, top_p, seed]
        analyze_outputs = [status, analysis_state, chips, tokens_md, emb_token, emb_position, emb_sum, emb_pca,
                           emb_curve, emb_cosine, embeddings_md, layer, head, query, attn_heatmap, attn_overview,
                           head_scores, attention_md, resid_plot, contrib_plot, lens_plot, layers_md, bars,
                           next_token_md, generate_md]
        gr.on([analyze_button.click, prompt.submit], analyze,
              inputs=[prompt, model_name, layer, head, mean_heads, *sampling, lens_positions], outputs=analyze_outputs,
              api_name="analyze", concurrency_id=MODEL_EVENTS, concurrency_limit=1)
        gr.on([layer.input, head.input, query.input, mean_heads.input], select_head,
              inputs=[analysis_state, layer, head, mean_heads, query], outputs=[attn_heatmap, attention_md],
              api_name="select_head", api_visibility="undocumented", show_progress="hidden",
              trigger_mode="always_last")
        gr.on([layer.input, head.input], None, inputs=[layer, head], js=FRAME_SELECTED_HEAD, api_visibility="private")
        lens_positions.input(relens, inputs=[analysis_state, lens_positions], outputs=[lens_plot, layers_md],
                             api_name="lens", api_visibility="undocumented", concurrency_id=MODEL_EVENTS,
                             trigger_mode="always_last")
        gr.on([temperature.change, top_k.change, top_p.change, seed.change], resample,
              inputs=[analysis_state, *sampling], outputs=[bars, next_token_md],
              api_name="resample", api_visibility="undocumented", show_progress="hidden", trigger_mode="always_last")
        generating = generate_button.click(
            generate, inputs=[prompt, model_name, max_new_tokens, *sampling], outputs=[output], api_name="generate",
            concurrency_id=MODEL_EVENTS)
        step_button.click(step, inputs=[prompt, model_name, step_state, *sampling],
                          outputs=[output, step_state, step_plot], api_name="step", api_visibility="undocumented",
                          concurrency_id=MODEL_EVENTS)
        generate_button.click(lambda: None, outputs=[step_state], api_visibility="private", queue=False)
        reset_button.click(lambda: (None, "", plots.empty_figure("Press Step to add one token.")),
                           outputs=[step_state, output, step_plot], api_visibility="private", queue=False)
        prompt.change(lambda: None, outputs=[step_state], api_visibility="private", queue=False)
        stop_button.click(None, cancels=[generating], api_visibility="private")
        app.load(user_errors(lambda name: panels.status_line(store.get(name))), inputs=[model_name],
                 outputs=[status], api_visibility="private")
    return app


def launch_options() -> dict:
    """Arguments for `app.launch` that the Blocks need (Gradio 6 takes CSS at launch)."""
    return {"css": CSS, "theme": gr.themes.Soft(), "show_error": False}

