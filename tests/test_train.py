"""`python -m gpt2 train` and gpt2.train: a tiny model on a small text, a few seconds each."""

import json
import math
import signal
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

import gpt2
from gpt2.train import (Batches, TrainingError, TrainSettings, learning_rate, param_groups, prepare, train,
                        validation_windows)

TINY = gpt2.GPTConfig(n_vocab=300, n_ctx=32, n_embd=32, n_head=2, n_layer=2)
FAST = TrainSettings(batch_size=4, max_steps=20, eval_every=10, eval_windows=8, warmup_steps=5, threads=2)


@pytest.fixture(scope="module")
def cli_run(small_text, tmp_path_factory):
    """The issue's command (with a small vocabulary and batch so that it takes seconds)."""
    out = tmp_path_factory.mktemp("run") / "model"
    result = subprocess.run(
        [sys.executable, "-m", "gpt2", "train", "--data", str(small_text), "--out", str(out), "--n-layer", "2",
         "--n-head", "2", "--n-embd", "64", "--n-ctx", "64", "--max-steps", "60", "--n-vocab", "300",
         "--batch-size", "4", "--eval-every", "20", "--eval-windows", "8", "--warmup-steps", "10",
         "--snapshot-steps", "0,30", "--threads", "2", "--quiet"],
        capture_output=True, text=True, timeout=300)
    return result, out


def _log(out):
    return json.loads((out / "training_log.json").read_text())


def test_cli_train_exits_0_and_the_validation_loss_falls(cli_run):
    result, out = cli_run
    assert result.returncode == 0, result.stderr
    evals = _log(out)["evals"]
    assert [e["step"] for e in evals] == [0, 20, 40, 60]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.5


def test_loaded_checkpoint_gives_the_logged_validation_loss(cli_run, small_text):
    _, out = cli_run
    log = _log(out)
    model = gpt2.load_checkpoint(out)
    enc = gpt2.get_tokenizer(out)
    # Recompute the validation text from the file: all its tokens, <|endoftext|>, the last val_tokens of them.
    tokens = enc.encode(small_text.read_text(encoding="utf-8")) + [enc.eot_token]
    val = torch.tensor(tokens[-log["data"]["val_tokens"]:])
    n = min(log["settings"]["eval_windows"], (len(val) - 1) // 64)
    x, y = val[: n * 64].view(n, 64), val[1: n * 64 + 1].view(n, 64)
    with torch.no_grad():
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
    assert loss == pytest.approx(log["evals"][-1]["val_loss"], abs=1e-4)


def test_log_records_how_the_model_was_trained(cli_run):
    _, out = cli_run
    log = _log(out)
    assert log["config"] == {"n_vocab": 300, "n_ctx": 64, "n_embd": 64, "n_head": 2, "n_layer": 2, "dropout": 0.0,
                             "qkv_bias": True, "layer_norm_eps": 1e-5, "mlp_ratio": 4}
    assert log["tokens_seen"] == 60 * 4 * 64 and log["step"] == 60 and log["stopped"] == "max_steps"
    assert log["torch"] == torch.__version__ and log["device"] == "cpu"
    assert log["command"][:4] == ["python", "-m", "gpt2", "train"]
    assert log["tokenizer"]["n_vocab"] == 300 and 0 < log["tokenizer"]["tokens_per_char"] < 1
    assert log["repeat_windows"]["share"] == 0.0


def test_checkpoint_folder_has_tokenizer_curve_and_loadable_snapshots(cli_run):
    _, out = cli_run
    assert gpt2.get_tokenizer(out).n_vocab == 300
    assert (out / "loss_curve.svg").read_text().count("<polyline") == 2
    assert [s["step"] for s in _log(out)["snapshots"]] == [0, 30]
    first, middle = gpt2.load_checkpoint(out / "snapshots/step-0"), gpt2.load_checkpoint(out / "snapshots/step-30")
    assert not torch.equal(first.wte.weight, middle.wte.weight)


def _run(out, data, settings=FAST, config=TINY, **kw):
    return prepare(config, settings, out, [data], command=["test"], **kw)


def test_resume_continues_from_the_saved_step_as_if_never_stopped(small_text, tmp_path):
    straight = _run(tmp_path / "straight", small_text)
    train(straight, progress=False)
    halves = tmp_path / "halves"
    train(_run(halves, small_text), progress=False, on_eval=_interrupt_at(10))
    resumed = _run(halves, small_text, resume=True)
    assert resumed.step == 10
    log = train(resumed, progress=False)
    assert log["step"] == 20 and [e["step"] for e in log["evals"]] == [0, 10, 20]
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b)


