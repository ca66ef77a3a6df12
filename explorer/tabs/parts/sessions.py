"""What Gradio keeps per visitor, bounded: in count, in bytes and in time.

Gradio keeps a SessionState for every visitor: their gr.State values, their own copy of any
component a handler replaced, and `config_values`, a copy of the whole page's configuration into
which it writes every value each event returns (the plots' JSON included). Only Gradio's deep links
read `config_values`, and this app serves none (explorer/routes.py). Kept, it costs ~0.3 MB for a
visitor who clicked once and several MB for one who opened every tab on a long prompt, and Gradio
drops a session only when 10,000 newer ones exist, never because it is old.

`LeanSessions` replaces Gradio's holder (at server start, `lifespan`):
- a session keeps no `config_values`: what it costs is its gr.State values and a reference per component;
- at most `capacity` sessions are kept, the least recently used dropped first;
- a session unused for `max_idle` seconds is dropped;
- a dropped session's gr.State values go through their delete callbacks, so its analysis leaves the
  budget at once. A visitor whose session was dropped starts again with the page's defaults: the
  next Analyze gives them the same numbers (the model is deterministic).

`LeanBlocks` is the page's gr.Blocks with one difference in how an event's answer is made. The page's
events name many outputs (Analyze names every tab's panels, since any tab may be the open one) and
a handler fills a few. For each output left out, Gradio builds a new copy of the component and keeps
it in the visitor's session, only to send the page an empty update; with ~100 outputs that adds up to
a good part of making Analyze's answer (benchmarks/README.md, page_latency.py). Here those outputs get
the same empty update directly.

Each event's progress shows on at most one component, and never on a figure. The page keeps a
loading status for every component any event has shown progress on, and at the start and end of
*every* event it writes all of them again, changed or not, taking a copy of each one's properties
first: for a figure that is a copy of the whole figure. With Gradio's default (all outputs) that was
every output of every event, ~125 components and 25-40 ms of the page's main thread twice per event;
with one figure per event it was still a copy of each figure an event had ever shown progress on,
before an Analyze's request left the page and again before its figure was drawn. So:
- an event with hidden progress shows it nowhere (no component is tracked for it);
- an event that names its `show_progress_on` keeps it;
- any other shows it on its first output the page can show, unless that is a figure; then on the
  page's status line (`LeanBlocks.status_line`, set by ui.py), which sits just above the tabs.
"""

from __future__ import annotations

import datetime
import os
from contextlib import asynccontextmanager
from copy import copy

import gradio as gr
from gradio.blocks import Block
from gradio.state_holder import SessionState, StateHolder

SESSION_BYTES = 64 * 1024  # a bound on what a lean session holds beyond its analysis (tests/test_sessions.py)


class Discarded(dict):
    """A dict that keeps nothing written to it: `config_values` of a lean session."""

    def __setitem__(self, key, value) -> None:
        pass


class LeanSession(SessionState):
    """Gradio's SessionState without its copy of the page's configuration."""

    def __init__(self, blocks):  # what SessionState.__init__ sets, but config_values left empty
        self.blocks_config = copy(blocks.default_config)
        self.config_values = Discarded()
        self.state_data = {}
        self._state_ttl = {}
        self.is_closed = False
        self.STATE_TTL_WHEN_CLOSED = 1 if os.getenv("GRADIO_IS_E2E_TEST", None) else 3600

    def _update_config(self, key: int) -> None:
        pass

    def _update_value_in_config(self, key: int, value) -> None:
        pass


