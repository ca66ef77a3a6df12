"""The models the app can show, loaded once and shared by every user.

A choice is either one of OpenAI's released sizes (downloaded on first use) or the
checkpoint directory the app was started with (`--model-dir`). Choices come from a
fixed list: a name sent by a browser or an API client is looked up in it, never turned
into a path or URL.

The host decides which released sizes are offered (`sizes`, from app.py's --sizes or
EXPLORER_SIZES; by default those whose float32 weights fit the machine beside the
analysis budget). Each model has its own lock: downloading or loading one size never
makes a visitor of an already loaded one wait. At most `max_loaded` models stay in
memory (1558M alone is 6 GB in float32).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import gpt2
from gpt2.download import DownloadError, download_model, is_downloaded
from gpt2.fast import make_fast

from .heads import induction_scores
from .embeddings import pca_2d


SIZES_ENV = "EXPLORER_SIZES"
PARAMETERS = {"124M": 124_439_808, "355M": 354_823_168, "774M": 774_030_080, "1558M": 1_557_611_200}


APP_BYTES = 2**30  # the app itself: Python, torch, Gradio, figures on their way out


def sizes_that_fit(memory: int | None, reserved: int) -> list[str]:
    """Released sizes whose float32 weights fit in `memory` beside `reserved` bytes and the app (124M always)."""
    if memory is None:
        return list(gpt2.SIZES)
    fitting = [size for size in gpt2.SIZES if 4 * PARAMETERS[size] + reserved + APP_BYTES <= memory]
    return fitting or ["124M"]


def parse_sizes(text: str) -> list[str]:
    """'124M,355M' -> ['124M', '355M'], refusing names that are not released sizes."""
    sizes = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [size for size in sizes if size not in gpt2.SIZES]
    if unknown:
        raise ValueError(f"unknown size(s) {', '.join(unknown)}; the released sizes are {', '.join(gpt2.SIZES)}")
    return sizes


def offered_sizes(flag: str | None, memory: int | None, reserved: int) -> list[str]:
    """The sizes a host offers: the flag, else EXPLORER_SIZES, else those that fit."""
    text = flag if flag is not None else os.environ.get(SIZES_ENV)
    return parse_sizes(text) if text is not None else sizes_that_fit(memory, reserved)


@dataclass
class LoadedModel:
    name: str
    model: gpt2.GPT2
    induction: np.ndarray  # [layer, head] induction scores, computed once at load
    load_seconds: float
    position_pca: tuple[np.ndarray, np.ndarray] = None  # PCA of W_pe, fixed per model: computed once
    # The model's own tokenizer: every panel encodes and labels tokens with it, never a global one.
    tokenizer: object = None  # a tiktoken.Encoding

    @property
    def wpe(self) -> np.ndarray:
        return self.model.wpe.weight.detach().float().numpy()

    def describe(self) -> str:
        c = self.model.config
        params = self.model.num_parameters() / 1e6
        return (f"**{self.name}** loaded: {params:.0f}M parameters, {c.n_layer} layers × {c.n_head} heads, "
                f"d_model {c.n_embd}, context {c.n_ctx} tokens (loaded in {self.load_seconds:.1f} s)")


class ModelStore:
    def __init__(self, model_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                 max_loaded: int = 2, sizes: list[str] | None = None, **download_options):
        self.local_dir = Path(model_dir) if model_dir else None
        self.cache_dir = cache_dir
        self.sizes = list(gpt2.SIZES) if sizes is None else parse_sizes(",".join(sizes))
        if not self.sizes and not self.local_dir:
            raise ValueError("no model to offer: give --model-dir or at least one size")
        self.download_options = download_options  # for tests (a local server); never from a user
        self.max_loaded = max_loaded
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}  # one per model: loading one never blocks another
        self._locks_lock = threading.Lock()

    @property
    def local_name(self) -> str | None:
        return f"local: {self.local_dir.name}" if self.local_dir else None

    @property
    def choices(self) -> list[str]:
        return ([self.local_name] if self.local_dir else []) + self.sizes

    @property
    def default(self) -> str:
        return self.choices[0]

    def needs_download(self, name: str) -> bool:
        self._check(name)
        return name in gpt2.SIZES and name not in self._loaded and not is_downloaded(name, self.cache_dir)

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
            make_fast(model)
            loaded = LoadedModel(name, model, induction_scores(model), 0.0, tokenizer=self._tokenizer(name))
            loaded.position_pca = pca_2d(loaded.wpe)
            loaded.load_seconds = time.perf_counter() - start
            with self._locks_lock:
                self._loaded[name] = loaded
                while len(self._loaded) > self.max_loaded:
                    self._loaded.popitem(last=False)
            return loaded

    def _tokenizer(self, name: str):
        # A checkpoint folder may carry its own tokenizer (a model trained here); OpenAI's sizes speak GPT-2's.
        return gpt2.get_tokenizer(self.local_dir) if name == self.local_name else gpt2.get_tokenizer()

    def _check(self, name: str) -> None:
        if name not in self.choices:
            raise ValueError(f"Model: unknown model {name!r}; choose one of: {', '.join(self.choices)}")

    def _load(self, name: str, on_progress) -> gpt2.GPT2:
        if name == self.local_name:
            return gpt2.load_checkpoint(self.local_dir)
        try:
            directory = download_model(name, self.cache_dir, on_progress=on_progress, progress_bar=False,
                                       **self.download_options)
        except DownloadError as err:
            raise DownloadError(f"Downloading GPT-2 {name} failed. {err} "
                                f"Meanwhile, the models already loaded keep working.") from None
        return gpt2.load_openai_checkpoint(directory)
