"""One byte budget for every visitor's analysis, least recently used dropped first.

An analysis of a 1024-token prompt on GPT-2 124M holds ~0.4 GB (the attention pattern of
144 heads alone is 144 x 1024 x 1024 float16 numbers). Kept per visitor in the page's
state, twenty visitors would fill a 16 GB machine. So the analyses live here, all
together within `max_bytes`, and a visitor's state holds only an `AnalysisHandle`: a
key and what it takes to compute the analysis again (model, prompt, lens window). When
the budget is full the least recently used analyses are dropped; the next time their
visitor moves a slider, `AnalysisBudget.get_or_compute` runs the prompt again (one
capture) and the visitor waits that long once.

Sizes are measured, not guessed: `nbytes` adds up every numpy array and torch tensor an
analysis holds, including what it caches later (figures' tiles, lens labels), and an
analysis is re-measured each time it is fetched, so what it grows by is counted too.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

BUDGET_ENV = "EXPLORER_MEMORY_BUDGET"
# Sizes in binary units: "16Gi" (Kubernetes, as Spaces write MEMORY), "16G", "16GB" and "16GiB" all mean 16 x 2^30.
_UNITS = {"": 1, "B": 1} | {prefix + tail: 2 ** (10 * (i + 1)) for i, prefix in enumerate("KMGT")
                            for tail in ("", "B", "I", "IB")}


@dataclasses.dataclass(frozen=True)
class AnalysisHandle:
    """What a visitor's gr.State holds: a key into the budget and how to recompute on a miss."""

    key: str
    model_name: str
    prompt: str
    lens_positions: int
    serial: int = 0  # which Analyze made it: the page's panels are up to date for one serial (tabs/parts/open_tabs.py)


def parse_bytes(text: str) -> int:
    """'2GB', '512M', '16Gi', '1.5 GB' or a plain number of bytes -> bytes."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).upper() if match else None
    if unit not in _UNITS:
        raise ValueError(f"a memory size looks like 2GB, 512MB or 16Gi; got {text!r}")
    return int(float(match.group(1)) * _UNITS[unit])


def machine_memory() -> int | None:
    """The memory this process may use: a Space's MEMORY, else the cgroup limit, else MemAvailable."""
    if os.environ.get("MEMORY"):
        try:
            return parse_bytes(os.environ["MEMORY"])
        except ValueError:
            pass
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # "max" or a huge number means no limit
            return int(text)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


DEFAULT_CAP = 3 * 2**29  # 1.5 GiB: four 1024-token analyses of 124M, or hundreds of short prompts


def default_budget() -> int:
    """EXPLORER_MEMORY_BUDGET if set, else a quarter of the machine's memory, at most 1.5 GiB.

    The cap keeps a default start-up modest on a big shared machine; a host who wants more
    long prompts kept says so (--memory-budget or the environment variable).
    """
    if os.environ.get(BUDGET_ENV):
        return parse_bytes(os.environ[BUDGET_ENV])
    memory = machine_memory()
    return min(memory // 4, DEFAULT_CAP) if memory else 2**30


def nbytes(obj, _seen: set[int] | None = None) -> int:
    """Bytes held by the arrays and tensors inside `obj` (dataclasses, objects, lists, dicts)."""
    seen = set() if _seen is None else _seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, (bytes, str)):
        return len(obj)
    if isinstance(obj, dict):
        return sum(nbytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return sum(nbytes(v, seen) for v in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return sum(nbytes(v, seen) for v in vars(obj).values())  # cached_property values live here too
    return 0


class AnalysisBudget:
    """Analyses by key, their total size kept within `max_bytes` by dropping the least recently used."""

    def __init__(self, max_bytes: int, size_of: Callable[[object], int] = nbytes):
        if max_bytes <= 0:
            raise ValueError(f"the memory budget must be positive; got {max_bytes}")
        self.max_bytes = max_bytes
        self.size_of = size_of
        self._entries: OrderedDict[str, tuple[object, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.recomputed = 0  # analyses computed again after being dropped (for tests and benchmarks)

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return sum(size for _, size in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    @staticmethod
    def new_key(session: str | None = None) -> str:
        """A fresh key; one made for a session starts with it, so `drop_session` finds it."""
        return f"{session or ''}/{uuid.uuid4().hex}"

    def drop_session(self, session: str) -> None:
        """Drop every analysis of a session (its page was closed)."""
        with self._lock:
            for key in [key for key in self._entries if key.startswith(f"{session}/")]:
                del self._entries[key]

    def put(self, key: str, analysis) -> None:
        """Keep `analysis` under `key`, dropping others (oldest use first) to stay within the budget.

        One analysis larger than the whole budget is still kept, alone: its visitor must see it.
        """
        size = self.size_of(analysis)
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (analysis, size)
            self._evict(keep=key)

    def get(self, key: str):
        """The analysis under `key` (now the most recently used), or None if it was dropped."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def remeasure(self, key: str) -> None:
        """Count what an analysis has cached since it was put (a wider lens, overview tiles)."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return
        size = self.size_of(entry[0])
        with self._lock:
            if key in self._entries:
                self._entries[key] = (entry[0], size)
                self._evict(keep=key)

    def make_room(self, n_bytes: int, keep: str | None = None) -> None:
        """Drop least recently used analyses until `n_bytes` more fit: room for one about to be computed,
        so that the budget bounds memory while it is being made, not only once it is kept."""
        with self._lock:
            self._evict(keep=keep, extra=n_bytes)

    def drop(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def get_or_compute(self, handle: AnalysisHandle, compute: Callable[[AnalysisHandle], object]):
        """The handle's analysis; if it was dropped, `compute` makes it again and it is kept anew."""
        analysis = self.get(handle.key)
        if analysis is None:
            analysis = compute(handle)
            self.recomputed += 1
            self.put(handle.key, analysis)
        return analysis

    def _evict(self, keep: str | None, extra: int = 0) -> None:
        total = extra + sum(size for _, size in self._entries.values())
        for key in list(self._entries):
            if total <= self.max_bytes:
                break
            if key != keep:
                total -= self._entries.pop(key)[1]


def device_room(device: torch.device, n_bytes: int) -> None:
    """Make sure a GPU has `n_bytes` free for one analysis at work, or say why not.

    The analyses are kept in host memory (the budget above); on a GPU only the one being computed
    lives there, beside the weights. The weights were checked against the GPU at start
    (models.check_sizes_fit); this checks what is free now, after what torch's allocator holds
    in reserve is given back, so a prompt that cannot fit gets a message rather than a crash.
    """
    if device.type != "cuda":
        return
    free, total = torch.cuda.mem_get_info(device)
    if free < n_bytes:
        torch.cuda.empty_cache()
        free, total = torch.cuda.mem_get_info(device)
    if free < n_bytes:
        raise ValueError(f"the GPU has {free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB, and this prompt's "
                         f"analysis needs about {n_bytes / 2**30:.1f} GiB there: try a shorter prompt or a smaller "
                         "model")
