"""gpt2/fast.py: the fast model computes what the reference computes, hook for hook, and its packed
weights are never stale and never required."""

from __future__ import annotations

import copy
import logging
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gpt2
from conftest import TINY_HPARAMS
from gpt2 import fast
from gpt2.fast import FastGPT2, PackedLinear, gelu_in_place, is_prepacked, make_fast
from openai_layout import reference_forward

IDS = [[464, 3290, 3332, 319, 262, 2603, 13, 383, 3290, 3332, 11, 290],
       [6109, 3626, 6100, 345, 15496, 11, 995, 0, 464, 2068, 7586, 21831]]
CHUNKS = [(0, 5), (5, 9), (9, 10), (10, 11), (11, 12)]  # a prefill, a 4-token chunk, then token by token

needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")


@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


@pytest.fixture
def fast_model(tiny_checkpoint_dir):
    return make_fast(gpt2.load_openai_checkpoint(tiny_checkpoint_dir))


def packed_layers(model) -> list[PackedLinear]:
    return [m for m in model.modules() if isinstance(m, PackedLinear) and m.packed is not None]


def run(model, ids, names=(), replace=None, cache=False):
    """Logits, and every tensor of the hook points in `names` (in call order); `replace` maps a
    hook name to a function whose result replaces that tensor."""
    seen = {name: [] for name in names}
    replace = replace or {}

    def hook_for(name):
        def hook(module, inputs, output):
            if name in seen:
                seen[name].append(output.clone())
            return replace[name](output) if name in replace else None
        return hook

    points = model.hook_points()
    handles = [points[name].register_forward_hook(hook_for(name)) for name in set(names) | set(replace)]
    try:
        ids = torch.tensor(ids)
        if not cache:
            return model(ids), seen
        kv_cache = model.new_kv_cache(batch_size=ids.shape[0])
        logits = torch.cat([model(ids[:, start:end], kv_cache) for start, end in CHUNKS], dim=1)
        return logits, seen
    finally:
        for handle in handles:
            handle.remove()


ALL_HOOKS = sorted(gpt2.GPT2(gpt2.GPTConfig(**TINY_HPARAMS)).hook_points())
# Which hooks are read decides the fast model's attention path: all of them -> explicit; all but the
# scores -> blocked (with blocks of 2 queries, below); neither scores nor pattern -> fused.
WATCHED = {
    "explicit": ALL_HOOKS,
    "blocked": [n for n in ALL_HOOKS if not n.endswith("hook_scores")],
    "fused": [n for n in ALL_HOOKS if not n.endswith(("hook_scores", "hook_pattern"))],
}


@pytest.mark.parametrize("cache", [False, True], ids=["full", "kv-cache"])
@pytest.mark.parametrize("path", sorted(WATCHED))
def test_every_hook_and_the_logits_agree_with_the_reference(tiny_model, fast_model, monkeypatch, path, cache):
    monkeypatch.setattr(fast, "ATTENTION_BLOCK", 2)
    expected_logits, expected = run(tiny_model, IDS, WATCHED[path], cache=cache)
    logits, got = run(fast_model, IDS, WATCHED[path], cache=cache)
    torch.testing.assert_close(logits, expected_logits, rtol=1e-5, atol=1e-5)
    for name in WATCHED[path]:
        assert len(got[name]) == len(expected[name]) > 0, name
        for a, b in zip(got[name], expected[name]):
            assert a.shape == b.shape, name
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=name)


def uniform_pattern(p):
    """Every query spreads its attention evenly over the keys it may see (queries are the last T of T_k)."""
    visible = torch.ones_like(p).tril(diagonal=p.shape[-1] - p.shape[-2])
    return visible / visible.sum(-1, keepdim=True)


REPLACEMENTS = {
    "pattern, blocked": ({"h.0.attn.hook_pattern": uniform_pattern}, []),
    "pattern, explicit": ({"h.0.attn.hook_pattern": uniform_pattern}, ["h.0.attn.hook_scores"]),
    "scores": ({"h.1.attn.hook_scores": lambda s: s * 0.25}, []),
    "q": ({"h.1.attn.hook_q": lambda q: q * 2.0}, []),
    "z": ({"h.0.attn.hook_z": lambda z: z * torch.tensor([0.0, 1.0, 1.0, 1.0]).view(1, 1, 4, 1)}, []),
    "mlp post": ({"h.1.mlp.hook_post": torch.zeros_like}, []),
    "resid_mid": ({"h.0.hook_resid_mid": lambda x: x * 0.5}, []),
}


