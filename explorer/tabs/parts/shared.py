"""What every tab builder receives (Shared), what Analyze hands each tab (View), what a builder returns (Tab)."""

from __future__ import annotations

import functools
import inspect
import logging
import re
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import gradio as gr

import gpt2
from gpt2.download import DownloadError

from ... import model_runs
from ...analysis import Analysis, analysis_bytes, lens_window, set_lens
from ...budget import AnalysisBudget, AnalysisHandle, device_room
from ...store import LoadedModel, ModelStore

log = logging.getLogger(__name__)


def on_gpu(fn: Callable, duration: Callable) -> Callable:
    """`fn` through Hugging Face's `spaces.GPU`, which on a ZeroGPU Space runs each call in a worker process
    that holds a GPU for at most `duration(*args)` seconds, and everywhere else returns `fn` itself.

    The app makes its GPU functions when it builds the page, before launch: ZeroGPU reports them
    to the Space at launch. Without the `spaces` package (a plain install of the library) nothing changes.
    """
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(fn, duration=duration)


@dataclass
class View:
    """An analysis and the control values, as a tab's `show` (or `story`) receives them."""

    analysis: Analysis
    loaded: LoadedModel
    values: dict  # the checked values of every tab's inputs, by name


@dataclass
class Tab:
    show: Callable[[View], dict] | None = None
    outputs: list = field(default_factory=list)
    inputs: dict = field(default_factory=dict)
    controls: dict = field(default_factory=dict)
    code: object = None  # a code_view.CodeView: the tab's lines of gpt2/model.py, filled with the tab
    # The guided story (tabs/parts/story.py): `story(view, explanation)` sets the controls the card gives
    # (view.values, keys in story_keys), redraws what they change and opens the named explanation.
    story: Callable[[View, str], dict] | None = None
    story_keys: frozenset = frozenset()
    story_outputs: list = field(default_factory=list)  # what `story` may return beyond `outputs`
    # Events that reach into other tabs (e.g. a button that opens another tab at a head): `wire(open_tabs)`
    # is called once every tab exists (open_tabs.OpenTabs: go_to, go_to_outputs).
    wire: Callable | None = None


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
    # happens outside it) never makes other visitors wait. Re-entrant: `lens_for` checks and makes
    # the lens inside it, and making it takes the slot again. Taken through `_slot`.
    _compute: threading.RLock = field(default_factory=threading.RLock)
    # Counts each time a visitor asked for something: a view built (`analysis_of`) or a wait for the
    # compute slot. Work made before anyone asked for it (`finish_if_idle`) stops when it changes.
    _asks: int = 0

    @property
    def queue_views(self) -> bool:
        """Whether events that only build views from a kept analysis go through Gradio's queue.

        Off ZeroGPU they skip it: they need no model, so they never wait behind other visitors' events
        (a dropped analysis is recomputed in the compute slot all the same). On ZeroGPU they stay queued,
        because that recomputation is a spaces.GPU call, which finds its visitor through the queue's event.
        """
        return self.store.zero_gpu

    def __post_init__(self):
        self._run_on_gpu = on_gpu(self._run_work, duration=lambda work, args, seconds: seconds)
        self._stream_on_gpu = on_gpu(self._stream_work, duration=lambda work, args, seconds: seconds)

    @contextmanager
    def compute(self):
        """The compute slot, for work on models that stay in this process (the training snapshots)."""
        with self._slot():
            yield

    @contextmanager
    def _slot(self):
        """The compute slot. A caller that has to wait for it says so first (`_asks`), so that work no one
        has asked for yet, which may hold it (`finish_if_idle`), stops at its next block and lets it go."""
        if not self._compute.acquire(blocking=False):
            self._asks += 1
            self._compute.acquire()
        try:
            yield
        finally:
            self._compute.release()

    def run(self, work: Callable, *args, seconds: int):
        """`work(store, *args)` (a function of model_runs.py) where the models run, and its result.

        On a ZeroGPU Space that is a spaces.GPU call: a worker process with a GPU, for at most
        `seconds` (model_runs.gpu_seconds); ZeroGPU queues visitors itself, each call on its own GPU
        share. Elsewhere it runs here, in the compute slot, one pass at a time.
        """
        if self.store.zero_gpu:
            return self._run_on_gpu(work, args, seconds)
        with self._slot():
            return self._run_on_gpu(work, args, seconds)

    def stream(self, work: Callable, *args, seconds: int):
        """Each value of the generator `work(store, *args)`, made where the models run (see `run`).

        Off ZeroGPU the compute slot is taken for each value and given back in between, so other
        visitors' passes run between two generated tokens.
        """
        if self.store.zero_gpu:
            yield from self._stream_on_gpu(work, args, seconds)
            return
        values = self._stream_on_gpu(work, args, seconds)
        while True:
            with self._slot():
                value = next(values, _DONE)
            if value is _DONE:
                return
            yield value

    def _run_work(self, work: Callable, args: tuple, seconds: int):
        return work(self.store, *args)

    def _stream_work(self, work: Callable, args: tuple, seconds: int):
        yield from work(self.store, *args)

    def analyze(self, model_name: str, prompt: str, lens_positions=None) -> Analysis:
        """A new analysis of the prompt (one forward pass, where the models run), ready for the panels.

        Where the model runs on a GPU, the logit lens over the last `lens_positions` positions comes with
        it (a few milliseconds there; on ZeroGPU a second call would start another worker). On a CPU it
        costs as much as a short prompt's pass, so the answer goes without it and Analyze's follow-up
        makes it (`finish_if_idle`), once the page has drawn the open tab."""
        loaded = self.store.get(model_name)
        n_tokens = min(len(loaded.tokenizer.encode(prompt)), loaded.model.config.n_ctx)
        if not self.store.zero_gpu:  # on ZeroGPU each call gets a GPU share of its own
            device_room(loaded.device, 2 * analysis_bytes(loaded.model.config, n_tokens))
        on_gpu = self.store.zero_gpu or loaded.device.type != "cpu"
        analysis = self.run(model_runs.analysis, loaded.name, prompt, lens_positions if on_gpu else None,
                            seconds=model_runs.gpu_seconds(self.store, loaded.name, n_tokens, passes=2))
        return analysis.with_labels(loaded.tokenizer)

    def lens_for(self, analysis: Analysis, n_positions) -> Analysis:
        """The analysis with a logit lens over the last `n_positions` positions: made now if it has none
        or another window, else as it is. Off ZeroGPU the check is made again in the compute slot, so a
        tab opened while Analyze's follow-up makes the lens waits for that one instead of making another."""
        def has_it():
            lens = analysis.lens
            return lens is not None and len(lens.positions) == len(lens_window(analysis, n_positions))

        if has_it():
            return analysis
        if self.store.zero_gpu:
            return self.relens(analysis, n_positions)
        with self._slot():
            return analysis if has_it() else self.relens(analysis, n_positions)

    def surprise_for(self, analysis: Analysis):
        """Each token's surprise (capture.Trace.token_surprise, a T x n_vocab product): made now if it is not
        yet, off ZeroGPU in the compute slot, so a tab opened while Analyze's follow-up makes it waits for
        that one instead of making another, and goes on from where the follow-up stopped. On ZeroGPU it
        came back with the capture."""
        trace = analysis.trace
        if self.store.zero_gpu or "token_surprise" in vars(trace):
            return trace.token_surprise
        with self._slot():
            return trace.token_surprise

    def finish_if_idle(self, analysis: Analysis, n_positions: int) -> None:
        """What Analyze's answer went without and a view will want, made right after it: each token's
        surprise, then a logit lens over the last `n_positions` positions if it has none. Nothing starts
        unless the compute slot is free, and as soon as a visitor asks for anything (`_asks`) the surprise
        stops between two blocks of positions and the lens is not begun: a tab opened meanwhile is drawn
        without sharing the CPU with them on a machine the browser shares, and no one waits for work no
        one has asked for yet. What is left is made by the tab that shows it (the surprise from the block
        where it stopped). The surprise comes first because it is the longer: a lens left out costs the
        Layers tab less than a surprise left out costs Surprise. On ZeroGPU both came back with the
        capture's call."""
        if self.store.zero_gpu:
            return
        asks = self._asks
        unasked = lambda: self._asks == asks  # noqa: E731
        if not self._compute.acquire(blocking=False):
            return
        try:
            if analysis.trace.project_surprise(keep_going=unasked) and unasked() and analysis.lens is None:
                self.lens_for(analysis, n_positions)
        finally:
            self._compute.release()

    def relens(self, analysis: Analysis, n_positions) -> Analysis:
        """The analysis with its logit lens over the last `n_positions` positions (one projection per row)."""
        positions = lens_window(analysis, n_positions)
        rows = analysis.trace.residual[:, positions]
        lens = self.run(model_runs.lens, analysis.model_name, rows, positions,
                        seconds=model_runs.gpu_seconds(self.store, analysis.model_name, rows.shape[0] * rows.shape[1]))
        return set_lens(analysis, lens)

    def load(self, name: str, progress=None) -> LoadedModel:
        """The model, downloading and loading it first if needed (outside the compute slot)."""
        if progress is not None and self.store.needs_download(name):
            progress(0, desc=f"Downloading GPT-2 {name} (once; later starts read it from the cache)")

            def on_progress(file_name, done, total):
                if total:
                    progress((done, total), desc=f"Downloading {file_name}", unit="bytes")
            return self.store.get(name, on_progress)
        return self.store.get(name)

    def compute_analysis(self, handle: AnalysisHandle) -> Analysis:
        self.load(handle.model_name)
        return self.analyze(handle.model_name, handle.prompt, handle.lens_positions)

    def analysis_of(self, handle) -> tuple[Analysis, LoadedModel]:
        """The visitor's analysis (recomputed with one capture if the budget dropped it) and its model."""
        if not isinstance(handle, AnalysisHandle):
            raise ValueError("Analyze a prompt first.")
        self._asks += 1  # a visitor wants a view now (see `_asks`)
        analysis = self.budget.get_or_compute(handle, self.compute_analysis)
        return analysis, self.load(handle.model_name)

    def remember(self, handle: AnalysisHandle) -> None:
        """Count what a handler has just cached on the analysis (e.g. a wider lens)."""
        self.budget.remeasure(handle.key)


