"""How the page's events are wired, read from the app's config: sliders never queue behind themselves, and
redraws that need no model skip Gradio's queue (except on ZeroGPU, whose GPU calls find their visitor there)."""

import pytest

from explorer import ui
from explorer.budget import AnalysisBudget
from explorer.store import ModelStore

# Events that only build views from the kept analysis. The rest run a model: Analyze, the lens window
# (a projection onto the vocabulary), training snapshots, generation, the story's cards (a card may widen the lens).
VIEW_ONLY = {"resample", "select_head", "open_block", "catch_up"} | {f"open_tab_{tab.__name__.rsplit('.', 1)[-1]}"
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
