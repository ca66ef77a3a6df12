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

`LeanBlocks` (tabs/parts/lean_blocks.py) is the other half: what an event's answer copies into a session.
"""

from __future__ import annotations

import datetime
import os
from contextlib import asynccontextmanager
from copy import copy

import gradio as gr
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
