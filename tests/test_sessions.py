"""What Gradio keeps per visitor is bounded (explorer/tabs/parts/sessions.py): in bytes, in count and in time."""

from __future__ import annotations

import datetime
import http.client
import json
import tracemalloc

import pytest
from gradio.state_holder import SessionState

from explorer.budget import AnalysisBudget, AnalysisHandle
from explorer.store import ModelStore
from explorer.tabs.parts.sessions import SESSION_BYTES, LeanSession, LeanSessions, session_capacity
from explorer.ui import build_app


@pytest.fixture(scope="module")
def app(tiny_checkpoint_dir):
    return build_app(ModelStore(tiny_checkpoint_dir, sizes=[]), budget=AnalysisBudget(2**26))


def test_a_lean_session_sets_what_gradios_session_sets(app):
    """If a Gradio upgrade gives its SessionState a new attribute, LeanSession must set it too."""
    assert vars(LeanSession(app)).keys() == vars(SessionState(app)).keys()


def test_a_lean_session_keeps_no_copy_of_what_events_return(app):
    session = LeanSession(app)
    plot = next(key for key, block in app.default_config.blocks.items() if type(block).__name__ == "Plot")
    session._update_value_in_config(plot, {"plot": "x" * 1_000_000})
    session._update_config(plot)
    assert session.config_values == {}


def bytes_per_session(make, app, count: int = 10) -> float:
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    sessions = [make(app) for _ in range(count)]
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    assert len(sessions) == count
    return sum(stat.size_diff for stat in after.compare_to(before, "filename")) / count


def test_a_lean_session_costs_a_small_part_of_gradios_and_stays_within_its_bound(app):
    lean, gradios = bytes_per_session(LeanSession, app), bytes_per_session(SessionState, app)
    assert lean < SESSION_BYTES / 2 and lean < gradios / 5, (lean, gradios)


def holder_with_handles(app, budget: AnalysisBudget, capacity: int, max_idle: float = 3600) -> LeanSessions:
    holder = LeanSessions(capacity, max_idle)
    holder.set_blocks(app)
    return holder


def give_handle(holder: LeanSessions, app, session_id: str, budget: AnalysisBudget) -> str:
    key = budget.new_key(session_id)
    budget.put(key, b"an analysis")
    holder[session_id][app.explorer_analysis_state._id] = AnalysisHandle(key, "m", "p", 8, 1)
    return key


def test_the_oldest_sessions_go_past_the_capacity_and_their_analyses_leave_the_budget(app):
    budget = app.explorer_budget
    holder = holder_with_handles(app, budget, capacity=3)
    keys = [give_handle(holder, app, f"visitor-{i}", budget) for i in range(5)]
    assert list(holder.session_data) == ["visitor-2", "visitor-3", "visitor-4"]
    assert [key in budget for key in keys] == [False, False, True, True, True]


def test_a_session_idle_too_long_is_dropped_with_its_analysis(app):
    budget = app.explorer_budget
    holder = holder_with_handles(app, budget, capacity=10, max_idle=60)
    old, new = give_handle(holder, app, "gone-home", budget), give_handle(holder, app, "still-here", budget)
    holder.time_last_used["gone-home"] -= datetime.timedelta(seconds=61)
    holder.delete_all_expired_state()
    assert list(holder.session_data) == ["still-here"]
    assert old not in budget and new in budget


def test_the_capacity_follows_the_allowance_with_a_floor_for_a_class():
    assert session_capacity(256 * 2**20) == 256 * 2**20 // SESSION_BYTES
    assert session_capacity(0) == 64


def test_a_flood_of_one_click_sessions_grows_the_server_by_little(app_server):
    """1,000 visitors, each one cheap event: Gradio's own sessions would add ~0.3 MB each (300 MB here)."""
    def rss_mb() -> float:
        status = open(f"/proc/{app_server.process.pid}/status").read()
        return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) / 1024

    connection = http.client.HTTPConnection("127.0.0.1", app_server.port, timeout=30)
    connection.request("GET", "/config")
    dependencies = json.loads(connection.getresponse().read())["dependencies"]
    cheap = next(i for i, d in enumerate(dependencies) if d.get("queue") is False and not d["inputs"])
    before = rss_mb()
    for n in range(1000):
        connection.request("POST", "/gradio_api/run/predict", headers={"Content-Type": "application/json"},
                           body=json.dumps({"data": [], "fn_index": cheap, "session_hash": f"flood-{n}"}))
        response = connection.getresponse()
        response.read()
        assert response.status == 200
    connection.close()
    assert rss_mb() - before < 1000 * SESSION_BYTES / 2**20, (before, rss_mb())
