"""Training tab: watch a model trained here form its heads, snapshot by snapshot (explorer/training.py)."""

from __future__ import annotations

import gradio as gr
import numpy as np

from .. import plots, training, validation
from .parts.controls import Slider, explanation, index_slider_update, opened
from .parts.shared import Shared, Tab, View, user_errors


def build(shared: Shared) -> Tab:
    with gr.Tab("Training", id="training"):
        about = gr.Markdown("Analyze a prompt with **tiny (trained here)** to watch its heads form during training.",
                            label="Training explained")
        with gr.Row():
            # Analyze sets its range to the model's snapshots; until then there is nothing to choose.
            snapshot = Slider(0, 1, value=0, step=1, label="Snapshot", interactive=False)
            layer = Slider(0, 11, value=0, step=1, label="Layer")
            head = Slider(0, 11, value=0, step=1, label="Head")
        caption = gr.Markdown("", label="Snapshot caption")
        with gr.Row():
            curve = gr.Plot(label="Training loss curve", show_label=False, elem_id="training-curve")
            head_map = gr.Plot(label="Heads at this snapshot", show_label=False, elem_id="training-heads")
        with gr.Row():
            pattern = gr.Plot(label="Head pattern at this snapshot", show_label=False, elem_id="training-pattern")
            with gr.Column():
                heads_text = gr.Markdown("", label="Heads at this snapshot explained")
                sample = gr.Markdown("", label="Snapshot sample")
        text = explanation("Training tab explained")

    outputs = [about, snapshot, layer, head, caption, curve, head_map, pattern, heads_text, sample, text]

    def reading(run, model_name: str) -> str:
        formed = shared.store.heads_formed(model_name) if training.has_snapshots(run) else None
        if formed is None:
            return training.reading_text(run, model_name)
        before, after, after_score = formed
        return training.reading_text(run, model_name, before=before, after=after, after_score=after_score)

    def without_snapshots(run, model_name: str) -> dict:
        blank = plots.empty_figure("No training snapshots for this model")
        return {about: training.about_text(run, model_name), caption: "", curve: blank, head_map: blank,
                pattern: blank, heads_text: "", sample: "", text: reading(run, model_name),
                snapshot: gr.update(maximum=1, value=0, interactive=False)}

    def figures(loaded, run, prompt: str, index: int, layer_index: int, head_index: int) -> dict:
        snapshot_model = shared.store.snapshot(loaded.name, index)
        with shared.compute():
            view = training.run_snapshot(snapshot_model, index, prompt)
            text = training.sample(run, index, snapshot_model)
        return {caption: training.snapshot_caption(run, index), curve: training.loss_figure(run, index),
                head_map: training.head_map(view, layer_index, head_index),
                pattern: training.head_figure(view, run, layer_index, head_index),
                heads_text: training.heads_text(view, run, layer_index, head_index),
                sample: training.sample_text(run, index, text)}

    def show(view: View) -> dict:
        loaded = view.loaded
        run = shared.store.training_run(loaded.name)
        if not training.has_snapshots(run):
            return without_snapshots(run, loaded.name)
        # A new prompt starts at the finished model; the slider then goes back through training.
        config, last = loaded.model.config, len(run.snapshots) - 1
        index = last
        if "training_layer" in view.values:  # the page's sliders
            layer_index = min(view.values["training_layer"], config.n_layer - 1)
            head_index = min(view.values["training_head"], config.n_head - 1)
        else:  # the story's card: the head that becomes the finished model's strongest induction head
            layer_index, head_index = (int(i) for i in np.unravel_index(int(np.argmax(loaded.induction)),
                                                                        loaded.induction.shape))
        return figures(loaded, run, view.analysis.prompt, index, layer_index, head_index) | {
            about: training.about_text(run, loaded.name), text: reading(run, loaded.name),
            snapshot: index_slider_update(last + 1, index),
            # A head the learner picked is kept; only the range is sent, so one typed meanwhile stays.
            layer: index_slider_update(config.n_layer, layer_index, sent=view.values.get("training_layer")),
            head: index_slider_update(config.n_head, head_index, sent=view.values.get("training_head"))}

    @user_errors
    def select(handle, index, layer_index, head_index) -> dict:
        analysis, loaded = shared.analysis_of(handle)
        run = shared.store.training_run(loaded.name)
        if not training.has_snapshots(run):
            raise ValueError(f"Snapshot: {loaded.name} has no training snapshots")
        config = loaded.model.config
        layer_index, head_index = validation.layer_and_head(layer_index, head_index, config.n_layer, config.n_head)
        return figures(loaded, run, analysis.prompt, index, layer_index, head_index)

    gr.on([snapshot.input, layer.input, head.input], select, inputs=[shared.analysis, snapshot, layer, head],
          outputs=[caption, curve, head_map, pattern, heads_text, sample], api_name="select_snapshot",
          api_visibility="undocumented", show_progress="hidden", trigger_mode="always_last")
    def story(view: View, explanation_name: str) -> dict:
        return show(view) | opened(text)

    return Tab(show=show, outputs=outputs, inputs={"training_layer": layer, "training_head": head}, story=story,
               story_outputs=[text.accordion])