@pytest.mark.parametrize("cache", [False, True], ids=["full", "kv-cache"])
@pytest.mark.parametrize("case", sorted(REPLACEMENTS))
def test_a_replacing_hook_drives_the_output_as_in_the_reference(tiny_model, fast_model, monkeypatch, case, cache):
    monkeypatch.setattr(fast, "ATTENTION_BLOCK", 2)
    replace, also_read = REPLACEMENTS[case]
    expected, _ = run(tiny_model, IDS, also_read, replace, cache=cache)
    got, _ = run(fast_model, IDS, also_read, replace, cache=cache)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    untouched, _ = run(tiny_model, IDS, cache=cache)
    assert not torch.allclose(got, untouched, atol=1e-3)  # the replacement really changed the output


def test_make_fast_works_in_place_keeping_parameters_and_hook_names(tiny_checkpoint_dir):
    model = gpt2.load_openai_checkpoint(tiny_checkpoint_dir)
    parameters, names = dict(model.named_parameters()), list(model.hook_points())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert make_fast(model) is model and isinstance(model, FastGPT2)
    assert dict(model.named_parameters()) == parameters  # the same Parameter objects
    assert list(model.hook_points()) == names
    assert model.state_dict().keys() == state.keys()  # the packed copies are no parameters
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert make_fast(model) is model  # twice is harmless
    assert list(model.hook_points()) == names


def test_hooks_attached_before_make_fast_keep_firing(tiny_checkpoint_dir):
    model = gpt2.load_openai_checkpoint(tiny_checkpoint_dir)
    patterns = []
    model.h[1].attn.hook_pattern.register_forward_hook(lambda m, i, o: patterns.append(o))
    make_fast(model)(torch.tensor(IDS))
    assert len(patterns) == 1 and patterns[0].shape == (2, TINY_HPARAMS["n_head"], 12, 12)


def test_fast_model_agrees_with_float64_reference(fast_model, tiny_weights):
    patterns = []
    handles = [b.attn.hook_pattern.register_forward_hook(lambda m, i, o: patterns.append(o[0])) for b in fast_model.h]
    try:
        logits = fast_model(torch.tensor(IDS[:1]))
    finally:
        for handle in handles:
            handle.remove()
    unwatched = fast_model(torch.tensor(IDS[:1]))  # fused attention once the hooks are gone
    expected = reference_forward(tiny_weights, TINY_HPARAMS, IDS[0])
    for got in (logits, unwatched):
        np.testing.assert_allclose(got[0].double().numpy(), expected["logits"], atol=1e-4)
    np.testing.assert_allclose(torch.stack(patterns).double().numpy(), expected["attention"], atol=1e-5)


