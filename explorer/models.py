"""The models the app can show, loaded once and shared by every user.

A choice is either one of OpenAI's released sizes (downloaded on first use) or the
checkpoint directory the app was started with (`--model-dir`). Choices come from a
fixed list: a name sent by a browser or an API client is looked up in it, never turned
into a path or URL. Loading is serialised by a lock, and at most `max_loaded` models
stay in memory (1558M alone is 6 GB in float32).
"""

from __future__ import annotations

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


@dataclass
class LoadedModel:
    name: str
    model: gpt2.GPT2
    induction: np.ndarray  # [layer, head] induction scores, computed once at load
    load_seconds: float
    position_pca: tuple[np.ndarray, np.ndarray] = None  # PCA of W_pe, fixed per model: computed once

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
                 max_loaded: int = 2, **download_options):
        self.local_dir = Path(model_dir) if model_dir else None
        self.cache_dir = cache_dir
        self.download_options = download_options  # for tests (a local server); never from a user
        self.max_loaded = max_loaded
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def local_name(self) -> str | None:
        return f"local: {self.local_dir.name}" if self.local_dir else None

    @property
    def choices(self) -> list[str]:
        return ([self.local_name] if self.local_dir else []) + list(gpt2.SIZES)

    @property
    def default(self) -> str:
        return self.local_name or "124M"

    def needs_download(self, name: str) -> bool:
        self._check(name)
        return name in gpt2.SIZES and name not in self._loaded and not is_downloaded(name, self.cache_dir)

    def get(self, name: str, on_progress: Callable[[str, int, int | None], None] | None = None) -> LoadedModel:
        """The loaded model for a choice, loading (and downloading) it first if needed."""
        self._check(name)
        loaded = self._loaded.get(name)
        if loaded is not None:  # no lock: a download of another size must not block users of this one
            return loaded
        with self._lock:
            if name in self._loaded:
                self._loaded.move_to_end(name)
                return self._loaded[name]
            start = time.perf_counter()
            model = self._load(name, on_progress)
            make_fast(model)
            loaded = LoadedModel(name, model, induction_scores(model), 0.0)
            loaded.position_pca = pca_2d(loaded.wpe)
            loaded.load_seconds = time.perf_counter() - start
            self._loaded[name] = loaded
            while len(self._loaded) > self.max_loaded:
                self._loaded.popitem(last=False)
            return loaded

    def _check(self, name: str) -> None:
        if name not in self.choices:
            raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(self.choices)}")

    def _load(self, name: str, on_progress) -> gpt2.GPT2:
        if name == self.local_name:
            return gpt2.load_openai_checkpoint(self.local_dir)
        try:
            directory = download_model(name, self.cache_dir, on_progress=on_progress, progress_bar=False,
                                       **self.download_options)
        except DownloadError as err:
            raise DownloadError(f"Downloading GPT-2 {name} failed. {err} "
                                f"Meanwhile, the models already loaded keep working.") from None
        return gpt2.load_openai_checkpoint(directory)
