"""The one byte budget for every visitor's analysis: what it counts, what it drops, and recomputation."""

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pytest
import torch

from explorer.analysis import analysis_bytes, analyze
from explorer.budget import (AnalysisBudget, AnalysisHandle, default_budget, machine_memory, nbytes,
                             parse_bytes)
from explorer.store import ModelStore


@dataclass
class Thing:
    array: np.ndarray
    tensor: torch.Tensor
    nested: list = field(default_factory=list)

    @cached_property
    def derived(self) -> np.ndarray:
        return np.zeros(100, dtype=np.float64)


def test_nbytes_adds_arrays_tensors_nested_values_and_cached_properties():
    thing = Thing(np.zeros((10, 10), np.float32), torch.zeros(5, dtype=torch.float16), [{"x": np.zeros(3, np.int64)}])
    assert nbytes(thing) == 400 + 10 + 24
    thing.derived  # a cached property, made later, counts once it exists
    assert nbytes(thing) == 400 + 10 + 24 + 800


def test_nbytes_counts_an_array_shared_twice_once():
    shared = np.zeros(1000, np.uint8)
    assert nbytes([shared, shared, {"again": shared}]) == 1000


def sized(n: int) -> np.ndarray:
    return np.zeros(n, np.uint8)


def test_the_least_recently_used_analysis_is_dropped_first():
    budget = AnalysisBudget(300)
    for key in "abc":
        budget.put(key, sized(100))
    budget.get("a")  # a is now more recent than b
    budget.put("d", sized(100))
    assert "b" not in budget and all(key in budget for key in "acd")
    assert budget.used_bytes == 300


def test_the_budget_is_never_exceeded_while_more_than_one_analysis_is_kept():
    budget = AnalysisBudget(1000)
    for i, size in enumerate([400, 300, 500, 200, 900, 100]):
        budget.put(str(i), sized(size))
        assert budget.used_bytes <= 1000
    assert "5" in budget and "4" in budget


def test_one_analysis_larger_than_the_budget_is_kept_alone():
    budget = AnalysisBudget(100)
    budget.put("small", sized(50))
    budget.put("big", sized(500))
    assert len(budget) == 1 and budget.get("big") is not None


def test_putting_a_key_again_replaces_its_analysis():
    budget = AnalysisBudget(1000)
    budget.put("a", sized(300))
    budget.put("a", sized(200))
    assert len(budget) == 1 and budget.used_bytes == 200


def test_what_an_analysis_caches_later_is_counted_and_can_evict_others():
    budget = AnalysisBudget(1000)
    growing = {"first": sized(400)}
    budget.put("old", sized(400))
    budget.put("growing", growing)
    growing["later"] = sized(500)
    budget.remeasure("growing")
    assert "old" not in budget and budget.used_bytes == 900


def test_closing_a_session_drops_all_its_analyses_and_only_those():
    budget = AnalysisBudget(10_000)
    mine, other = budget.new_key("session1"), budget.new_key("session2")
    budget.put(mine, sized(10))
    budget.put(other, sized(10))
    budget.drop_session("session1")
    assert mine not in budget and other in budget


def test_a_dropped_analysis_is_computed_again_once():
    budget, calls = AnalysisBudget(100), []
    handle = AnalysisHandle("k", "model", "prompt", 8)

    def compute(h):
        calls.append(h)
        return sized(10)

    budget.put("k", sized(10))
    budget.drop("k")
    first = budget.get_or_compute(handle, compute)
    assert budget.get_or_compute(handle, compute) is first
    assert calls == [handle] and budget.recomputed == 1


@pytest.mark.parametrize("text, expected", [("2GB", 2 * 2**30), ("512M", 512 * 2**20), ("16Gi", 16 * 2**30),
                                            ("1.5 GiB", 3 * 2**29), ("4096", 4096)])
def test_sizes_are_read_in_binary_units(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "2 parsecs", "-1GB"])
def test_a_size_that_is_not_one_is_refused(text):
    with pytest.raises(ValueError, match="looks like 2GB"):
        parse_bytes(text)


def test_the_host_sets_the_budget_by_environment_variable(monkeypatch):
    monkeypatch.setenv("EXPLORER_MEMORY_BUDGET", "3GB")
    assert default_budget() == 3 * 2**30


