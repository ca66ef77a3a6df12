"""The models the app can show, loaded once and shared by every user.

A choice is one of OpenAI's released sizes (downloaded on first use), the checkpoint
directory the app was started with (`--model-dir`), or the small model this project
trained and ships in assets/ (always offered, needs no network). Choices come from a
fixed list: a name sent by a browser or an API client is looked up in it, never turned
into a path or URL. A model trained here may carry snapshots from its training
(`training_run`, `snapshot`): they are listed in its training log and chosen by index.

The host decides which released sizes are offered (`sizes`, from app.py's --sizes or
EXPLORER_SIZES; by default those whose float32 weights fit the machine beside the
analysis budget). Each model has its own lock: downloading or loading one size never
makes a visitor of an already loaded one wait. At most `max_loaded` models stay in
memory (1558M alone is 6 GB in float32).
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import gpt2
from gpt2.device import (DEVICE_ENV, DTYPE_ENV, device_memory, device_name, model_device, place, resolve_device,
                         resolve_dtype)
from gpt2.checkpoint import LOG_NAME, CheckpointError, read_training_log
from gpt2.download import DownloadError, can_reach
from gpt2.hf_format import is_hf_folder
from gpt2.hub import available_offline, locate
from gpt2.tokenizer import TOKENIZER_NAME
from gpt2.weights import is_project_checkpoint

from .heads import LABEL_RULES, induction_scores
from .embeddings import pca_2d
from .model_facts import FOLDER, RELEASED, TRAINED_HERE, ModelFacts, model_facts


SIZES_ENV = "EXPLORER_SIZES"
# The menu's names of the models this project trained and ships (gpt2.SHIPPED_MODELS): one fixed choice each.
SHIPPED = {"tiny (trained here)": "tiny"}
SHIPPED_BY_FLAG = {flag: name for name, flag in SHIPPED.items()}  # app.py --size tiny
SNAPSHOT_MARK = " · step "  # a training snapshot as a Compare choice: "tiny (trained here) · step 2,000"
INDUCTION_LABEL = dict((field, t) for _, field, t in LABEL_RULES)["induction"]
MAX_SNAPSHOTS_LOADED = 4  # a training snapshot of the shipped model is ~4 MB in float32; keep a few
PARAMETERS = {"124M": 124_439_808, "355M": 354_823_168, "774M": 774_030_080, "1558M": 1_557_611_200}


APP_BYTES = 2**30  # the app itself: Python, torch, Gradio, figures on their way out


DEFAULT_SIZES = ["124M"]  # a public app offers GPT-2 124M and the shipped models unless the host lists more


def gpu_bytes_needed(size: str, dtype: torch.dtype = torch.float32) -> int:
    """GPU memory one released size needs: its weights, and a full-context analysis at work on the GPU (every
    layer's pattern kept in float16 plus one layer's float32 scores, pattern and activations at a time)."""
    config = gpt2.GPTConfig.preset(size)
    weights = PARAMETERS[size] * torch.finfo(dtype).bits // 8
    t = config.n_ctx
    kept = config.n_layer * config.n_head * t * t * 2 + (2 * config.n_layer + 3) * t * config.n_embd * 4
    working = 3 * config.n_head * t * t * 4 + 8 * t * config.mlp_ratio * config.n_embd * 4
    return weights + kept + working


def check_sizes_fit(sizes: list[str], device: torch.device, dtype: torch.dtype = torch.float32,
                    host_memory: int | None = None, reserved: int = 0) -> None:
    """Refuse, at start, a size the host listed that the device cannot hold, with a message saying why.

    On a GPU: each size alone with one full-context analysis at work (gpu_bytes_needed). On the
    CPU: its weights beside the analyses' budget (`reserved`) and the app, in `host_memory`.
    """
    memory = device_memory(device)
    if memory is not None:
        needs = {size: gpu_bytes_needed(size, dtype) for size in sizes}
        where = f"{device_name(device)} ({memory / 2**30:.1f} GiB)"
    elif host_memory is not None:
        needs = {size: PARAMETERS[size] * torch.finfo(dtype).bits // 8 + reserved + APP_BYTES for size in sizes}
        memory, where = host_memory, f"this machine's {host_memory / 2**30:.1f} GiB beside the analyses' budget"
    else:
        return
    too_big = [size for size in sizes if needs[size] > memory]
    if too_big:
        detail = ", ".join(f"{size} needs {needs[size] / 2**30:.1f} GiB" for size in too_big)
        raise ValueError(f"the sizes {', '.join(too_big)} do not fit on {where}: {detail}. "
                         "List fewer sizes (--sizes or EXPLORER_SIZES), or try --dtype bfloat16.")


def parse_sizes(text: str) -> list[str]:
    """'124M,355M' -> ['124M', '355M'], refusing names that are not released sizes."""
    sizes = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [size for size in sizes if size not in gpt2.SIZES]
    if unknown:
        raise ValueError(f"unknown size(s) {', '.join(unknown)}; the released sizes are {', '.join(gpt2.SIZES)}")
    return sizes


def offered_sizes(flag: str | None) -> list[str]:
    """The sizes a host offers: the flag, else EXPLORER_SIZES, else DEFAULT_SIZES.

    Larger sizes are the host's choice: 1558M is 6.2 GB to download and hold, and on a public app
    any visitor could start that by picking it in the menu.
    """
    text = flag if flag is not None else os.environ.get(SIZES_ENV)
    return parse_sizes(text) if text is not None else list(DEFAULT_SIZES)


@dataclass
class LoadedModel:
    name: str
    model: gpt2.GPT2  # on the store's device: every forward pass runs here
    induction: np.ndarray  # [layer, head] induction scores, computed once at load
    load_seconds: float
    position_pca: tuple[np.ndarray, np.ndarray] = None  # PCA of W_pe, fixed per model: computed once
    # The model's own tokenizer: every panel encodes and labels tokens with it, never a global one.
    tokenizer: object = None  # a tiktoken.Encoding
    wpe: np.ndarray = None  # [n_ctx, d_model] W_pe in float32, read once at load (the Embeddings tab draws it)
    # On ZeroGPU the GPU exists only inside a spaces.GPU call, so the small per-position views (one
    # attention row, one block at one position, one head's walk) read a CPU copy instead: no GPU
    # wait and no GPU quota for a slider move. Elsewhere None, and they use `model` where it is.
    cpu_twin: gpt2.GPT2 | None = None
    # For a model whose training drilled repeats of a pool of tokens (its `induction` is measured on that pool):
    # the same test on ordinary tokens from its whole vocabulary, to say whether it copies any token. Else None.
    induction_any_token: np.ndarray | None = None
    # What texts may say about this model (its merges, special id, training data): see model_facts.py.
    facts: ModelFacts = None

    def __post_init__(self):
        if self.facts is None:  # made by hand (tests): all a text needs is the model and its tokenizer
            origin = RELEASED if self.name in gpt2.SIZES else FOLDER
            self.facts = model_facts(self.name, self.model, self.tokenizer, origin)

    @property
    def view_model(self) -> gpt2.GPT2:
        """The model the small per-position views read (see cpu_twin)."""
        return self.cpu_twin if self.cpu_twin is not None else self.model

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def describe(self) -> str:
        c = self.model.config
        where = "" if self.device.type == "cpu" else f" on {device_name(self.device)}"
        return (f"**{self.name}** loaded: {self.facts.parameters_short} parameters, "
                f"{c.n_layer} layers × {c.n_head} heads, "
                f"d_model {c.n_embd}, context {c.n_ctx} tokens (loaded in {self.load_seconds:.1f} s{where})")


@dataclass(frozen=True)
class Snapshot:
    """The weights of a model at one step of its training (the last one is the finished model)."""

    step: int
    tokens_seen: int
    folder: Path


@dataclass
class TrainingRun:
    """What a model trained here says about its training: its log (training_log.json) and its snapshots."""

    log: dict
    snapshots: list[Snapshot]  # by step; the last is the finished model itself
    samples: dict = field(default_factory=dict)  # snapshot index -> its sample text, made once (explorer/training.py)

    @classmethod
    def read(cls, folder: Path) -> "TrainingRun | None":
        """The run of a checkpoint folder, or None for one without a training log.

        A log that is not what training writes raises gpt2's CheckpointError, naming training_log.json.
        """
        log = read_training_log(folder)
        if log is None:
            return None
        _check_log(log, folder)
        snapshots = []
        for number, entry in enumerate(_list(log, "snapshots", folder), start=1):
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                raise CheckpointError(f"{LOG_NAME}: snapshot {number} has no path", folder)
            snapshot_folder = (folder / entry["path"]).resolve()
            # The log is the model's own file, but a path in it must still stay inside the model's folder.
            if folder.resolve() in snapshot_folder.parents and (snapshot_folder / "model.safetensors").is_file():
                snapshots.append(Snapshot(_count(entry, "step", f"snapshot {number}'s", folder),
                                          _count(entry, "tokens_seen", f"snapshot {number}'s", folder),
                                          snapshot_folder))
        snapshots.sort(key=lambda snapshot: snapshot.step)
        step, tokens_seen = _count(log, "step", "the run's", folder), _count(log, "tokens_seen", "the run's", folder)
        if not snapshots or snapshots[-1].step < step:
            snapshots.append(Snapshot(step, tokens_seen, folder))
        return cls(log, snapshots)

    @property
    def repeat_tokens(self) -> list[int] | None:
        """The tokens its repeated training windows were made of, if any (for the induction test)."""
        return self.log.get("repeat_windows", {}).get("token_ids") or None


def _check_log(log: dict, folder: Path) -> None:
    """The parts of the log the Training tab reads have the types training writes (else a CheckpointError)."""
    for key in ("config", "tokenizer", "repeat_windows"):
        if not isinstance(log.get(key, {}), dict):
            raise CheckpointError(f"{LOG_NAME}: {key} must be a JSON object, found a {type(log[key]).__name__}", folder)
    for number, entry in enumerate(_list(log, "evals", folder), start=1):
        losses_are_numbers = isinstance(entry, dict) and all(
            isinstance(entry.get(key), (int, float)) and not isinstance(entry.get(key), bool)
            for key in ("val_loss", "val_perplexity")) and isinstance(entry.get("train_loss"), (int, float, type(None)))
        if not losses_are_numbers:
            raise CheckpointError(f"{LOG_NAME}: evaluation {number} lacks its losses (val_loss, val_perplexity, "
                                  "train_loss as numbers)", folder)
        _count(entry, "step", f"evaluation {number}'s", folder)
        _count(entry, "tokens_seen", f"evaluation {number}'s", folder)
    repeats = log.get("repeat_windows", {})
    share, tokens = repeats.get("share", 0.0), repeats.get("token_ids", [])
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise CheckpointError(f"{LOG_NAME}: repeat_windows.share must be a number from 0 to 1", folder)
    if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0
                                               for t in tokens):
        raise CheckpointError(f"{LOG_NAME}: repeat_windows.token_ids must be a list of token ids", folder)


def _check_vocabulary(folder: Path | None, n_vocab: int, tokenizer, run: TrainingRun | None) -> None:
    """Every id the tokenizer or the log's repeated windows give is a row of the model's embedding."""
    if folder is None:  # OpenAI's sizes: GPT-2's own tokenizer
        return
    if tokenizer.n_vocab > n_vocab:
        raise CheckpointError(f"{TOKENIZER_NAME} has {tokenizer.n_vocab:,} tokens, but the model's "
                              f"vocabulary (n_vocab) has {n_vocab:,}: they are not from the same model", folder)
    if run is not None and run.repeat_tokens and max(run.repeat_tokens) >= n_vocab:
        raise CheckpointError(f"{LOG_NAME}: repeat_windows.token_ids holds ids past the model's vocabulary "
                              f"({n_vocab:,} tokens)", folder)


def _list(log: dict, key: str, folder: Path) -> list:
    value = log.get(key, [])
    if not isinstance(value, list):
        raise CheckpointError(f"{LOG_NAME}: {key} must be a list, found a {type(value).__name__}", folder)
    return value


def _count(entry: dict, key: str, whose: str, folder: Path) -> int:
    """A whole number >= 0 of the training log (a step, tokens seen); 0 when left out."""
    value = entry.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CheckpointError(f"{LOG_NAME}: {whose} {key} must be a whole number of 0 or more, found "
                              f"{str(value)[:20]!r}", folder)
    return value


class ModelStore:
    def __init__(self, model_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                 max_loaded: int = 2, sizes: list[str] | None = None, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, zero_gpu: bool = False, **download_options):
        """`device` and `dtype` default to $EXPLORER_DEVICE (else auto: CUDA when present) and
        $EXPLORER_DTYPE (else float32), see gpt2/device.py. `zero_gpu`: running on a ZeroGPU Space,
        where models sit on "cuda" from the start but the GPU is only there inside spaces.GPU calls."""
        self.device = resolve_device(os.environ.get(DEVICE_ENV)) if device is None else torch.device(device)
        self.dtype = resolve_dtype(os.environ.get(DTYPE_ENV)) if dtype is None else dtype
        self.zero_gpu = zero_gpu
        self.local_dir = Path(model_dir) if model_dir else None
        self.cache_dir = cache_dir
        self.sizes = list(gpt2.SIZES) if sizes is None else parse_sizes(",".join(sizes))
        self.download_options = download_options  # for tests (a local server); never from a user
        self.max_loaded = max_loaded
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}  # one per model: loading one never blocks another
        self._locks_lock = threading.Lock()
        self._runs: dict[str, TrainingRun | None] = {}
        self._formed: dict[str, tuple[int, int, float] | None] = {}  # heads_formed, measured once per model
        self._snapshots: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self.max_snapshots = MAX_SNAPSHOTS_LOADED
        self.notice = ""  # why the app started with the model it did, when that was not the one asked for

    @property
    def local_name(self) -> str | None:
        return f"local: {self.local_dir.name}" if self.local_dir else None

    @property
    def choices(self) -> list[str]:
        """The Model menu: the --model-dir folder, the released sizes and the shipped models. A shipped model
        that is the --model-dir folder itself is listed once, as the folder, or Compare would offer a model
        against itself."""
        local = self.local_dir.resolve() if self.local_dir else None
        shipped = [name for name in SHIPPED if gpt2.SHIPPED_MODELS[SHIPPED[name]].resolve() != local]
        return ([self.local_name] if self.local_dir else []) + self.sizes + shipped

    def folder(self, name: str) -> Path | None:
        """The checkpoint folder of a choice that has one on disk (not OpenAI's sizes, which live in the cache)."""
        self._check(name)
        if name == self.local_name:
            return self.local_dir
        return gpt2.SHIPPED_MODELS[SHIPPED[name]] if name in SHIPPED else None

    def starting_model(self, flag: str | None = None, reachable: Callable[[], bool] | None = None) -> str:
        """The model to load before serving, and `notice` set when the shipped model stands in for GPT-2.

        `flag` is app.py's --size (a released size or a shipped model's short name). With none,
        GPT-2 (the first offered size) when it is cached or can be downloaded now (one quick
        check, `reachable`), else the shipped model, which needs no network.
        """
        if flag in SHIPPED_BY_FLAG:
            return SHIPPED_BY_FLAG[flag]
        if flag:
            return flag
        if self.local_dir:
            return self.local_name
        if not self.sizes:
            return next(iter(SHIPPED))
        size = self.sizes[0]
        if available_offline(size, self.cache_dir):
            return size
        reachable = reachable or (lambda: can_reach(size, base_url=self.download_options.get("base_url")))
        if reachable():
            return size
        return self.shipped_instead(size, "is not downloaded yet and its server cannot be reached (offline?)")

    def shipped_instead(self, size: str, why: str) -> str:
        """Start with the shipped model in place of GPT-2 `size`, with a notice saying why and how to get GPT-2."""
        shipped = next(iter(SHIPPED))
        self.notice = (f"GPT-2 {size} {why}, so the app started with **{shipped}**, a small GPT-2 this project "
                       f"trained, which needs no network. To get GPT-2 {size}: pick it in the Model menu when "
                       f"online, or run `python -m gpt2 download {size}` on a machine with internet and copy its "
                       f"cache folder (`~/.cache/gpt2-explorer`, or `$GPT2_EXPLORER_CACHE`) here.")
        return shipped

    def status_notice(self, name: str) -> str:
        """The start-up notice, shown with the status line while the model it explains is shown."""
        return f"\n\n{self.notice}" if self.notice and name in SHIPPED else ""

    @property
    def default(self) -> str:
        return self.choices[0]

    def loaded(self, name: str) -> LoadedModel | None:
        """The model if it is loaded now, else None (never loads)."""
        return self._loaded.get(name)

    def needs_download(self, name: str) -> bool:
        self._check(name)
        return name in gpt2.SIZES and name not in self._loaded and not available_offline(name, self.cache_dir)

    def _lock_for(self, name: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(name, threading.Lock())

    def get(self, name: str, on_progress: Callable[[str, int, int | None], None] | None = None) -> LoadedModel:
        """The loaded model for a choice, loading (and downloading) it first if needed."""
        self._check(name)
        loaded = self._loaded.get(name)
        if loaded is not None:  # no lock: a download of another size must not block users of this one
            return loaded
        with self._lock_for(name):
            if name in self._loaded:
                return self._loaded[name]
            start = time.perf_counter()
            model = self._load(name, on_progress)
            tokenizer, run = self._tokenizer(name), self.training_run(name)
            _check_vocabulary(self.folder(name), model.config.n_vocab, tokenizer, run)
            loaded = self._prepare(name, model, tokenizer, run, facts=self._facts(name, name, model, tokenizer, run))
            loaded.position_pca = pca_2d(loaded.wpe)
            loaded.load_seconds = time.perf_counter() - start
            with self._locks_lock:
                self._loaded[name] = loaded
                while len(self._loaded) > self.max_loaded:
                    self._loaded.popitem(last=False)
            return loaded

    def _facts(self, choice: str, shown_name: str, model: gpt2.GPT2, tokenizer, run: TrainingRun | None) -> ModelFacts:
        """What texts may say about `choice`'s model (or one of its snapshots, shown as `shown_name`)."""
        folder = self.folder(choice)
        if folder is None:
            return model_facts(shown_name, model, tokenizer, RELEASED)
        openai_layout = not is_project_checkpoint(folder) and not is_hf_folder(folder)
        return model_facts(shown_name, model, tokenizer, TRAINED_HERE if run is not None else FOLDER,
                           openai_layout=openai_layout, log=run.log if run is not None else None)

    def _prepare(self, name: str, model: gpt2.GPT2, tokenizer, run: TrainingRun | None,
                 device: torch.device | None = None, facts: ModelFacts | None = None) -> LoadedModel:
        """Place a freshly loaded float32 CPU model on the store's device, with what is computed once per model."""
        wpe = model.wpe.weight.detach().float().numpy().copy()  # read before the weights leave the CPU
        twin = None
        if self.zero_gpu and device is None:  # a model for the GPU share; not the CPU snapshots (see `snapshot`)
            twin = place(copy.deepcopy(model), "cpu")  # see LoadedModel.cpu_twin
        place(model, device or self.device, self.dtype if device is None else torch.float32)
        # One capture of a repeated random sequence; on ZeroGPU the GPU is not there yet, so the twin runs it.
        induction = induction_scores(twin or model, tokens=run.repeat_tokens if run else None)
        anywhere = induction_scores(twin or model) if run and run.repeat_tokens else None
        return LoadedModel(name, model, induction, 0.0, tokenizer=tokenizer, wpe=wpe, cpu_twin=twin, facts=facts,
                           induction_any_token=anywhere)

    def _tokenizer(self, name: str):
        # A checkpoint folder may carry its own tokenizer (a model trained here); OpenAI's sizes speak GPT-2's.
        folder = self.folder(name)
        return gpt2.get_tokenizer(folder) if folder is not None else gpt2.get_tokenizer()

    def speaks_gpt2(self, name: str) -> bool:
        """Whether a choice reads text with GPT-2's tokenizer (OpenAI's sizes, or a folder without a tokenizer of
        its own): then English is its language; a model trained here reads what it was trained on."""
        folder = self.folder(name)
        return folder is None or not (folder / TOKENIZER_NAME).is_file()

    def compare_choices(self) -> list[str]:
        """What Compare offers: the models that can be loaded now (a released size only when it is loaded or
        on disk: Compare never starts a download), and the training snapshots of models trained here."""
        names = [name for name in self.choices
                 if name not in gpt2.SIZES or name in self._loaded or available_offline(name, self.cache_dir)]
        for name in list(names):
            run = self.training_run(name)
            if run is not None:
                names += [f"{name}{SNAPSHOT_MARK}{s.step:,}" for s in run.snapshots[:-1]]
        return names

    def compare_model(self, choice: str) -> LoadedModel:
        """A Compare choice loaded: a model of the menu, or a training snapshot named by `compare_choices`."""
        name, mark, step = choice.partition(SNAPSHOT_MARK)
        if not mark:
            return self.get(choice)
        run = self.training_run(name)
        steps = [f"{s.step:,}" for s in run.snapshots] if run is not None else []
        if step not in steps[:-1]:
            raise ValueError(f"Model: unknown snapshot {choice!r}")
        return dataclasses.replace(self.snapshot(name, steps.index(step)), name=choice)

    def heads_formed(self, name: str) -> tuple[int, int, float] | None:
        """(step before, step after, best induction score after) around the last snapshot at which `name`'s
        induction head appeared: the last snapshot with no head labelled induction and the next one, which has
        one. None without such a pair of snapshots. Measured once per model (it loads every snapshot, more
        than stay loaded), then kept: the Compare and Training tabs ask again each time they are built."""
        if name in self._formed:
            return self._formed[name]
        run = self.training_run(name)
        formed = None
        if run is not None and len(run.snapshots) >= 2:
            best = [float(self.snapshot(name, i).induction.max()) for i in range(len(run.snapshots))]
            formed = next(((run.snapshots[i - 1].step, run.snapshots[i].step, best[i])
                           for i in range(len(best) - 1, 0, -1) if best[i] >= INDUCTION_LABEL > best[i - 1]), None)
        self._formed[name] = formed
        return formed

    def before_heads_formed(self, name: str) -> str | None:
        """The Compare choice of `name`'s last snapshot with no induction head, when a later one (or the finished
        model) has one: the model just before its heads formed. None without such a pair of snapshots."""
        formed = self.heads_formed(name)
        return None if formed is None else f"{name}{SNAPSHOT_MARK}{formed[0]:,}"

    def training_run(self, name: str) -> TrainingRun | None:
        """The training log and snapshots of a model trained here (None for OpenAI's sizes), read once."""
        folder = self.folder(name)
        if folder is None:
            return None
        with self._locks_lock:
            if name not in self._runs:
                self._runs[name] = TrainingRun.read(folder)
            return self._runs[name]

    def snapshot(self, name: str, index) -> LoadedModel:
        """The model `name` as it was at its `index`-th snapshot (the last index is the finished model).

        Snapshot folders hold weights only: the tokenizer is the finished model's. At most
        `max_snapshots` snapshots stay loaded, the least recently used going first. On ZeroGPU they
        stay on the CPU, where the app's own process can run them (they are small models), and the
        finished model is given as its CPU copy for the same reason.
        """
        run = self.training_run(name)
        if run is None:
            raise ValueError(f"Snapshot: {name} has no training snapshots")
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(run.snapshots):
            raise ValueError(f"Snapshot must be a whole number from 0 to {len(run.snapshots) - 1}")
        if index == len(run.snapshots) - 1:
            finished = self.get(name)
            return dataclasses.replace(finished, model=finished.view_model) if self.zero_gpu else finished
        key = (name, int(index))
        with self._lock_for(f"{name} snapshots"):
            loaded = self._snapshots.get(key)
            if loaded is None:
                tokenizer = self.get(name).tokenizer
                snapshot = run.snapshots[index]
                shown, model = f"{name} at step {snapshot.step}", gpt2.load_checkpoint(snapshot.folder)
                loaded = self._prepare(shown, model, tokenizer, run, device=torch.device("cpu") if self.zero_gpu else None,
                                       facts=self._facts(name, shown, model, tokenizer, run))
                self._snapshots[key] = loaded
            self._snapshots.move_to_end(key)
            while len(self._snapshots) > self.max_snapshots:
                self._snapshots.popitem(last=False)
            return loaded

    def _check(self, name: str) -> None:
        if name not in self.choices:
            raise ValueError(f"Model: unknown model {name!r}; choose one of: {', '.join(self.choices)}")

    def _load(self, name: str, on_progress) -> gpt2.GPT2:
        folder = self.folder(name)
        if folder is not None:
            return gpt2.load_checkpoint(folder)
        try:  # the project's cache, the Hugging Face cache, then a download (gpt2/hub.py)
            directory = locate(name, self.cache_dir, on_progress=on_progress, progress_bar=False,
                               **self.download_options)
        except DownloadError as err:
            raise DownloadError(f"Downloading GPT-2 {name} failed. {err} "
                                f"Meanwhile, the models already loaded keep working.") from None
        return gpt2.load_checkpoint(directory)
