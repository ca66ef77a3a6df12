"""What every tab builder receives (Shared), what Analyze hands each tab (View), what a builder returns (Tab)."""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import gradio as gr

import gpt2
from gpt2.download import DownloadError

from .. import panels
from ..budget import AnalysisBudget, AnalysisHandle
from ..models import LoadedModel, ModelStore

log = logging.getLogger(__name__)


@dataclass
class View:
    """A fresh analysis as Analyze hands it to each tab's `show`."""

    analysis: panels.Analysis
    loaded: LoadedModel
    values: dict  # the checked values of every tab's inputs, by name


@dataclass
class Tab:
    show: Callable[[View], dict] | None = None
    outputs: list = field(default_factory=list)
    inputs: dict = field(default_factory=dict)
    controls: dict = field(default_factory=dict)
    code: object = None  # a code_view.CodeView: the tab's lines of gpt2/model.py, filled by Analyze
    # The guided story (tabs/story.py): `story(view, explanation)` sets the controls the card gives
    # (view.values, keys in story_keys), redraws what they change and opens the named explanation.
    story: Callable[[View, str], dict] | None = None
    story_keys: frozenset = frozenset()
    story_outputs: list = field(default_factory=list)  # what `story` may return beyond `outputs`


@dataclass
class Shared:
    """The store, the budget and the components every tab may use."""

    store: ModelStore
    budget: AnalysisBudget
    prompt: gr.Textbox
    model_name: gr.Dropdown
    analysis: gr.State  # this visitor's AnalysisHandle, or None before the first Analyze
    controls: dict = field(default_factory=dict)  # components published by tabs built earlier
    # One forward pass at a time: on a few cores two passes at once only slow each other down.
    # A lock of our own rather than a Gradio concurrency group, so that a download (which
    # happens outside it) never makes other visitors wait.
    _compute: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def compute(self):
        with self._compute:
            yield

    def load(self, name: str, progress=None) -> LoadedModel:
        """The model, downloading and loading it first if needed (outside the compute slot)."""
        if progress is not None and self.store.needs_download(name):
            progress(0, desc=f"Downloading GPT-2 {name} (once; later starts read it from the cache)")

            def on_progress(file_name, done, total):
                if total:
                    progress((done, total), desc=f"Downloading {file_name}", unit="bytes")
            return self.store.get(name, on_progress)
        return self.store.get(name)

    def compute_analysis(self, handle: AnalysisHandle) -> panels.Analysis:
        loaded = self.load(handle.model_name)
        with self.compute():
            return panels.analyze(loaded, handle.prompt, handle.lens_positions)

    def analysis_of(self, handle) -> tuple[panels.Analysis, LoadedModel]:
        """The visitor's analysis (recomputed with one capture if the budget dropped it) and its model."""
        if not isinstance(handle, AnalysisHandle):
            raise ValueError("Analyze a prompt first.")
        analysis = self.budget.get_or_compute(handle, self.compute_analysis)
        return analysis, self.load(handle.model_name)

    def remember(self, handle: AnalysisHandle) -> None:
        """Count what a handler has just cached on the analysis (e.g. a wider lens)."""
        self.budget.remeasure(handle.key)


def _as_user_error(fn_name: str, err: Exception) -> gr.Error:
    if isinstance(err, gr.Error):
        return err
    if isinstance(err, (ValueError, TypeError, DownloadError, gpt2.CheckpointError, FileNotFoundError)):
        return gr.Error(str(err), print_exception=False)
    log.error("unexpected error in %s", fn_name, exc_info=err)  # details stay in the server log
    return gr.Error("Something went wrong on the server. Try again, or try a shorter prompt.", print_exception=False)


def user_errors(fn):
    """Show the errors a user can cause as a readable message in the page (gr.Error), never a traceback."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as err:
                raise _as_user_error(fn.__name__, err) from None
        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            raise _as_user_error(fn.__name__, err) from None
    return call
