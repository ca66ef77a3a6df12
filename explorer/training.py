"""What the Training tab shows: a model trained here, snapshot by snapshot (no Gradio here).

A model that `python -m gpt2 train --snapshot-steps ...` wrote keeps its weights at a few
steps of its training (models.TrainingRun). For the snapshot a learner picks, this module
runs the prompt through that snapshot (one capture of a 2-layer model with a 128-token
context: a small fraction of one Analyze on GPT-2 124M), labels its heads with the same rules as the
Attention tab (heads.py), and draws the loss curve from the training log with the
snapshot marked. Each snapshot's sample text is made once and kept on the run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import gpt2

from . import plots, teaching
from .capture import Trace, capture
from .heads import LABEL_RULES, HeadScores, head_scores
from .model_facts import training_data
from .store import LoadedModel, TrainingRun
from .analysis import encode_prompt

SAMPLE_START = "def"  # the corpus is Python's standard library: its code shows learning early
SAMPLE_TOKENS = 40


@dataclass
class SnapshotView:
    """One snapshot run on the visitor's prompt."""

    index: int
    trace: Trace
    scores: HeadScores


def has_snapshots(run: TrainingRun | None) -> bool:
    return run is not None and len(run.snapshots) > 1


def tokens_label(n: int) -> str:
    """12_345_678 -> '12.3M', 409_600 -> '410k': how many tokens, as a person says it."""
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    return f"{n / 1e3:.0f}k" if n >= 1e3 else str(n)


def stops_text(run: TrainingRun) -> str:
    """The slider's stops: 'after 0 / 1.2M / 2.5M / ... tokens'."""
    return "after " + " / ".join(tokens_label(s.tokens_seen) for s in run.snapshots) + " tokens"


def _eval_at(run: TrainingRun, step: int) -> dict | None:
    return next((e for e in run.log.get("evals", []) if e["step"] == step), None)


def snapshot_caption(run: TrainingRun, index: int) -> str:
    snapshot, last = run.snapshots[index], run.snapshots[-1]
    where = "before any training" if snapshot.step == 0 else f"after {tokens_label(snapshot.tokens_seen)} tokens"
    stops = f"slider 0–{len(run.snapshots) - 1}"  # the finished model is the last stop, after the snapshots
    line = f"**Snapshot {index} ({stops}): step {snapshot.step:,} of {last.step:,}**, {where}"
    evaluation = _eval_at(run, snapshot.step)
    if evaluation is not None:
        line += (f" · validation loss {evaluation['val_loss']:.2f} nats "
                 f"(perplexity {evaluation['val_perplexity']:,.0f})")
    return line + ("  · the finished model" if index == len(run.snapshots) - 1 else "")


def loss_figure(run: TrainingRun, index: int):
    evals = run.log.get("evals", [])
    if not evals:
        return plots.empty_figure("This model's training log has no evaluations")
    tokens = np.array([e["tokens_seen"] for e in evals], dtype=np.float64)
    train = np.array([np.nan if e["train_loss"] is None else e["train_loss"] for e in evals], dtype=np.float64)
    val = np.array([e["val_loss"] for e in evals], dtype=np.float64)
    snapshot = run.snapshots[index]
    share = repeat_share(run)
    note = ("validation loss: held-out text; training loss: the training windows"
            + (f", {share:.0%} of them holding a repeated sequence" if share else ""))
    return plots.training_curve(tokens, train, val, snapshot.tokens_seen, f"step {snapshot.step:,}",
                                np.array([s.tokens_seen for s in run.snapshots]), note=note)


def repeat_share(run: TrainingRun) -> float:
    return float(run.log.get("repeat_windows", {}).get("share") or 0.0)


def run_snapshot(snapshot: LoadedModel, index: int, prompt: str) -> SnapshotView:
    """The prompt through one snapshot, with its heads scored. Call inside the app's compute slot."""
    ids, _ = encode_prompt(snapshot.tokenizer, prompt, snapshot.model.config.n_ctx)
    trace = capture(snapshot.model, ids, snapshot.tokenizer)
    return SnapshotView(index, trace, head_scores(trace, snapshot.induction))


def head_map(view: SnapshotView, layer: int, head: int):
    """Every head of this snapshot on the prompt, labelled as the Attention tab labels them."""
    figure = plots.attention_overview(view.trace.attention, view.scores.labels(), selected=(layer, head))
    figure.layout.height = 120 + 150 * view.trace.config.n_layer  # a 2-layer model needs no 720 px
    return figure


def head_figure(view: SnapshotView, run: TrainingRun, layer: int, head: int):
    step = run.snapshots[view.index].step
    title = f"Layer {layer}, head {head} at step {step:,} ({view.scores.label(layer, head)})"
    return plots.attention_heatmap(view.trace.attention[layer, head], view.trace.tokens, title,
                                   query=view.trace.n_tokens - 1)


