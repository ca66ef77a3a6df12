"""explorer/training.py: what the Training tab shows for the shipped model and its snapshots (no Gradio)."""

import numpy as np
import pytest

from explorer import training
from explorer.store import ModelStore
from test_store import SHIPPED_NAME

PROMPT = "def __init__(self, name):\n    self.name = name\n    self.name = name"


@pytest.fixture(scope="module")
def store():
    return ModelStore(sizes=[])


@pytest.fixture(scope="module")
def run(store):
    return store.training_run(SHIPPED_NAME)


def view_at(store, index):
    return training.run_snapshot(store.snapshot(SHIPPED_NAME, index), index, PROMPT)


@pytest.mark.parametrize("n, label", [(0, "0"), (409_600, "410k"), (1_228_800, "1.2M"), (16_384_000, "16.4M")])
def test_token_counts_read_as_a_person_says_them(n, label):
    assert training.tokens_label(n) == label


def test_the_stops_name_the_tokens_seen_at_each_snapshot(run):
    assert training.stops_text(run) == "after 0 / 1.2M / 2.5M / 3.7M / 4.9M / 6.6M / 8.2M / 10.2M / 16.4M tokens"


def test_the_caption_gives_the_snapshots_step_and_validation_loss(run):
    assert training.snapshot_caption(run, 0).startswith("**Snapshot 0 of 8: step 0 of 4,000**, before any training")
    assert "validation loss 3.46 nats (perplexity 32)" in training.snapshot_caption(run, 8)


def test_the_loss_curve_marks_the_chosen_snapshot(run):
    figure = training.loss_figure(run, 6)
    assert figure.layout.shapes[0].x0 == pytest.approx(8.192)  # 8.2M tokens, the x axis is in millions
    assert "50% of them holding a repeated sequence" in figure.layout.title.subtitle.text


def test_the_induction_head_is_labelled_at_the_end_and_not_before_the_phase_change(store):
    assert view_at(store, 8).scores.label(1, 0) == "induction"
    assert view_at(store, 6).scores.label(1, 0) != "induction"  # step 2,000: 8.2M tokens


def test_the_map_labels_heads_as_the_attention_tab_does(store):
    view = view_at(store, 8)
    hovers = training.head_map(view, 1, 0).data[1].hovertext
    assert "layer 1, head 0: induction" in hovers and "layer 0, head 3: previous-token" in hovers


def test_each_snapshot_has_its_own_sample_made_once(store, run):
    first = training.sample(run, 0, store.snapshot(SHIPPED_NAME, 0))
    assert first.startswith(training.SAMPLE_START) and first != training.sample(run, 8, store.get(SHIPPED_NAME))
    assert training.sample(run, 0, None) is first  # kept: no model needed the second time


def test_the_text_names_the_strongest_heads_with_this_snapshots_numbers(store, run):
    view = view_at(store, 8)
    text = training.heads_text(view, run, 1, 0)
    induction = float(np.max(view.scores.induction))
    assert f"strongest induction head: layer 1 head 0 at {induction:.2f}" in text


def test_the_about_text_says_the_model_saw_repeated_sequences(run):
    assert "50% of its training windows held a random sequence of its 500 most frequent tokens" in \
        training.about_text(run, SHIPPED_NAME)


def test_a_model_without_snapshots_is_told_so():
    text = training.about_text(None, "124M")
    assert "has no training snapshots" in text and "tiny (trained here)" in text
