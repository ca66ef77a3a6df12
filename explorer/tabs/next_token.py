"""Next token tab: the distribution over the vocabulary and what temperature, top-k and top-p do to it."""

from __future__ import annotations

import gradio as gr

from .. import panels, validation
from .parts.code_view import code_view
from .parts.controls import Number, Slider, checked, explanation, opened
from .parts.shared import Shared, Tab, View, user_errors


def build(shared: Shared) -> Tab:
    with gr.Tab("Next token", id="next_token"):
        with gr.Row():
            temperature = checked(Slider(0, validation.MAX_TEMPERATURE, value=1.0, step=0.05,
                                         label="Temperature (0 = greedy)"), validation.temperature)
            top_k = checked(Slider(0, validation.MAX_TOP_K, value=0, step=1, label="Top-k (0 = off)"), validation.top_k)
            top_p = checked(Slider(validation.MIN_TOP_P, 1, value=1.0, step=0.01, label="Top-p (1 = off)"),
                            validation.top_p)
            seed = checked(Number(value=0, precision=0, label="Seed", minimum=0), validation.seed)
        bars = gr.Plot(label="Next-token bars", show_label=False, elem_id="next-token-bars")
        text = explanation("Next token explained", open=True)
        code = code_view("next_token")
    sampling = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed}

    def figures(analysis, t, k, p, s) -> dict:
        figure, anatomy = panels.distribution_figure(analysis.label, analysis.trace.logits, t, k, p, s)
        return {bars: figure, text: panels.next_token_text(analysis.trace, anatomy, analysis.label)}

    def show(view: View) -> dict:
        return figures(view.analysis, *(view.values[name] for name in sampling))

    @user_errors
    def resample(handle, t, k, p, s) -> dict:
        return figures(shared.analysis_of(handle)[0], t, k, p, s)

    # A drag sends many values: always_last draws the last one after the current redraw, never a backlog.
    gr.on([temperature.input, top_k.input, top_p.input, seed.input], resample,
          inputs=[shared.analysis, *sampling.values()], outputs=[bars, text], api_name="resample",
          api_visibility="undocumented", show_progress="hidden", trigger_mode="always_last", queue=shared.queue_views)
    def story(view: View, explanation_name: str) -> dict:  # a card's sampling settings, drawn with them
        values = {name: view.values.get(name, control.value) for name, control in sampling.items()}
        return figures(view.analysis, *values.values()) | {sampling[name]: v for name, v in values.items()} | opened(text)

    return Tab(show=show, outputs=[bars, text], inputs=sampling, controls=sampling, code=code, story=story,
               story_keys=frozenset(sampling), story_outputs=[*sampling.values(), text.accordion])