def sample(run: TrainingRun, index: int, snapshot: LoadedModel) -> str:
    """A greedy continuation of SAMPLE_START by this snapshot, made once per snapshot.

    Greedy, so it is the same for every visitor and shows what the snapshot finds most likely.
    Call inside the app's compute slot (which also keeps two visitors from making it twice).
    """
    if index not in run.samples:
        ids = snapshot.tokenizer.encode(SAMPLE_START)
        new = list(gpt2.generate(snapshot.model, ids, max_new_tokens=SAMPLE_TOKENS, temperature=0,
                                 stop_at_eos=False))
        run.samples[index] = SAMPLE_START + snapshot.tokenizer.decode(new)
    return run.samples[index]


def sample_text(run: TrainingRun, index: int, text: str) -> str:
    step = run.snapshots[index].step
    fence = "~~~~"  # the sample may hold ``` itself
    return (f"**What it writes at step {step:,}** (greedy: the most likely token each time, "
            f"{SAMPLE_TOKENS} tokens after `{SAMPLE_START}`):\n\n{fence}\n{text}\n{fence}")


def _best(scores: np.ndarray) -> tuple[float, int, int]:
    layer, head = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return float(scores[layer, head]), int(layer), int(head)


def reading_text(run: TrainingRun | None, model_name: str, before: int | None = None,
                 after_score: float | None = None, after: int | None = None) -> str:
    """How to read the tab, with the run's own numbers; `before`/`after` are the steps between which its
    induction head formed (store.before_heads_formed), when it did, with the best score after."""
    if not has_snapshots(run):
        return teaching.render("training", when={"snapshots": False, "formed": False}, model=model_name)
    evals = run.log.get("evals", [])
    formed = before is not None and after is not None and after_score is not None
    return teaching.render(
        "training", when={"snapshots": True, "formed": formed}, model=model_name, last_step=run.snapshots[-1].step,
        first_loss=evals[0]["val_loss"] if evals else float("nan"),
        last_loss=evals[-1]["val_loss"] if evals else float("nan"), before=before or 0, after=after or 0,
        after_score=after_score or 0.0, threshold=dict((f, t) for _, f, t in LABEL_RULES)["induction"])


def heads_text(view: SnapshotView, run: TrainingRun, layer: int, head: int) -> str:
    """What the map shows at this snapshot, with its own numbers, and what to look for."""
    s, thresholds = view.scores, {field: threshold for _, field, threshold in LABEL_RULES}
    step = run.snapshots[view.index].step
    previous, p_layer, p_head = _best(s.previous_token)
    induction, i_layer, i_head = _best(s.induction)
    return "  \n".join([
        f"At step {step:,}, layer {layer} head {head} is labelled **{s.label(layer, head)}** "
        f"(previous-token {s.previous_token[layer, head]:.2f} on your prompt, "
        f"induction {s.induction[layer, head]:.2f} on a repeated random sequence).",
        f"Strongest previous-token head: layer {p_layer} head {p_head} at {previous:.2f} "
        f"(labelled from {thresholds['previous_token']:g}); strongest induction head: layer {i_layer} head {i_head} at "
        f"{induction:.2f} (labelled from {thresholds['induction']:g}).",
        "Move the slider and watch these numbers. An induction head needs a head in an earlier layer that "
        "tells each position which token came before it (Olsson et al. 2022), so look for both, and for "
        "the bend in the loss curve where they appear."])


def about_text(run: TrainingRun | None, model_name: str) -> str:
    """The tab's opening text: what the snapshots are, and what the model was trained on."""
    if not has_snapshots(run):
        return (f"**{model_name}** has no training snapshots. This tab shows a model trained here with "
                "`python -m gpt2 train --snapshot-steps ...`: pick **tiny (trained here)** in the Model menu "
                "and press Analyze to watch its heads form.")
    log, last = run.log, run.snapshots[-1]
    config = log.get("config", {})
    tokenizer = log.get("tokenizer", {}).get("source", "")
    lines = [f"**{model_name}** was trained from scratch with `python -m gpt2 train`: {config.get('n_layer')} "
             f"layers × {config.get('n_head')} heads, d_model {config.get('n_embd')}, context {config.get('n_ctx')}, "
             f"a {config.get('n_vocab'):,}-token BPE{f' ({tokenizer})' if tokenizer else ''}, {last.step:,} steps "
             f"({tokens_label(last.tokens_seen)} tokens). It kept {len(run.snapshots) - 1} snapshots of its weights "
             f"along the way; with the finished model the slider has {len(run.snapshots)} stops "
             f"({stops_text(run)}). Pick one: the loss curve marks it, and the head map and the pattern below are that "
             "snapshot reading *your* prompt."]
    share = repeat_share(run)
    if share:
        data = training_data(log)
        tested_on = ("random sequences of the same frequent tokens" if data.repeat_vocab
                     else "random sequences of ordinary tokens from across its vocabulary")
        lines.append(f"**It saw repeated sequences on purpose.** {share:.0%} of its training windows held a sequence "
                     f"written twice in a row: {data.repeat_kinds}. In this project's trials, a model of this size "
                     "trained on the standard library's text alone grew no induction head in 18M tokens; in a random "
                     "sequence written twice, nothing but copying predicts the second copy. So the induction head "
                     f"you can watch form here was taught by these repeats, and the induction scores use {tested_on}.")
    return "\n\n".join(lines)