_DONE = object()


# An absolute path on the server: two or more segments after a slash that follows no letter, dot, colon or
# slash (so "http://host/x" and "a/b" are left alone).
SERVER_PATH = re.compile(r"(?<![\w.:/])/(?:[\w.+@~-]+/)+[\w.+@~-]*")


def without_server_paths(text: str) -> str:
    """`text` with each absolute path cut to its last part: a visitor learns which file, not where it lives."""
    return SERVER_PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


def _as_user_error(fn_name: str, err: Exception) -> gr.Error:
    if isinstance(err, gr.Error):
        err.message = without_server_paths(str(err.message))
        return err
    if isinstance(err, gpt2.CheckpointError):  # its public form names the file, not the folder
        return gr.Error(without_server_paths(err.public), print_exception=False)
    if isinstance(err, (ValueError, TypeError, DownloadError, FileNotFoundError)):
        return gr.Error(without_server_paths(str(err)), print_exception=False)
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
        stream.plain_errors = True
        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            raise _as_user_error(fn.__name__, err) from None
    call.plain_errors = True
    return call


def plain_errors_everywhere(blocks: gr.Blocks) -> None:
    """Wrap every event handler of `blocks` not already wrapped in `user_errors`, so the server can show
    errors (show_error=True) and still never shows a traceback's text: what a visitor reads is the app's
    message, or Gradio's own about a malformed call ("didn't receive enough input values"), never `null`."""
    for block_fn in blocks.fns.values():
        fn = block_fn.fn
        if fn is None or getattr(fn, "plain_errors", False) or inspect.iscoroutinefunction(fn) \
                or inspect.isasyncgenfunction(fn):
            continue
        block_fn.fn = user_errors(fn)

    gradios_check = blocks.validate_inputs

    def validate_inputs(block_fn, inputs) -> None:  # Gradio's message lists objects' memory addresses
        try:
            gradios_check(block_fn, inputs)
        except ValueError:
            wanted = [getattr(block, "label", None) or type(block).__name__.lower() for block in block_fn.inputs]
            raise gr.Error(f"{block_fn.name or 'This event'} takes {len(wanted)} values ({', '.join(wanted)}); "
                           f"this call sent {len(inputs)}.", print_exception=False) from None
    blocks.validate_inputs = validate_inputs
