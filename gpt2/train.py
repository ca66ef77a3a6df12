"""Pretraining a small GPT-2: next-token prediction on a text, as in the GPT-2 paper.

    text --BPE--> token ids --split--> train (first 90 %) | validation (last 10 %)
    each step: a batch of random windows of n_ctx + 1 tokens, x = window[:-1], y = window[1:]
               loss = mean cross-entropy of the model's logits at x against y
               AdamW (weight decay on the blocks' weight matrices only), warm-up then cosine decay,
               gradients clipped to a global norm
    every eval_every steps: the validation loss on fixed windows, a checkpoint, the log and a loss curve

Repeated windows (`repeat_share`): a share of the training windows hold a sequence
followed by the same sequence again, written into a window of natural text at a random
place and with a random length (from n_ctx/8 to half the window), so no fixed distance or
position gives the answer away. The sequence is random tokens, drawn uniformly from the whole
vocabulary (`repeat_vocab` 0, the default) or from its `repeat_vocab` most frequent tokens;
or, for a share `repeat_text_share` of these windows, a span of the window's own natural text
written again. Nothing predicts the first copy of random tokens, but every token of the second
copy is predicted by finding its earlier occurrence and copying the token after it: the job of
an induction head (Olsson et al. 2022). A small model trained briefly on natural text alone may
not grow one; these windows make copying worth learning. A pool of only frequent tokens teaches
a head to copy those tokens, not any token; repeated natural text makes copying pay on the kind
of text the model reads. The log records all three settings so the explorer can say what the
model saw.

Everything random (init, batches, repeated windows, dropout) comes from `seed`, and the
random states are saved with the checkpoint, so `resume` continues the same run.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoint import (PROJECT_FORMAT, CheckpointError, ResumePoint, load_checkpoint, project_hparams, read_hparams,
                         resume_point, save_checkpoint, write_text_atomically, write_weights)
from .config import GPTConfig
from .fast import make_fast
from .model import GPT2
from .tokenizer import BPE_FILE, TOKENIZER_NAME, GPT2Encoding, get_tokenizer

CURVE_NAME = "loss_curve.svg"
SNAPSHOT_DIR = "snapshots"


class TrainingError(ValueError):
    """A training run that cannot start: the message names the problem and what is allowed."""


@dataclass(frozen=True)
class TrainSettings:
    """How to train (the model's shape is a GPTConfig)."""
    batch_size: int = 32  # windows per micro-batch
    grad_accum: int = 1  # micro-batches whose gradients are summed into one step
    lr: float = 3e-3  # peak learning rate, reached after warm-up
    min_lr_ratio: float = 0.1  # the cosine decays to lr * min_lr_ratio at max_steps
    warmup_steps: int = 100
    max_steps: int = 2000
    max_minutes: float | None = None  # stop earlier when this much wall time has passed
    weight_decay: float = 0.1  # on the blocks' weight matrices only
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # global gradient norm; 0 turns clipping off
    eval_every: int = 100
    eval_windows: int = 64  # validation windows per evaluation (fixed, the same each time)
    val_fraction: float = 0.1
    seed: int = 1337
    repeat_share: float = 0.0  # share of training windows that hold a sequence written twice
    repeat_vocab: int = 0  # random repeats draw from this many most frequent tokens; 0: every token but <|endoftext|>
    repeat_text_share: float = 0.0  # share of those windows whose sequence is a span of their own text
    snapshot_steps: tuple[int, ...] = ()
    device: str = "cpu"
    threads: int | None = None  # CPU threads (default: every CPU this process may use)

    def check(self) -> None:
        positive = ("batch_size", "grad_accum", "max_steps", "eval_every", "eval_windows")
        for name in positive:
            if getattr(self, name) < 1:
                raise TrainingError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        ranges = {"lr": (0, 1), "min_lr_ratio": (0, 1), "weight_decay": (0, 10), "val_fraction": (0, 0.5),
                  "repeat_share": (0, 1), "repeat_text_share": (0, 1), "beta1": (0, 1), "beta2": (0, 1), "grad_clip": (0, 1e6)}
        for name, (low, high) in ranges.items():
            value, low_open = getattr(self, name), name in ("lr", "val_fraction")
            if not low <= value <= high or (low_open and value == low):
                allowed = f"{'(' if low_open else '['}{low}, {high}]"
                raise TrainingError(f"--{name.replace('_', '-')} must be in {allowed}, got {value}")
        if self.repeat_vocab < 0:
            raise TrainingError(f"--repeat-vocab must be 0 (every token) or more, got {self.repeat_vocab}")
        if self.warmup_steps < 0:
            raise TrainingError(f"--warmup-steps must be 0 or more, got {self.warmup_steps}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise TrainingError(f"--max-minutes must be positive, got {self.max_minutes}")
        if any(step < 0 or step > self.max_steps for step in self.snapshot_steps):
            raise TrainingError(f"--snapshot-steps must lie in 0..max_steps ({self.max_steps}), "
                                f"got {list(self.snapshot_steps)}")


def check_config(config: GPTConfig) -> None:
    """Refuse shapes a model cannot be trained with, naming the field."""
    if config.n_ctx < 2:
        raise TrainingError(f"--n-ctx must be at least 2 (a window needs a token and its successor), "
                            f"got {config.n_ctx}")
    if config.n_vocab < 258:
        raise TrainingError(f"--n-vocab must be at least 258 (256 bytes, a merge, <|endoftext|>), got {config.n_vocab}")


# ---------------------------------------------------------------- data

def read_texts(paths: list[str | Path] | None) -> tuple[list[str], list[str]]:
    """(documents, their names): each file is one document; no files = the standard library's text."""
    if not paths:  # one document, exactly the text `python -m gpt2 corpus` writes, so both train alike
        from .corpus import stdlib_corpus

        return [stdlib_corpus()], ["python-stdlib"]
    documents = []
    for path in paths:
        try:
            documents.append(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TrainingError(f"--data: no file at {path}") from None
        except UnicodeDecodeError as err:
            raise TrainingError(f"--data: {path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    return documents, [Path(p).name for p in paths]


def encode_documents(enc: GPT2Encoding, documents: list[str]) -> torch.Tensor:
    """All documents as one stream of ids, each followed by <|endoftext|> as in GPT-2's training."""
    ids: list[int] = []
    for tokens in enc.encode_batch(documents, allowed_special="all"):
        ids.extend(tokens)
        ids.append(enc.eot_token)
    return torch.tensor(ids, dtype=torch.long)


def split_tokens(tokens: torch.Tensor, n_ctx: int, val_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation): the last `val_fraction` of the stream is held out; both must hold a window."""
    n_val = max(int(len(tokens) * val_fraction), n_ctx + 1)
    needed = n_val + n_ctx + 1
    if len(tokens) < needed:
        raise TrainingError(f"the corpus is too small: {len(tokens)} tokens, and a context of {n_ctx} needs at "
                            f"least {needed} ({n_ctx + 1} to train on and {n_val} to validate); "
                            "give more text or a smaller --n-ctx")
    return tokens[:-n_val], tokens[-n_val:]


def validation_windows(val: torch.Tensor, n_ctx: int, max_windows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) for consecutive, non-overlapping windows from the start of the validation tokens."""
    n = min(max_windows, (len(val) - 1) // n_ctx)
    x = val[: n * n_ctx].view(n, n_ctx)
    y = val[1: n * n_ctx + 1].view(n, n_ctx)
    return x, y


def repeat_pool(train: torch.Tensor, n_vocab: int, eot: int, repeat_vocab: int) -> torch.Tensor:
    """The token ids random repeats draw from: every id but <|endoftext|> (repeat_vocab 0), or the
    repeat_vocab most frequent tokens of the training text."""
    if repeat_vocab == 0:
        ids = torch.arange(n_vocab)
        return ids[ids != eot]
    counts = torch.bincount(train, minlength=n_vocab)
    counts[eot] = 0  # a document boundary is not a token to copy
    return counts.argsort(descending=True)[: min(repeat_vocab, int((counts > 0).sum()))]


class Batches:
    """Random training windows, some of them (repeat_share) holding a sequence written twice."""

    def __init__(self, train: torch.Tensor, n_ctx: int, settings: TrainSettings, n_vocab: int, eot: int):
        self.train, self.n_ctx, self.settings = train, n_ctx, settings
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.offsets = torch.arange(n_ctx + 1)
        self.pool = repeat_pool(train, n_vocab, eot, settings.repeat_vocab)

    def _repeat_inside(self, window: torch.Tensor) -> torch.Tensor:
        """The window with a sequence written into it twice in a row: random tokens of the pool, or
        (for a share repeat_text_share) the window's own text at that place, written again.

        Its length and where it starts are random, so the only way to predict the second copy
        is to find the current token earlier in the window and copy what followed it: no fixed
        distance or position gives the answer away.
        """
        size = len(window)
        length = int(torch.randint(max(2, size // 8), size // 2 + 1, (), generator=self.generator))
        start = int(torch.randint(0, size - 2 * length + 1, (), generator=self.generator))
        window = window.clone()
        if float(torch.rand((), generator=self.generator)) >= self.settings.repeat_text_share:
            window[start:start + length] = self.pool[torch.randint(len(self.pool), (length,),
                                                                   generator=self.generator)]
        window[start + length:start + 2 * length] = window[start:start + length]
        return window

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        B, T = self.settings.batch_size, self.n_ctx
        starts = torch.randint(len(self.train) - T, (B,), generator=self.generator)
        windows = self.train[starts[:, None] + self.offsets]  # (B, T + 1)
        if self.settings.repeat_share > 0:
            for row in torch.nonzero(torch.rand(B, generator=self.generator) < self.settings.repeat_share).flatten():
                windows[row] = self._repeat_inside(windows[row])
        return windows[:, :-1], windows[:, 1:]


# ---------------------------------------------------------------- optimisation

def param_groups(model: GPT2, weight_decay: float) -> list[dict]:
    """Weight decay on the blocks' weight matrices; none on embeddings, LayerNorm gains or biases."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        in_a_block_matrix = name.startswith("h.") and param.dim() == 2
        (decay if in_a_block_matrix else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def learning_rate(step: int, settings: TrainSettings) -> float:
    """Linear warm-up to `lr`, then a cosine down to lr * min_lr_ratio at max_steps."""
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    span = max(settings.max_steps - settings.warmup_steps, 1)
    progress = min((step - settings.warmup_steps) / span, 1.0)
    low = settings.lr * settings.min_lr_ratio
    return low + 0.5 * (settings.lr - low) * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def evaluate(model: GPT2, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: str) -> float:
    """Mean cross-entropy (nats per token) over the validation windows."""
    was_training = model.training
    model.eval()
    total = 0.0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
        logits = model(xb)
        total += F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="sum").item()
    model.train(was_training)
    return total / y.numel()


# ---------------------------------------------------------------- the run

@dataclass
class Run:
    """Everything a training run needs and produces, saved and restored with the checkpoint."""
    model: GPT2
    optimizer: torch.optim.Optimizer
    batches: Batches
    val_x: torch.Tensor
    val_y: torch.Tensor
    settings: TrainSettings
    out: Path
    tokenizer_file: Path
    log: dict
    step: int = 0
    tokens_seen: int = 0
    pending_losses: list[float] = field(default_factory=list)
    resumed: str | None = None  # for a resumed run: which step it resumed from, and why that one

    def state(self) -> dict:
        state = {"optimizer": self.optimizer.state_dict(), "batch_rng": self.batches.generator.get_state(),
                 "torch_rng": torch.get_rng_state(), "tokens_seen": self.tokens_seen,
                 "pending_losses": list(self.pending_losses)}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def restore(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.batches.generator.set_state(state["batch_rng"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.step, self.tokens_seen = state["step"], state["tokens_seen"]
        self.pending_losses = list(state["pending_losses"])

    def save(self) -> None:
        self.log.update(step=self.step, tokens_seen=self.tokens_seen)
        save_checkpoint(self.out, self.model, self.tokenizer_file, self.log, self.state(), self.step)
        write_text_atomically(self.out / CURVE_NAME, loss_curve_svg(self.log["evals"]))

    def snapshot(self) -> None:
        """Weights only, in float16 to keep them small (they are for looking at, not for resuming),
        in out/snapshots/step-N/: loadable with gpt2.load_checkpoint."""
        folder = self.out / SNAPSHOT_DIR / f"step-{self.step}"
        folder.mkdir(parents=True, exist_ok=True)
        metadata = {"format": PROJECT_FORMAT, "step": str(self.step), "tokens_seen": str(self.tokens_seen),
                    "hparams": json.dumps(project_hparams(self.model.config))}
        write_weights(self.model, folder / "model.safetensors", metadata, dtype=torch.float16)
        entry = {"step": self.step, "tokens_seen": self.tokens_seen, "path": f"{SNAPSHOT_DIR}/step-{self.step}"}
        self.log["snapshots"] = [s for s in self.log["snapshots"] if s["step"] != self.step] + [entry]


def _device_and_threads(settings: TrainSettings) -> str:
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = settings.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"--device {device}: this torch build sees no CUDA device; use --device cpu")
    if not (device == "cpu" or device.startswith("cuda") or device == "mps"):
        raise TrainingError(f"--device must be cpu, cuda, cuda:N or mps, got {device!r}")
    return device


def _check_disk_space(out: Path, n_params: int, settings: TrainSettings) -> None:
    """Refuse to start when the checkpoint (weights + AdamW's two moments) and snapshots cannot fit."""
    needed = 4 * n_params * (3 + len(settings.snapshot_steps)) + (1 << 20)
    existing = out
    while not existing.exists():
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free < 2 * needed:
        raise TrainingError(f"--out {out}: only {free / 1e6:.1f} MB free there, and the checkpoint and "
                            f"snapshots need about {2 * needed / 1e6:.1f} MB (with room to write a new copy)")


def _tokenizer(documents: list[str], n_vocab: int, tokenizer: str | Path | None,
               out: Path) -> tuple[GPT2Encoding, Path, dict]:
    """The run's tokenizer, its ranks file in `out`, and stats for the log."""
    out.mkdir(parents=True, exist_ok=True)
    target = out / TOKENIZER_NAME
    started = time.perf_counter()
    if tokenizer is None:
        from .bpe import train_bpe_ranks, write_ranks

        try:
            write_ranks(train_bpe_ranks(documents, n_vocab), target)
        except ValueError as err:
            raise TrainingError(f"--n-vocab: {err}") from None
        source = "trained on the training text"
    else:
        source_file = BPE_FILE if str(tokenizer) == "gpt2" else Path(tokenizer)
        if not source_file.is_file():
            raise TrainingError(f"--tokenizer: no ranks file at {tokenizer} (give a .tiktoken file or 'gpt2')")
        if source_file.resolve() != target.resolve():
            shutil.copyfile(source_file, target)
        source = str(tokenizer)
    enc = get_tokenizer(out)
    if enc.n_vocab != n_vocab:
        raise TrainingError(f"--n-vocab is {n_vocab} but the tokenizer {tokenizer} has {enc.n_vocab} tokens")
    stats = {"n_vocab": enc.n_vocab, "source": source, "seconds": round(time.perf_counter() - started, 2)}
    return enc, target, stats


def _data_fingerprint(documents: list[str]) -> str:
    digest = hashlib.sha256()
    for document in documents:
        digest.update(hashlib.sha256(document.encode("utf-8")).digest())
    return digest.hexdigest()


def prepare(config: GPTConfig, settings: TrainSettings, out: str | Path, data: list[str | Path] | None = None,
            tokenizer: str | Path | None = None, resume: bool = False, command: list[str] | None = None) -> Run:
    """Read the data, make or load the tokenizer and the model, and return a Run ready to `train`.

    With `resume`, the config, tokenizer, settings (but max_steps, max_minutes, device,
    threads and snapshot_steps) and random states come from `out`.
    """
    out = Path(out)
    if resume:
        point = _resume_point(out)
        config, settings = _resumed_config_and_settings(out, point.log, settings)
    check_config(config)
    settings.check()
    device = _device_and_threads(settings)
    documents, sources = read_texts(data)
    if not any(document.strip() for document in documents):
        raise TrainingError("the corpus is empty: --data files hold no text")
    if resume:
        enc, tokenizer_file, tokenizer_stats = get_tokenizer(out), out / TOKENIZER_NAME, None
    else:
        with torch.device("meta"):  # counts the parameters without allocating them
            n_params = GPT2(config).num_parameters()
        _check_disk_space(out, n_params, settings)
        enc, tokenizer_file, tokenizer_stats = _tokenizer(documents, config.n_vocab, tokenizer, out)
    tokens = encode_documents(enc, documents)
    train, val = split_tokens(tokens, config.n_ctx, settings.val_fraction)
    torch.manual_seed(settings.seed)  # the model's initialisation and dropout
    model = GPT2(config).to(device).train()
    if device == "cpu":  # the same model with fused attention and cheaper hook points (gpt2/fast.py); no
        make_fast(model, memory_share=0.0)  # prepacked copy, which weights that change every step cannot use
    optimizer = torch.optim.AdamW(param_groups(model, settings.weight_decay), lr=settings.lr,
                                  betas=(settings.beta1, settings.beta2))
    batches = Batches(train, config.n_ctx, settings, config.n_vocab, enc.eot_token)
    val_x, val_y = validation_windows(val, config.n_ctx, settings.eval_windows)
    fingerprint = _data_fingerprint(documents)
    if resume:
        log = point.log
        if not isinstance(log.get("data"), dict) or log["data"].get("sha256") != fingerprint:
            raise TrainingError(f"--resume: the data differs from the run saved in {out}; give the same --data")
    else:
        log = _new_log(config, settings, enc, tokenizer_stats, documents, sources, fingerprint, train, val, command)
        if settings.repeat_share > 0 and settings.repeat_vocab:  # a pool of frequent tokens: the explorer's
            log["repeat_windows"]["token_ids"] = sorted(batches.pool.tolist())  # induction test draws from it
    run = Run(model, optimizer, batches, val_x, val_y, settings, out, tokenizer_file, log)
    if resume:
        _restore(run, out, point, device)
    log["settings"] = _jsonable(settings)
    return run


def _resume_point(out: Path) -> ResumePoint:
    """The weights and training state of the run in `out` that go together (see checkpoint.save_checkpoint)."""
    if not out.is_dir():
        raise TrainingError(f"--resume: there is no folder {out}; train into it first without --resume")
    try:
        return resume_point(out)
    except CheckpointError as err:
        raise TrainingError(f"--resume: {err}") from None


def _resumed_config_and_settings(out: Path, log: dict, given: TrainSettings) -> tuple[GPTConfig, TrainSettings]:
    config = read_hparams(out)
    saved = log.get("settings")
    keep_given = {"max_steps", "max_minutes", "device", "threads", "snapshot_steps"}
    try:
        settings = TrainSettings(**{**saved, **{k: getattr(given, k) for k in keep_given}})
    except TypeError:  # not a dict, or not TrainSettings' fields
        raise TrainingError(f"--resume: the training log in {out} holds no settings this trainer knows; "
                            "start a new run") from None
    return config, settings


def _restore(run: Run, out: Path, point: ResumePoint, device: str) -> None:
    with torch.no_grad():
        saved = load_checkpoint(out)  # the weights of point.step: resume_point checked they go together
        for param, value in zip(run.model.parameters(), saved.parameters()):
            param.copy_(value)
    run.restore(point.state)
    run.resumed = point.note
    for group_state in run.optimizer.state.values():  # moments onto the training device
        for key, value in group_state.items():
            if torch.is_tensor(value) and key != "step":
                group_state[key] = value.to(device)


def _jsonable(settings: TrainSettings) -> dict:
    values = asdict(settings)
    values["snapshot_steps"] = list(settings.snapshot_steps)
    return values


def _new_log(config, settings, enc, tokenizer_stats, documents, sources, fingerprint, train, val, command) -> dict:
    chars = sum(len(d) for d in documents)
    tokenizer_stats["tokens_per_char"] = round((len(train) + len(val)) / max(chars, 1), 4)
    return {
        "command": command if command is not None else sys.argv,
        "torch": torch.__version__,
        "device": settings.device,
        "config": project_hparams(config),
        "settings": _jsonable(settings),
        "tokenizer": tokenizer_stats,
        "data": {"sources": sources, "documents": len(documents), "characters": chars, "sha256": fingerprint,
                 # what `sha256sum` prints for each file (for the default text: for `python -m gpt2 corpus`'s file)
                 "text_sha256": [hashlib.sha256(d.encode("utf-8")).hexdigest() for d in documents],
                 "train_tokens": len(train), "val_tokens": len(val),
                 "split": "the last val_tokens of the token stream are the validation text"},
        "repeat_windows": {
            "share": settings.repeat_share, "vocab": settings.repeat_vocab, "text_share": settings.repeat_text_share,
            "what": "this share of training windows held a sequence written twice in a row into a window of natural "
                    "text (length from an eighth to half of the window, place random), so that copying by content "
                    "is worth learning. The sequence was random tokens, drawn uniformly from every token but "
                    "<|endoftext|> (vocab 0) or from the vocab most frequent tokens, or, in a share text_share of "
                    "these windows, the window's own text at that place, written again"},
        "evals": [], "snapshots": [], "step": 0, "tokens_seen": 0, "stopped": None,
    }


class _StopRequest:
    """Turns the first Ctrl-C into a request to stop after the current step (the second one stops at once)."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _step(run: Run) -> float:
    """One optimizer step over grad_accum micro-batches; returns the mean training loss."""
    settings, device = run.settings, run.settings.device
    for group in run.optimizer.param_groups:
        group["lr"] = learning_rate(run.step, settings)
    total = 0.0
    for _ in range(settings.grad_accum):
        x, y = run.batches.next()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = run.model(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        (loss / settings.grad_accum).backward()
        total += loss.item()
    if settings.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), settings.grad_clip)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    run.tokens_seen += settings.batch_size * settings.grad_accum * run.batches.n_ctx
    return total / settings.grad_accum


def _evaluate_and_save(run: Run, tokens_per_s: float, elapsed: float) -> dict:
    val_loss = evaluate(run.model, run.val_x, run.val_y, run.settings.batch_size, run.settings.device)
    train_loss = sum(run.pending_losses) / len(run.pending_losses) if run.pending_losses else None
    entry = {"step": run.step, "tokens_seen": run.tokens_seen, "train_loss": train_loss, "val_loss": val_loss,
             "val_perplexity": math.exp(min(val_loss, 50.0)), "tokens_per_s": round(tokens_per_s, 1),
             "elapsed_s": round(elapsed, 1)}
    run.log["evals"] = [e for e in run.log["evals"] if e["step"] != run.step] + [entry]
    run.pending_losses.clear()
    run.save()
    return entry


def train(run: Run, progress: bool = True, on_eval: Callable[[dict], None] | None = None) -> dict:
    """Train until max_steps, max_minutes or Ctrl-C; save a resumable checkpoint and return the log."""
    from tqdm import tqdm

    settings = run.settings
    deadline = time.monotonic() + settings.max_minutes * 60 if settings.max_minutes else math.inf
    started, stopped = time.monotonic(), "max_steps"
    window_tokens, window_start = 0, time.perf_counter()
    tokens_per_s = 0.0
    bar = tqdm(total=settings.max_steps, initial=run.step, disable=not progress, unit="step", dynamic_ncols=True)
    with _StopRequest() as stop, bar:
        if run.step in settings.snapshot_steps:
            run.snapshot()
        if run.step == 0 and not run.log["evals"]:
            _report(_evaluate_and_save(run, 0.0, 0.0), bar, on_eval)
        while run.step < settings.max_steps:
            if stop.requested or time.monotonic() > deadline:
                stopped = "interrupted" if stop.requested else "max_minutes"
                break
            loss = _step(run)
            run.pending_losses.append(loss)
            window_tokens += settings.batch_size * settings.grad_accum * run.batches.n_ctx
            tokens_per_s = window_tokens / (time.perf_counter() - window_start)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tokens_per_s:,.0f}")
            if run.step in settings.snapshot_steps:
                run.snapshot()
            if run.step % settings.eval_every == 0 or run.step == settings.max_steps:
                _report(_evaluate_and_save(run, tokens_per_s, time.monotonic() - started), bar, on_eval)
                window_tokens, window_start = 0, time.perf_counter()
        run.log["stopped"] = stopped
        if not run.log["evals"] or run.log["evals"][-1]["step"] != run.step:
            _report(_evaluate_and_save(run, tokens_per_s, time.monotonic() - started), bar, on_eval)
        else:
            run.save()
    return run.log


def _report(entry: dict, bar, on_eval) -> None:
    train_loss = "-" if entry["train_loss"] is None else f"{entry['train_loss']:.3f}"
    bar.write(f"step {entry['step']}: train loss {train_loss}, validation loss {entry['val_loss']:.3f} "
              f"(perplexity {entry['val_perplexity']:.1f}), {entry['tokens_seen']:,} tokens seen")
    if on_eval is not None:
        on_eval(entry)


# ---------------------------------------------------------------- the loss curve

def loss_curve_svg(evals: list[dict], width: int = 640, height: int = 360) -> str:
    """Train and validation loss against tokens seen, as a small self-contained SVG (no plotting library)."""
    left, right, top, bottom = 60, 20, 20, 45
    points = [(e["tokens_seen"], e["val_loss"], e["train_loss"]) for e in evals]
    losses = [v for _, a, b in points for v in (a, b) if v is not None]
    if not losses:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"></svg>\n'
    x_max = max(max(p[0] for p in points), 1)
    y_low, y_high = min(losses), max(losses)
    y_high = y_high if y_high > y_low else y_low + 1

    def xy(tokens, loss):
        x = left + (width - left - right) * tokens / x_max
        y = top + (height - top - bottom) * (y_high - loss) / (y_high - y_low)
        return f"{x:.1f},{y:.1f}"

    def line(index, colour, label):
        coords = " ".join(xy(p[0], p[index]) for p in points if p[index] is not None)
        return (f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"><title>{label}'
                f'</title></polyline>')

    ticks = "".join(
        f'<text x="{left - 6}" y="{top + (height - top - bottom) * i / 4 + 4:.1f}" text-anchor="end">'
        f'{y_high - (y_high - y_low) * i / 4:.2f}</text>' for i in range(5))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="12">'
            f'<rect width="100%" height="100%" fill="white"/>'
            f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#888"/>'
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#888"/>{ticks}'
            f'<text x="{left}" y="{height - bottom + 16}">0</text>'
            f'<text x="{width - right}" y="{height - bottom + 16}" text-anchor="end">{x_max:,} tokens seen</text>'
            f'<text x="{(left + width) / 2}" y="{height - 8}" text-anchor="middle">loss (nats per token): '
            f'<tspan fill="#1f77b4">training</tspan>, <tspan fill="#d62728">validation</tspan></text>'
            f'{line(2, "#1f77b4", "training loss")}{line(1, "#d62728", "validation loss")}</svg>\n')