class LeanSessions(StateHolder):
    def __init__(self, capacity: int, max_idle: float):
        super().__init__()
        self.fixed_capacity, self.max_idle = capacity, max_idle

    def set_blocks(self, blocks) -> None:
        super().set_blocks(blocks)
        self.capacity = self.fixed_capacity

    def __getitem__(self, session_id: str) -> SessionState:
        if session_id not in self.session_data:
            with self.lock:
                self.session_data.setdefault(session_id, LeanSession(self.blocks))
        return super().__getitem__(session_id)

    def update(self, session_id: str) -> None:
        with self.lock:
            if session_id in self.session_data:
                self.session_data.move_to_end(session_id)
            evicted = []
            while len(self.session_data) > self.capacity:
                evicted.append(self.session_data.popitem(last=False))
        for old_id, session in evicted:
            self.time_last_used.pop(old_id, None)
            self.forget(session)

    def delete_all_expired_state(self) -> None:
        """Gradio calls this every few seconds: expired gr.State values go, then whole sessions idle too long."""
        super().delete_all_expired_state()
        now = datetime.datetime.now()
        idle = [key for key, when in list(self.time_last_used.items())
                if (now - when).total_seconds() > self.max_idle]
        for key in idle:
            with self.lock:
                session = self.session_data.pop(key, None)
                self.time_last_used.pop(key, None)
            if session is not None:
                self.forget(session)

    @staticmethod
    def forget(session: SessionState) -> None:
        """Run the delete callbacks of a dropped session's gr.State values (the analysis leaves the budget)."""
        for component, value, _ in session.state_components:
            try:
                component.delete_callback(value)
            except Exception:  # a callback's failure must not keep other sessions from being dropped
                pass


def lean_sessions(capacity: int, max_idle: float):
    """A lifespan for Gradio's server (`app_kwargs={"lifespan": ...}`) that puts LeanSessions in place
    before the first request."""

    @asynccontextmanager
    async def lifespan(app):
        holder = LeanSessions(capacity, max_idle)
        holder.set_blocks(app.get_blocks())
        app.state_holder = holder
        yield
    return lifespan


def session_capacity(allowance_bytes: int, session_bytes: int = SESSION_BYTES) -> int:
    """How many sessions fit in `allowance_bytes` (at least 64, so a class is never cut short)."""
    return max(64, allowance_bytes // session_bytes)


class LeanBlocks(gr.Blocks):
    """gr.Blocks whose events pass over the outputs a handler left out and show their progress on at most
    one component, never a figure (see the module's docstring)."""

    status_line: gr.components.Component | None = None  # where progress shows instead of on a figure

    def __exit__(self, exc_type=None, *args):
        if exc_type is None:
            for block_fn in self.fns.values():
                block_fn.show_progress_on = self.progress_target(block_fn)
        return super().__exit__(exc_type, *args)

    def progress_target(self, block_fn) -> list:
        """The one component (or none) an event shows its progress on; see the module's docstring."""
        if block_fn.show_progress == "hidden":
            return []
        if block_fn.show_progress_on is not None:
            return list(block_fn.show_progress_on)
        shown = [block for block in block_fn.outputs if not block.stateful
                 and not isinstance(block, gr.blocks.BlockContext)]
        if shown and isinstance(shown[0], gr.Plot):
            return [self.status_line] if self.status_line is not None else []
        return shown[:1]  # none, when it fills only states and layout

    async def postprocess_data(self, block_fn, predictions, state) -> list:
        outputs = list(block_fn.outputs)
        if not (isinstance(predictions, dict) and predictions and all(isinstance(k, Block) for k in predictions)):
            return await super().postprocess_data(block_fn, predictions, state)
        filled = {c._id: value for c, value in predictions.items()}
        kept = [block for block in outputs if block._id in filled]
        if len(kept) != len(filled) or len(kept) == len(outputs):  # a stranger answer, or nothing left out
            return await super().postprocess_data(block_fn, predictions, state)
        subset = copy(block_fn)
        subset.outputs = kept
        # With a single output Gradio takes the handler's answer to be that output's value.
        answers = await super().postprocess_data(subset, predictions if len(kept) > 1 else filled[kept[0]._id],
                                                 state)
        by_id = dict(zip((block._id for block in kept), answers, strict=True))
        return [by_id[block._id] if block._id in by_id else None if block.stateful else {"__type__": "update"}
                for block in outputs]
