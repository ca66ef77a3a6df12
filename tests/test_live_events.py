"""How the page's events are wired, read from the app's config: sliders never queue behind themselves, and
redraws that need no model skip Gradio's queue (except on ZeroGPU, whose GPU calls find their visitor there)."""

import threading

import numpy as np
import pytest

from explorer import model_runs, ui
from explorer.budget import AnalysisBudget
from explorer.store import ModelStore

# Events that only build views from the kept analysis. The rest run a model: Analyze, the lens window
# (a projection onto the vocabulary), training snapshots, generation, the story's cards (a card may widen the lens).
VIEW_ONLY = {"resample", "select_head", "open_block", "follow_up"} | {f"open_tab_{tab.__name__.rsplit('.', 1)[-1]}"
                                                                   for tab in ui.TABS}
RUN_A_MODEL = {"analyze", "lens", "select_snapshot", "generate", "step", "story_next", "story_back", "ablate"}


def events(store) -> dict:
    config = build(store).get_config_file()
    components = {c["id"]: c for c in config["components"]}
    return {d["api_name"]: (d, [components.get(target) for target, _ in d["targets"]])
            for d in config["dependencies"]}


def build(store):
    return ui.build_app(store, budget=AnalysisBudget(2**28))


@pytest.fixture(scope="module")
def store(tiny_checkpoint_dir):
    return ModelStore(tiny_checkpoint_dir)


def test_every_slider_and_number_event_draws_only_its_last_value(store):
    checked = 0
    for name, (event, triggers) in events(store).items():
        if any(t is not None and t["type"] in ("slider", "number") for t in triggers):
            assert event["trigger_mode"] == "always_last", name
            checked += 1
    assert checked >= 5  # attention, block, layers, next token, training


def test_view_only_events_skip_the_queue_and_model_runs_take_it(store):
    wired = events(store)
    assert VIEW_ONLY | RUN_A_MODEL <= set(wired)
    assert all(wired[name][0]["queue"] is False for name in VIEW_ONLY)
    assert all(wired[name][0]["queue"] is not False for name in RUN_A_MODEL)


def test_on_zero_gpu_every_event_stays_in_the_queue(tiny_checkpoint_dir, monkeypatch):
    store = ModelStore(tiny_checkpoint_dir)
    monkeypatch.setattr(store, "zero_gpu", True)  # only the wiring is read here, no model runs
    wired = events(store)
    assert all(wired[name][0]["queue"] is not False for name in VIEW_ONLY)


class Request:
    session_hash = "live-events"


def handlers(app) -> tuple:
    """Analyze, its follow-up and every tab input's starting value, to call the handlers directly."""
    fns = {fn.api_name: fn.fn for fn in app.fns.values()}
    return fns["analyze"], fns["follow_up"], {name: c.value for name, c in app.explorer_open_tabs.values.items()}


def test_a_tab_built_for_the_previous_analysis_is_built_again_after_analyze(store):
    app = build(store)
    open_tabs = app.explorer_open_tabs
    analyze = next(fn.fn for fn in app.fns.values() if fn.api_name == "analyze")
    values = {name: c.value for name, c in open_tabs.values.items()}
    off_story = {"index": 0, "on": False}
    old = analyze("one two three", store.default, None, off_story, "tokens", Request(), **values)
    new = analyze("four five six seven", store.default, old[open_tabs.shared.analysis], off_story, "tokens",
                  Request(), **values)
    handle = new[open_tabs.shared.analysis]
    heatmap = next(c for c in open_tabs.tabs["attention"].outputs if getattr(c, "label", "") == "Attention heatmap")
    # The visitor opened Attention while the second Analyze ran: it was built for the first analysis.
    built_during = open_tabs.build("attention", old[open_tabs.shared.analysis], old[open_tabs.shown], values)
    caught_up = open_tabs.catch_up(handle, built_during[open_tabs.shown], "attention", values)
    assert heatmap in caught_up and "␣seven" in caught_up[heatmap].to_json()
    assert caught_up[open_tabs.shown] == {"analysis": handle.serial, "tabs": ["attention"]}
    # Built for this analysis already: nothing more is sent.
    assert open_tabs.catch_up(handle, caught_up[open_tabs.shown], "attention", values) == {open_tabs.open_tab: "attention"}


