"""The app on a ZeroGPU Space, as far as a machine without one can show it.

On ZeroGPU, Hugging Face's `spaces.GPU` runs each decorated call in a worker process that holds
a GPU: the arguments go there pickled and the result comes back pickled, and the web server's
own process never has the GPU. Here a stand-in `spaces` module does the same round trip through
pickle (in this process), and a guard fails any forward pass of the app's big models made
outside such a call. The handlers are then driven as the page drives them.
"""

from __future__ import annotations

import pickle
import sys
import threading
import types

import numpy as np
import pytest
import torch

from explorer import model_runs
from explorer.analysis import analyze as analyze_prompt
from explorer.budget import AnalysisBudget
from explorer.store import SHIPPED, ModelStore

PROMPT = "Every effort moves you forward, every effort moves you"


class StandInSpaces:
    """`spaces.GPU` as ZeroGPU runs it, minus the GPU: pickled arguments in, pickled result out."""

    def __init__(self):
        self.decorated, self.calls = [], []
        self.inside = threading.local()

    def GPU(self, task=None, *, duration=None, size=None):  # noqa: N802 (the package's own name)
        if task is None:
            return lambda fn: self.GPU(fn, duration=duration, size=size)
        self.decorated.append(task)

        def round_trip(value):
            return pickle.loads(pickle.dumps(value))

        def call(*args, **kwargs):
            seconds = duration(*args, **kwargs) if callable(duration) else duration
            self.calls.append((args[0].__name__, seconds))
            args, kwargs = round_trip((args, kwargs))
            self.inside.on = True
            try:
                result = task(*args, **kwargs)
                if isinstance(result, types.GeneratorType):
                    result = list(result)  # the worker sends each value back as it comes
            finally:
                self.inside.on = False
            return iter(round_trip(result)) if isinstance(result, list) and args[0].__name__ == "generation" \
                else round_trip(result)
        return call


@pytest.fixture(scope="module")
def zero_gpu_app(tiny_checkpoint_dir):
    stand_in = StandInSpaces()
    saved = sys.modules.get("spaces")
    sys.modules["spaces"] = stand_in
    try:
        from explorer.ui import build_app

        store = ModelStore(tiny_checkpoint_dir, sizes=[], zero_gpu=True, device="cpu", max_loaded=4)
        for name in store.choices:  # on ZeroGPU everything is loaded before launch
            store.get(name)
        app = build_app(store, budget=AnalysisBudget(2**30))
        yield app, store, stand_in
    finally:
        if saved is None:
            sys.modules.pop("spaces", None)
        else:
            sys.modules["spaces"] = saved


@pytest.fixture()
def guarded(zero_gpu_app):
    """Fail any forward pass of the store's big models made outside a spaces.GPU call."""
    app, store, stand_in = zero_gpu_app
    big = {id(store.get(name).model) for name in store.choices}
    outside = []

    def guard(module, inputs):
        if id(module) in big and not getattr(stand_in.inside, "on", False):
            outside.append(type(module).__name__)
    handle = torch.nn.modules.module.register_module_forward_pre_hook(guard)
    try:
        yield app, store, stand_in, outside
    finally:
        handle.remove()


class Request:
    session_hash = "zerogpu-test"


def handler(app, api_name):
    for fn in app.fns.values():
        if fn.api_name == api_name:
            return fn.fn
    raise KeyError(api_name)


def test_the_app_makes_its_gpu_functions_before_launch(zero_gpu_app):
    _, _, stand_in = zero_gpu_app
    assert len(stand_in.decorated) >= 2  # one for single results, one for streams: ZeroGPU reports them at launch


def test_the_big_models_have_a_cpu_copy_for_the_small_views(zero_gpu_app):
    _, store, _ = zero_gpu_app
    loaded = store.get(store.local_name)
    assert loaded.cpu_twin is not None and loaded.view_model is loaded.cpu_twin
    assert loaded.view_model is not loaded.model
    for a, b in zip(loaded.model.parameters(), loaded.cpu_twin.parameters()):
        assert torch.equal(a.float().cpu(), b)