def test_gradients_equal_the_reference_s(tiny_model, fast_model):
    # Training passes run with autograd on: fused attention, PyTorch's GELU, no packed weights.
    grads = []
    for model in (copy.deepcopy(tiny_model), fast_model):
        with torch.enable_grad():
            logits = model.train()(torch.tensor(IDS))
            F.cross_entropy(logits[:, :-1].flatten(0, 1), torch.tensor(IDS)[:, 1:].flatten()).backward()
        grads.append({name: p.grad for name, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-4, atol=1e-5, msg=name)


def test_bfloat16_fast_model_stays_close_with_a_float32_pattern(tiny_model, monkeypatch):
    monkeypatch.setattr(fast, "ATTENTION_BLOCK", 2)
    reference = copy.deepcopy(tiny_model).to(torch.bfloat16)
    fast_bf16 = make_fast(copy.deepcopy(tiny_model).to(torch.bfloat16))
    assert packed_layers(fast_bf16) == []  # only float32 weights are packed
    names = ["h.1.attn.hook_pattern"]
    (expected, seen), (got, watched) = run(reference, IDS, names), run(fast_bf16, IDS, names)
    assert got.dtype == torch.bfloat16 and watched[names[0]][0].dtype == torch.float32
    torch.testing.assert_close(watched[names[0]][0], seen[names[0]][0], rtol=0, atol=2e-2)
    p, q = torch.softmax(expected.float(), -1), torch.softmax(got.float(), -1)
    assert (p - q).abs().sum(-1).max() < 0.1


def test_global_module_hooks_see_every_hook_point_as_in_the_reference(tiny_model, fast_model):
    # The call shortcut must not hide a hook point from a hook registered for every module.
    from torch.nn.modules.module import register_module_forward_hook

    counts = []
    for model in (tiny_model, fast_model):
        seen = []
        handle = register_module_forward_hook(lambda m, i, o: seen.append(type(m).__name__))
        try:
            model(torch.tensor(IDS[:1]))
        finally:
            handle.remove()
        counts.append(sum(name.endswith("HookPoint") for name in seen))
    assert counts == [len(tiny_model.hook_points())] * 2


def test_a_torch_without_the_hook_registries_gets_no_call_shortcuts(tiny_checkpoint_dir, tiny_model, monkeypatch):
    from torch.nn.modules import module as torch_module

    monkeypatch.delattr(torch_module, "_global_forward_pre_hooks")
    model = make_fast(gpt2.load_openai_checkpoint(tiny_checkpoint_dir))
    assert type(model.hook_tok_embed) is gpt2.HookPoint
    monkeypatch.undo()
    torch.testing.assert_close(model(torch.tensor(IDS)), tiny_model(torch.tensor(IDS)), rtol=1e-5, atol=1e-5)


def test_gelu_in_place_is_gpt2s_gelu_and_leaves_its_input():
    x = torch.linspace(-12, 12, 2001, dtype=torch.float64)
    before = x.clone()
    torch.testing.assert_close(gelu_in_place(x), gpt2.model.gelu(x), rtol=0, atol=1e-12)
    assert torch.equal(x, before)


# ---- prepacking

@needs_onednn
def test_every_projection_and_the_head_are_packed(fast_model):
    assert is_prepacked(fast_model)
    assert len(packed_layers(fast_model)) == 4 * TINY_HPARAMS["n_layer"]


@needs_onednn
def test_the_lens_reads_the_packed_head_through_unembed(fast_model, tiny_model):
    from explorer.lens import lens_logits

    residual = np.random.default_rng(0).standard_normal((3, TINY_HPARAMS["n_embd"])).astype(np.float32)
    torch.testing.assert_close(lens_logits(fast_model, residual), lens_logits(tiny_model, residual), rtol=1e-5, atol=1e-5)


@needs_onednn
def test_editing_a_weight_in_place_bypasses_the_stale_copy(fast_model, tiny_checkpoint_dir):
    plain = gpt2.load_openai_checkpoint(tiny_checkpoint_dir)
    ids = torch.tensor(IDS)
    for model in (fast_model, plain):
        model.h[0].mlp.c_fc.weight.mul_(3.0)
        model.wte.weight[IDS[0][-1]] += 0.5
    torch.testing.assert_close(fast_model(ids), plain(ids), rtol=1e-5, atol=1e-5)
    make_fast(fast_model)  # repacking picks the edits up again
    assert is_prepacked(fast_model)
    torch.testing.assert_close(fast_model(ids), plain(ids), rtol=1e-5, atol=1e-5)


@needs_onednn
def test_load_state_dict_and_a_dtype_change_never_use_stale_copies(fast_model, tiny_model):
    state = {k: v * 0.5 if k.endswith("c_proj.weight") else v for k, v in tiny_model.state_dict().items()}
    fast_model.load_state_dict(state)
    plain = copy.deepcopy(tiny_model)
    plain.load_state_dict(state)
    torch.testing.assert_close(fast_model(torch.tensor(IDS)), plain(torch.tensor(IDS)), rtol=1e-5, atol=1e-5)
    bf16 = fast_model.to(torch.bfloat16)(torch.tensor(IDS))
    assert bf16.dtype == torch.bfloat16 and torch.isfinite(bf16).all()
    assert not is_prepacked(make_fast(fast_model))  # nothing to pack in bfloat16


@needs_onednn
def test_copies_and_pickles_drop_the_packed_weights(fast_model):
    for clone in (copy.deepcopy(fast_model), pickle.loads(pickle.dumps(fast_model))):
        assert packed_layers(clone) == [] and clone.packed_head is None
        torch.testing.assert_close(clone(torch.tensor(IDS)), fast_model(torch.tensor(IDS)), rtol=1e-5, atol=1e-5)


@needs_onednn
def test_packing_waits_until_it_fits_in_memory(tiny_checkpoint_dir):
    model = make_fast(gpt2.load_openai_checkpoint(tiny_checkpoint_dir), memory_share=1e-12)
    assert isinstance(model, FastGPT2) and packed_layers(model) == [] and model.packed_head is None
    assert is_prepacked(make_fast(model, memory_share=0.5))


@pytest.mark.parametrize("fault", ["missing", "wrong numbers"])
def test_a_broken_onednn_warns_once_and_runs_unpacked(tiny_checkpoint_dir, tiny_model, monkeypatch, caplog, fault):
    if fault == "missing":
        monkeypatch.setattr(torch.ops, "mkldnn", object())  # a torch without these operators
    else:
        original = torch.ops.mkldnn._linear_pointwise
        monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", lambda *args: original(*args) + 0.01)
    with caplog.at_level(logging.WARNING, logger="gpt2.fast"):
        model = make_fast(gpt2.load_openai_checkpoint(tiny_checkpoint_dir))
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "unpacked" in caplog.records[0].getMessage()
    assert packed_layers(model) == [] and model.packed_head is None
    torch.testing.assert_close(model(torch.tensor(IDS)), tiny_model(torch.tensor(IDS)), rtol=1e-5, atol=1e-5)
