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
    seen = [s["tokens_seen"] for s in run.log["snapshots"]] + [run.log["tokens_seen"]]
    assert training.stops_text(run) == "after " + " / ".join(training.tokens_label(n) for n in seen) + " tokens"


def test_the_caption_gives_the_snapshots_step_and_validation_loss(run):
    last = len(run.snapshots) - 1
    assert training.snapshot_caption(run, 0).startswith(
        f"**Snapshot 0 (slider 0–{last}): step 0 of {run.log['step']:,}**, before any training")
    final = run.log["evals"][-1]
    assert (f"validation loss {final['val_loss']:.2f} nats (perplexity {final['val_perplexity']:.0f})"
            in training.snapshot_caption(run, last))


def test_the_loss_curve_marks_the_chosen_snapshot(run):
    figure = training.loss_figure(run, 6)
    assert figure.layout.shapes[0].x0 == pytest.approx(run.snapshots[6].tokens_seen / 1e6)  # x in millions
    share = run.log["repeat_windows"]["share"]
    assert f"{share:.0%} of them holding a repeated sequence" in figure.layout.title.subtitle.text.replace("<br>", " ")


@pytest.fixture(scope="module")
def probed_heads(store):
    """The finished model's strongest induction and previous-token heads, found by the independent probe."""
    import gpt2
    from head_probe import every_token, induction_probe, previous_token_scores

    model = store.get(SHIPPED_NAME).model
    induction = induction_probe(model, every_token(model, gpt2.get_tokenizer(gpt2.SHIPPED_MODELS["tiny"]).eot_token))
    validation = np.load(gpt2.SHIPPED_MODELS["tiny"] / "validation_tokens.npy").astype(np.int64).tolist()
    previous = previous_token_scores(model, validation)
    best = lambda scores: tuple(int(i) for i in np.unravel_index(int(scores.argmax()), scores.shape))  # noqa: E731
    return best(induction["induction"].numpy()), best(previous.numpy())


def test_the_induction_head_is_labelled_at_the_end_and_not_before_the_phase_change(store, run, probed_heads):
    import gpt2
    from head_probe import every_token, induction_probe

    (layer, head), _ = probed_heads
    last = len(run.snapshots) - 1
    assert view_at(store, last).scores.label(layer, head) == "induction"
    eot = gpt2.get_tokenizer(gpt2.SHIPPED_MODELS["tiny"]).eot_token
    scores = [float(induction_probe(m, every_token(m, eot))["induction"][layer, head])
              for m in (store.snapshot(SHIPPED_NAME, i).model for i in range(last))]
    before = max(i for i, score in enumerate(scores) if score < 0.1)  # the last snapshot before it formed
    assert view_at(store, before).scores.label(layer, head) != "induction"


def test_the_map_labels_heads_as_the_attention_tab_does(store, run, probed_heads):
    (layer, head), (p_layer, p_head) = probed_heads
    view = view_at(store, len(run.snapshots) - 1)
    hovers = training.head_map(view, layer, head).data[1].hovertext  # one per tile, by layer and head
    assert hovers[layer][head] == f"layer {layer}, head {head}: induction"
    assert hovers[p_layer][p_head] == f"layer {p_layer}, head {p_head}: previous-token"


def test_each_snapshot_has_its_own_sample_made_once(store, run):
    first = training.sample(run, 0, store.snapshot(SHIPPED_NAME, 0))
    last = len(run.snapshots) - 1
    assert first.startswith(training.SAMPLE_START) and first != training.sample(run, last, store.get(SHIPPED_NAME))
    assert training.sample(run, 0, None) is first  # kept: no model needed the second time


def test_the_text_names_the_strongest_heads_with_this_snapshots_numbers(store, run, probed_heads):
    (layer, head), _ = probed_heads
    view = view_at(store, len(run.snapshots) - 1)
    text = training.heads_text(view, run, layer, head)
    induction = view.scores.induction
    best = np.unravel_index(int(np.argmax(induction)), induction.shape)
    assert f"strongest induction head: layer {best[0]} head {best[1]} at {induction.max():.2f}" in text
    assert best[0] == layer  # the probe's head and the app's are in the same layer (two heads there copy)


def test_the_about_text_says_the_model_saw_repeated_sequences(run):
    repeats = run.log["repeat_windows"]
    text = training.about_text(run, SHIPPED_NAME)
    assert f"{repeats['share']:.0%} of its training windows held a sequence written twice in a row" in text
    pool = f"its {repeats['vocab']:,} most frequent tokens" if repeats.get("vocab") else "its whole vocabulary"
    assert f"random tokens drawn from {pool}" in text
    if repeats.get("text_share"):
        assert f"in {repeats['text_share']:.0%} of those windows, a span of its own training text" in text


def test_a_model_without_snapshots_is_told_so():
    text = training.about_text(None, "124M")
    assert "has no training snapshots" in text and "tiny (trained here)" in text