def test_analyze_runs_its_forward_pass_inside_spaces_gpu_and_its_result_travels_pickled(guarded):
    app, store, stand_in, outside = guarded
    stand_in.calls.clear()
    analyze = handler(app, "analyze")
    result = analyze(PROMPT, store.local_name, None, None, "attention", Request(), **_defaults(app))
    assert outside == []
    assert [name for name, _ in stand_in.calls] == ["analysis"]
    seconds = stand_in.calls[0][1]
    assert isinstance(seconds, int) and model_runs.BASE_SECONDS <= seconds <= model_runs.MAX_SECONDS
    handle = next(v for v in result.values() if type(v).__name__ == "AnalysisHandle")
    kept = app.explorer_budget.get(handle.key)
    reference = analyze_prompt(store.get(store.local_name), PROMPT)
    assert kept.label is not None and kept.trace.surprise_of is None  # labels remade here; surprise made there
    np.testing.assert_allclose(kept.trace.attention, reference.trace.attention, atol=1e-3)
    np.testing.assert_allclose(kept.trace.token_surprise, reference.trace.token_surprise, atol=1e-4)
    # The logit lens came back with it (a second call would start another worker): Analyze's follow-up and
    # the Layers tab make none.
    assert len(kept.lens.positions) == min(_defaults(app)["lens_positions"], kept.trace.n_tokens)
    handler(app, "follow_up")(handle, result[app.explorer_open_tabs.shown], "attention", **_defaults(app))
    app.explorer_open_tabs.build("layers", handle, result[app.explorer_open_tabs.shown], _defaults(app))
    assert [name for name, _ in stand_in.calls] == ["analysis"]


def test_every_model_run_of_the_tabs_goes_through_spaces_gpu(guarded, tiny_checkpoint_dir):
    app, store, stand_in, outside = guarded
    name = store.local_name
    analyze = handler(app, "analyze")
    result = analyze(PROMPT, name, None, None, "attention", Request(), **_defaults(app))
    handle = next(v for v in result.values() if type(v).__name__ == "AnalysisHandle")
    stand_in.calls.clear()

    handler(app, "lens")(handle, 3)
    handler(app, "ablate")(handle, 1, 2, "this head", "zero", None)
    handler(app, "compare")(PROMPT, name, next(iter(SHIPPED)))
    list(handler(app, "generate")(PROMPT, name, 4, 0.0, 0, 1.0, 1))
    handler(app, "step")(PROMPT, name, None, None, 1.0, 0, 1.0, 1)
    # The small views read the CPU copy, in this process: no GPU call, no forward pass of the big model.
    handler(app, "select_head")(handle, 1, 2, False, 3)
    handler(app, "open_block")(handle, 1, 3)

    assert outside == []
    assert [call for call, _ in stand_in.calls] == ["lens", "ablation", "comparison", "generation", "next_logits"]


def test_the_training_snapshots_run_on_the_cpu_here_and_the_finished_model_through_its_copy(guarded):
    app, store, stand_in, outside = guarded
    shipped = next(iter(SHIPPED))
    result = handler(app, "analyze")("def f(x):\n    return x", shipped, None, None, "training", Request(),
                                     **_defaults(app))
    handle = next(v for v in result.values() if type(v).__name__ == "AnalysisHandle")
    stand_in.calls.clear()
    last = len(store.training_run(shipped).snapshots) - 1
    for index in (0, last):
        handler(app, "select_snapshot")(handle, index, 1, 0)
    assert outside == [] and stand_in.calls == []  # small models: no GPU call, no pass of the big one
    assert store.snapshot(shipped, 0).model.wte.weight.device.type == "cpu"
    assert store.snapshot(shipped, last).model is store.get(shipped).cpu_twin


def test_a_generation_made_in_the_worker_is_the_one_made_here(guarded):
    app, store, stand_in, _ = guarded
    import gpt2

    loaded = store.get(store.local_name)
    ids = loaded.tokenizer.encode(PROMPT)
    expected = list(gpt2.generate(loaded.view_model, ids, 6, temperature=0))
    text = list(handler(app, "generate")(PROMPT, store.local_name, 6, 0.0, 0, 1.0, 1))[-1]
    assert text == loaded.tokenizer.decode(ids + expected)


def _defaults(app) -> dict:
    """Analyze's keyword inputs at their components' starting values, as the page first sends them."""
    values = {}
    for tab in app.explorer_tabs.values():
        for key, component in tab.inputs.items():
            values[key] = component.value
    return values
