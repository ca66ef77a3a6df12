"""What Gradio keeps per visitor is bounded (explorer/tabs/parts/sessions.py): in bytes, in count and in time."""

from __future__ import annotations

import datetime
import http.client
import json
import tracemalloc

import gradio as gr
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



def answers_of(blocks_class, answer):
    """What an event whose handler gives `answer(text, number, plot, state)` sends the page, the outputs (by
    position) the visitor's session got its own copy of, and its gr.State values (by position), in a page
    built with `blocks_class`."""
    import asyncio

    import gradio as gr

    with blocks_class() as page:
        outputs = [gr.Textbox(), gr.Number(), gr.Plot(), gr.State()]
        gr.Button().click(lambda: None, outputs=outputs)
    session = SessionState(page)
    sent = asyncio.run(page.postprocess_data(page.fns[0], answer(*outputs), session))
    blocks = session.blocks_config.blocks
    copied = {i for i, c in enumerate(outputs) if blocks.get(c._id, c) is not c}
    states = {i: session.state_data[c._id] for i, c in enumerate(outputs) if c._id in session.state_data}
    return sent, copied, states


ANSWERS = {  # what a handler may return for four outputs: a few of them, all of them, or a list
    "one": lambda text, number, plot, state: {text: "hello"},
    "one and the state": lambda text, number, plot, state: {text: "hello", state: {"serial": 3}},
    "an update and an empty plot": lambda text, number, plot, state: {number: gr.update(maximum=9), plot: None},
    "all": lambda text, number, plot, state: {text: "a", number: 2, plot: None, state: 1},
    "a list": lambda text, number, plot, state: ["a", 2, None, 1],
}


@pytest.mark.parametrize("name", ANSWERS)
def test_lean_blocks_send_what_gradio_sends_without_copying_the_outputs_left_out(name):
    from explorer.tabs.parts.lean_blocks import LeanBlocks

    lean_sent, lean_copied, lean_states = answers_of(LeanBlocks, ANSWERS[name])
    sent, copied, states = answers_of(gr.Blocks, ANSWERS[name])
    assert (lean_sent, lean_states) == (sent, states)
    if name in ("all", "a list"):
        assert lean_copied == copied
    else:  # Gradio copies every output it updates, the ones left out included; LeanBlocks only those filled
        assert lean_copied < copied


def test_the_page_is_lean_blocks_and_analyze_names_many_outputs_it_mostly_leaves_out(app):
    """Why LeanBlocks matters: Analyze names every tab's panels, and fills only the open tab's."""
    from explorer.tabs.parts.lean_blocks import LeanBlocks

    assert isinstance(app, LeanBlocks)
    analyze = next(fn for fn in app.fns.values() if fn.api_name == "analyze")
    assert len(analyze.outputs) > 4 * max(len(app.explorer_open_tabs.outputs_of(tab)) for tab in app.explorer_tabs)