def test_on_a_cpu_the_lens_and_surprise_are_made_after_analyzes_answer_and_layers_opens_without_them(store,
                                                                                                      monkeypatch):
    app = build(store)
    open_tabs = app.explorer_open_tabs
    analyze, follow_up, values = handlers(app)
    out = analyze("one two three four five six seven eight nine ten", store.default, None,
                  {"index": 0, "on": False}, "tokens", Request(), **values)
    handle = out[open_tabs.shared.analysis]
    analysis, loaded = open_tabs.shared.analysis_of(handle)
    assert analysis.lens is None  # a projection onto the whole vocabulary: the answer does not wait for it
    lenses = []
    real_lens = model_runs.lens
    monkeypatch.setattr(model_runs, "lens", lambda *args: lenses.append(args) or real_lens(*args))
    assert "token_surprise" not in vars(analysis.trace)  # nor the surprise (a T x n_vocab product)
    assert follow_up(handle, out[open_tabs.shown], "tokens", **values) == {open_tabs.open_tab: "tokens"}
    assert len(lenses) == 1 and len(analysis.lens.positions) == values["lens_positions"]
    assert "token_surprise" in vars(analysis.trace)
    built = open_tabs.build("layers", handle, out[open_tabs.shown], values)
    lens = next(c for c in open_tabs.tabs["layers"].outputs if getattr(c, "label", "") == "Logit lens")
    assert lens in built and len(lenses) == 1  # opening Layers drew the lens the follow-up made
    follow_up(handle, out[open_tabs.shown], "tokens", **values)
    assert len(lenses) == 1  # made once per analysis
    # The story's Layers card, on a fresh analysis, makes the lens too and its text reads it.
    fresh = analyze("one two three four five six seven eight nine ten", store.default, None,
                    {"index": 0, "on": False}, "tokens", Request(), **values)
    fresh_analysis, _ = open_tabs.shared.analysis_of(fresh[open_tabs.shared.analysis])
    card = app.explorer_story.show_card(fresh_analysis, loaded, 6, handle=fresh[open_tabs.shared.analysis],
                                        shown=fresh[open_tabs.shown], values=values)
    assert "The **logit lens** reads the stream" in card[app.explorer_story.card]


def config_id(config, elem_id: str) -> int:
    return next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)


LAYOUT_OR_STATE = {"state", "tabs", "tabitem", "column", "row", "accordion", "group"}


def test_each_event_shows_its_progress_on_at_most_one_component_and_never_on_a_figure(store):
    # The page rewrites the loading status of every component any event showed progress on, at the start and
    # end of every event, copying each one's properties first: a figure's whole data.
    config = build(store).get_config_file()
    kinds = {c["id"]: c["type"] for c in config["components"]}
    targets = set()
    for event in config["dependencies"]:
        shown_on = event["show_progress_on"]
        assert shown_on is not None, event["api_name"]  # Gradio's default would be every output
        if event["show_progress"] == "hidden":
            assert shown_on == [], event["api_name"]  # nothing to show, nothing tracked
            continue
        showable = [i for i in event["outputs"] if kinds[i] not in LAYOUT_OR_STATE]
        assert len(shown_on) == min(1, len(showable)), event["api_name"]
        assert all(kinds[i] not in LAYOUT_OR_STATE | {"plot"} for i in shown_on), event["api_name"]
        targets |= set(shown_on)
    outputs = {i for event in config["dependencies"] for i in event["outputs"]}
    assert len(targets) * 3 < len(outputs)
    status = config_id(config, "status")
    analyze = next(event for event in config["dependencies"] if event["api_name"] == "analyze")
    assert analyze["show_progress_on"] == [status]  # the status line, as ui.py asks
    lens = next(event for event in config["dependencies"] if event["api_name"] == "lens")
    assert lens["show_progress_on"] == [status]  # its first output is a figure: the status line instead
    opening = next(event for event in config["dependencies"] if event["api_name"] == "open_tab_attention")
    assert opening["show_progress_on"] == [config_id(config, "attention-layer")]  # the tab's first control