def _interrupt_at(step):
    """An on_eval callback that presses Ctrl-C when the evaluation at `step` is done."""
    return lambda entry: entry["step"] == step and signal.raise_signal(signal.SIGINT)


def test_ctrl_c_saves_a_resumable_checkpoint(small_text, tmp_path):
    run = _run(tmp_path / "m", small_text, TrainSettings(**{**FAST.__dict__, "eval_every": 3}))
    log = train(run, progress=False, on_eval=_interrupt_at(3))
    assert log["stopped"] == "interrupted" and log["step"] == 3
    assert _run(tmp_path / "m", small_text, resume=True).step == 3


def test_weight_decay_only_on_the_blocks_weight_matrices():
    model = gpt2.GPT2(TINY)
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in decay["params"]) == sorted(
        n for n, p in model.named_parameters() if n.startswith("h.") and n.endswith(".weight") and p.dim() == 2)
    assert {"wte.weight", "wpe.weight", "ln_f.weight", "h.0.ln_1.weight", "h.0.attn.c_attn.bias"} <= {
        names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0


def test_learning_rate_warms_up_then_decays_by_cosine():
    s = TrainSettings(lr=1e-3, min_lr_ratio=0.1, warmup_steps=10, max_steps=110)
    assert learning_rate(0, s) == pytest.approx(1e-4)
    assert learning_rate(9, s) == pytest.approx(1e-3)
    assert learning_rate(60, s) == pytest.approx(0.55e-3)
    assert learning_rate(110, s) == pytest.approx(1e-4)


def _period(window):
    """The smallest L with window[L:] == window[:-L], or None."""
    return next((L for L in range(1, len(window)) if torch.equal(window[L:], window[:-L])), None)


def _repeat_in(window: torch.Tensor) -> tuple[int, int] | None:
    """(start, length) of the longest run of tokens that is immediately written again, if any."""
    size = len(window)
    for length in range(size // 2, 1, -1):
        for start in range(size - 2 * length + 1):
            if torch.equal(window[start:start + length], window[start + length:start + 2 * length]):
                return start, length
    return None


def test_repeated_windows_hold_one_sequence_twice_at_a_random_place_and_are_seeded():
    train_tokens = torch.arange(1000) % 50  # natural windows never repeat a token within 17
    settings = TrainSettings(batch_size=8, repeat_share=1.0, repeat_vocab=20, seed=3)
    batches = Batches(train_tokens, 16, settings, 300, eot=299)
    x, y = batches.next()
    windows = torch.cat([x, y[:, -1:]], dim=1)  # (B, 17)
    found = [_repeat_in(window) for window in windows]
    assert all(f is not None and f[1] >= 17 // 8 for f in found)
    frequent = set(batches.pool.tolist())
    assert len(frequent) == 20
    assert all(set(w[s:s + 2 * n].tolist()) <= frequent for w, (s, n) in zip(windows, found))
    assert len({f for f in found}) > 1  # neither the place nor the length is fixed
    x_again, _ = Batches(train_tokens, 16, settings, 300, eot=299).next()
    assert torch.equal(x, x_again)


def test_random_repeats_draw_from_the_whole_vocabulary_by_default():
    """repeat_vocab 0: every id but <|endoftext|>, also ids the training text never uses."""
    train_tokens = torch.arange(1000) % 50
    settings = TrainSettings(batch_size=64, repeat_share=1.0, seed=5)
    batches = Batches(train_tokens, 32, settings, 300, eot=299)
    assert batches.pool.tolist() == list(range(299))
    x, y = batches.next()
    seen = set(torch.cat([x, y[:, -1:]], dim=1).flatten().tolist())
    assert 299 not in seen and max(seen) > 250  # far past the 50 ids of the text


def test_text_repeats_write_the_windows_own_text_again():
    """repeat_text_share 1: every repeated sequence is the natural text at that place, written twice."""
    train_tokens = torch.arange(5000) % 700  # natural windows count up by one
    settings = TrainSettings(batch_size=16, repeat_share=1.0, repeat_text_share=1.0, seed=2)
    x, y = Batches(train_tokens, 32, settings, 1000, eot=999).next()
    for window in torch.cat([x, y[:, -1:]], dim=1):
        start, length = _repeat_in(window)
        copied = window[start:start + length]
        assert torch.all(copied[1:] - copied[:-1] == 1)  # a span of the text itself, not random tokens
        assert torch.all(window[:start + 1][1:] - window[:start + 1][:-1] == 1)  # the text before is untouched


def test_repeat_settings_are_checked():
    with pytest.raises(TrainingError, match="--repeat-vocab must be 0"):
        TrainSettings(repeat_vocab=-1).check()
    with pytest.raises(TrainingError, match=r"--repeat-text-share must be in \[0, 1\]"):
        TrainSettings(repeat_text_share=1.5).check()


def test_repeated_windows_are_seeded():
    settings = TrainSettings(batch_size=8, repeat_share=0.5, seed=3)
    first, _ = Batches(torch.arange(5000) % 700, 32, settings, 1000, eot=999).next()
    again, _ = Batches(torch.arange(5000) % 700, 32, settings, 1000, eot=999).next()
    assert torch.equal(first, again)


def test_no_repeated_windows_by_default():
    train_tokens = torch.arange(1000)
    x, y = Batches(train_tokens, 16, TrainSettings(batch_size=8), 1000, eot=999).next()
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.all(x[:, 1:] - x[:, :-1] == 1)


def test_validation_windows_are_consecutive_and_shifted_by_one():
    x, y = validation_windows(torch.arange(100), 10, max_windows=4)
    assert x.shape == (4, 10) and torch.equal(x.flatten(), torch.arange(40)) and torch.equal(y, x + 1)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "gpt2", "train", *args], capture_output=True, text=True, timeout=120)


def test_empty_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n")
    result = _cli("--data", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "m"))
    assert result.returncode == 1 and "corpus is empty" in result.stderr and "Traceback" not in result.stderr