def test_the_default_budget_is_a_quarter_of_the_memory_a_space_reports(monkeypatch):
    monkeypatch.delenv("EXPLORER_MEMORY_BUDGET", raising=False)
    monkeypatch.setenv("MEMORY", "4Gi")
    assert machine_memory() == 4 * 2**30 and default_budget() == 2**30


def test_the_default_budget_stays_modest_on_a_big_machine(monkeypatch):
    monkeypatch.delenv("EXPLORER_MEMORY_BUDGET", raising=False)
    monkeypatch.setenv("MEMORY", "64Gi")
    assert default_budget() == 3 * 2**29


def test_an_analysis_of_the_tiny_model_is_measured_with_its_attention_and_residual(tiny_checkpoint_dir):
    store = ModelStore(tiny_checkpoint_dir)
    analysis = analyze(store.get(store.default), "one two three four five six seven eight")
    trace = analysis.trace
    assert nbytes(analysis) >= trace.attention.nbytes + trace.residual.nbytes + trace.resid_mid.nbytes
    assert nbytes(analysis) < 2 * (trace.attention.nbytes + trace.residual.nbytes + trace.resid_mid.nbytes
                                   + trace.logits.nbytes + analysis.lens.top_probs.nbytes) + 200_000


def test_a_visitor_whose_analysis_was_dropped_gets_the_same_analysis_again(tiny_checkpoint_dir):
    from explorer.tabs import Shared

    store = ModelStore(tiny_checkpoint_dir)
    budget = AnalysisBudget(1)  # room for one analysis at a time
    shared = Shared(store, budget, prompt=None, model_name=None, analysis=None)
    mine = AnalysisHandle(budget.new_key("me"), store.default, "Every effort moves you", 8)
    first = shared.compute_analysis(mine)
    budget.put(mine.key, first)
    budget.put(budget.new_key("someone else"), shared.compute_analysis(
        AnalysisHandle("x", store.default, "another visitor's prompt", 8)))
    assert mine.key not in budget
    again, loaded = shared.analysis_of(mine)
    assert again is not first and budget.recomputed == 1 and mine.key in budget
    np.testing.assert_array_equal(again.trace.attention, first.trace.attention)
    assert again.lens_labels == first.lens_labels and loaded is store.get(store.default)


@pytest.fixture(scope="module")
def crowded_server(tiny_checkpoint_dir, tmp_path_factory):
    """The app with a budget of one byte: each new analysis pushes every other visitor's out."""
    from app_server import AppServer

    server = AppServer(tiny_checkpoint_dir, tmp_path_factory.mktemp("crowded") / "app.log", "--memory-budget", "1")
    try:
        server.wait_until_ready()
        yield server
    finally:
        server.stop()


def test_sliders_keep_working_after_another_visitor_pushed_the_analysis_out(crowded_server):
    from gradio_client import Client

    first, second = Client(crowded_server.url, verbose=False), Client(crowded_server.url, verbose=False)
    first.predict("one two three four five six", api_name="/analyze")
    second.predict("The capital of France is", api_name="/analyze")  # first's analysis is dropped now
    heatmap, text, *_walk = first.predict(1, 2, False, 5, api_name="/select_head")  # and the head walk
    assert "query **␣six** at position 5" in text  # recomputed from first's own prompt, not second's
    lens, _ = first.predict(3, api_name="/lens")
    assert "3:␣four" in lens["plot"]


def test_room_is_made_for_an_analysis_before_it_is_computed():
    budget = AnalysisBudget(1000)
    for key in "abc":
        budget.put(key, sized(300))
    budget.make_room(500)
    assert list(key for key in "abc" if key in budget) == ["c"] and budget.used_bytes + 500 <= 1000


def test_the_size_estimate_matches_what_an_analysis_holds(tiny_checkpoint_dir):
    store = ModelStore(tiny_checkpoint_dir)
    loaded = store.get(store.default)
    analysis = analyze(loaded, "one two three four five six seven eight")
    estimate = analysis_bytes(loaded.model.config, analysis.trace.n_tokens)
    assert 0.5 * nbytes(analysis) <= estimate <= nbytes(analysis)