def test_the_follow_up_leaves_the_lens_and_surprise_to_their_tabs_while_another_visitors_pass_runs(store):
    app = build(store)
    open_tabs = app.explorer_open_tabs
    analyze, follow_up, values = handlers(app)
    out = analyze("one two three four five", store.default, None, {"index": 0, "on": False}, "tokens", Request(),
                  **values)
    handle = out[open_tabs.shared.analysis]
    analysis, _ = open_tabs.shared.analysis_of(handle)
    busy = threading.Event()
    done = threading.Event()

    def another_visitors_pass():
        with open_tabs.shared.compute():
            busy.set()
            done.wait(30)
    other = threading.Thread(target=another_visitors_pass)
    other.start()
    try:
        busy.wait(30)
        follow_up(handle, out[open_tabs.shown], "tokens", **values)
        assert analysis.lens is None and "token_surprise" not in vars(analysis.trace)  # it did not wait for the slot
    finally:
        done.set()
        other.join()
    open_tabs.build("layers", handle, out[open_tabs.shown], values)
    assert len(analysis.lens.positions) == min(values["lens_positions"], analysis.trace.n_tokens)
    surprise = open_tabs.build("surprise", handle, out[open_tabs.shown], values)
    assert "token_surprise" in vars(analysis.trace) and len(surprise) > 2  # the tab made it and drew it


def test_the_follow_ups_surprise_stops_when_the_visitor_opens_a_tab_and_the_surprise_tab_goes_on_from_there(
        store, monkeypatch):
    import explorer.capture

    monkeypatch.setattr(explorer.capture, "SURPRISE_CHUNK", 2)
    app = build(store)
    open_tabs = app.explorer_open_tabs
    shared = open_tabs.shared
    analyze, follow_up, values = handlers(app)
    out = analyze("one two three four five six seven eight nine ten", store.default, None,
                  {"index": 0, "on": False}, "tokens", Request(), **values)
    handle = out[shared.analysis]
    analysis, _ = shared.analysis_of(handle)
    trace, made, project = analysis.trace, [], analysis.trace.surprise_of
    lenses = []
    real_lens = model_runs.lens
    monkeypatch.setattr(model_runs, "lens", lambda *args: lenses.append(args) or real_lens(*args))

    def block(start, stop):  # the visitor opens Layers while the follow-up makes the first block
        made.append((start, stop))
        if len(made) == 1:
            open_tabs.build("layers", handle, out[open_tabs.shown], values)
        return project(start, stop)
    trace.surprise_of = block
    follow_up(handle, out[open_tabs.shown], "tokens", **values)
    assert made == [(0, 2)] and "token_surprise" not in vars(trace)  # it stopped after the first block
    assert len(lenses) == 1  # Layers made the lens it showed; the follow-up did not make a second
    open_tabs.build("surprise", handle, out[open_tabs.shown], values)
    assert [start for start, _ in made] == list(range(0, trace.n_tokens - 1, 2))  # on from block 2, none twice
    full = explorer.capture.token_surprise(store.get(store.default).model, trace.residual[-1], trace.token_ids)
    np.testing.assert_allclose(trace.token_surprise, full, rtol=1e-5, atol=1e-5)


def test_the_follow_up_leaves_the_page_once_the_answers_figures_are_drawn(store):
    config = build(store).get_config_file()
    follow_ups = [event for event in config["dependencies"] if event["api_name"] == "follow_up"]
    assert follow_ups and all(event["js"] == ui.AFTER_DRAWN for event in follow_ups)
    assert "window.explorerDrawn = " in ui.DRAW_ONCE  # the page script that defines what it waits for