def test_text_too_small_for_the_vocabulary_names_n_vocab(tmp_path):
    (tmp_path / "short.txt").write_text("a few words only " * 40)
    with pytest.raises(TrainingError, match=r"--n-vocab: the text is too small for a vocabulary of 300"):
        _run(tmp_path / "m", tmp_path / "short.txt")


def test_corpus_shorter_than_two_contexts_names_n_ctx(small_text, tmp_path):
    (tmp_path / "short.txt").write_text(small_text.read_text()[:3000])
    with pytest.raises(TrainingError, match=r"corpus is too small: \d+ tokens.*smaller --n-ctx"):
        _run(tmp_path / "m", tmp_path / "short.txt", config=TINY.with_(n_ctx=1024))


def test_n_embd_not_divisible_by_n_head_exits_1_naming_both(tmp_path, small_text):
    result = _cli("--data", str(small_text), "--out", str(tmp_path / "m"), "--n-embd", "30", "--n-head", "4")
    assert result.returncode == 1 and "n_embd (30)" in result.stderr and "n_head (4)" in result.stderr


def test_context_below_two_is_refused(tmp_path, small_text):
    with pytest.raises(TrainingError, match="--n-ctx must be at least 2"):
        _run(tmp_path / "m", small_text, config=TINY.with_(n_ctx=1))


def test_no_disk_space_is_refused_before_training(tmp_path, small_text, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(TrainingError, match="MB free"):
        _run(tmp_path / "m", small_text)


def test_usage_error_exits_2():
    assert _cli("--out", "x", "--snapshot-steps", "a,b").returncode == 2


def test_cross_entropy_at_initialisation_is_near_uniform(small_text, tmp_path):
    run = _run(tmp_path / "m", small_text, TrainSettings(**{**FAST.__dict__, "max_steps": 1}))
    log = train(run, progress=False)
    assert log["evals"][0]["val_loss"] == pytest.approx(math.log(300), abs=0.3)


@pytest.mark.parametrize("change, message", [
    ({"lr": 0}, r"--lr must be in \(0, 1\]"),
    ({"repeat_share": 1.5}, r"--repeat-share must be in \[0, 1\]"),
    ({"snapshot_steps": (50,)}, r"--snapshot-steps must lie in 0\.\.max_steps"),
])
def test_out_of_range_setting_names_the_flag_and_what_is_allowed(change, message):
    with pytest.raises(TrainingError, match=message):
        TrainSettings(**{**FAST.__dict__, **change}).check()


def test_log_lists_the_tokens_the_repeated_windows_draw_from(small_text, tmp_path):
    run = _run(tmp_path / "run", small_text, settings=replace(FAST, repeat_share=0.5, repeat_vocab=20))
    assert run.log["repeat_windows"]["token_ids"] == sorted(run.batches.pool.tolist())
    assert len(run.log["repeat_windows"]["token_ids"]) == 20


def test_a_whole_vocabulary_pool_is_not_listed_but_its_settings_are(small_text, tmp_path):
    """The explorer then tests induction on tokens from across the vocabulary (no token_ids to draw from)."""
    run = _run(tmp_path / "run", small_text, settings=replace(FAST, repeat_share=0.5, repeat_text_share=0.25))
    repeats = run.log["repeat_windows"]
    assert "token_ids" not in repeats
    assert (repeats["share"], repeats["vocab"], repeats["text_share"]) == (0.5, 0, 0.25)
