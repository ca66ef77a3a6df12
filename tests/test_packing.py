"""Prepacked weights (gpt2/packing.py): same numbers as F.linear, and never stale."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gpt2
from gpt2.model import gelu_tanh
from gpt2.packing import Linear, PackedWeight, available_memory, prepack_if_it_fits
from conftest import TINY_HPARAMS
from openai_layout import reference_forward

needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")

IDS = torch.tensor([[464, 3290, 3332, 319, 262, 2603, 13, 383, 3290, 3332]])


@pytest.fixture
def packed_model(tiny_checkpoint_dir):
    model = gpt2.load_openai_checkpoint(tiny_checkpoint_dir)
    assert model.prepack()
    return model


def packed_layers(model) -> list[Linear]:
    return [m for m in model.modules() if isinstance(m, Linear) and m.packed is not None]


@needs_onednn
def test_prepack_packs_every_projection_and_the_head(packed_model):
    config = packed_model.config
    assert len(packed_layers(packed_model)) == 4 * config.n_layer
    assert packed_model.packed_head is not None
    assert "packed" not in " ".join(packed_model.state_dict())  # a cache, not a parameter


@needs_onednn
def test_packed_model_gives_the_same_logits(packed_model, tiny_model, tiny_weights):
    with torch.no_grad():
        packed, plain = packed_model(IDS), tiny_model(IDS)
    torch.testing.assert_close(packed, plain, rtol=0, atol=2e-5)
    expected = reference_forward(tiny_weights, TINY_HPARAMS, IDS[0].tolist())["logits"]
    np.testing.assert_allclose(packed[0].double().numpy(), expected, atol=1e-4)


@needs_onednn
def test_packed_decoding_matches_full_recomputation(packed_model):
    with torch.no_grad():
        full = packed_model(IDS)
        cache = packed_model.new_kv_cache()
        steps = [packed_model(IDS[:, :4], cache)] + [packed_model(IDS[:, i:i + 1], cache) for i in range(4, IDS.shape[1])]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=2e-5)


@needs_onednn
def test_editing_a_weight_in_place_bypasses_the_stale_copy(packed_model, tiny_checkpoint_dir):
    plain = gpt2.load_openai_checkpoint(tiny_checkpoint_dir)
    with torch.no_grad():
        for model in (packed_model, plain):
            model.h[0].mlp.c_fc.weight.mul_(3.0)
            model.wte.weight[IDS[0, -1]] += 0.5
        edited, expected = packed_model(IDS), plain(IDS)
    torch.testing.assert_close(edited, expected, rtol=0, atol=2e-5)
    assert packed_model.prepack()  # repacking picks the edits up again
    with torch.no_grad():
        torch.testing.assert_close(packed_model(IDS), expected, rtol=0, atol=2e-5)


@needs_onednn
def test_replacing_weights_by_load_state_dict_or_dtype_change_is_safe(packed_model, tiny_model):
    state = {k: v * 0.5 if k.endswith("c_proj.weight") else v for k, v in tiny_model.state_dict().items()}
    packed_model.load_state_dict(state)
    plain = copy.deepcopy(tiny_model)
    plain.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(packed_model(IDS), plain(IDS), rtol=0, atol=2e-5)
        bf16 = packed_model.to(torch.bfloat16)(IDS)  # packed float32 copies must not be used now
    assert bf16.dtype == torch.bfloat16 and torch.isfinite(bf16).all()
    assert not packed_model.prepack()  # nothing to pack in bfloat16


@needs_onednn
def test_copies_and_pickles_drop_the_packed_weights(packed_model):
    for clone in (copy.deepcopy(packed_model), pickle.loads(pickle.dumps(packed_model))):
        assert packed_layers(clone) == [] and clone.packed_head is None
        with torch.no_grad():
            torch.testing.assert_close(clone(IDS), packed_model(IDS), rtol=0, atol=2e-5)


@needs_onednn
def test_gradients_flow_through_a_packed_model(packed_model):
    loss = F.cross_entropy(packed_model(IDS)[0, :-1], IDS[0, 1:])
    loss.backward()
    grad = packed_model.h[0].attn.c_attn.weight.grad
    assert grad is not None and grad.abs().sum() > 0


@needs_onednn
def test_unpack_frees_the_copies(packed_model):
    assert packed_model.prepack(enable=False) is False
    assert packed_layers(packed_model) == [] and packed_model.packed_head is None


def test_packing_declines_what_onednn_cannot_take():
    assert PackedWeight.of(torch.zeros(4, 4, dtype=torch.bfloat16)) is None
    assert PackedWeight.of(torch.zeros(4, dtype=torch.float32)) is None


def test_gelu_tanh_is_gpt2s_gelu_with_the_same_gradient():
    x = torch.linspace(-12, 12, 2001, dtype=torch.float64, requires_grad=True)
    expected = 0.5 * x * (1 + torch.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    with torch.no_grad():
        torch.testing.assert_close(gelu_tanh(x), expected, rtol=0, atol=1e-12)  # the in-place sigmoid form
    gelu_tanh(x).sum().backward()
    grad = x.grad.clone()
    x.grad = None
    expected.sum().backward()
    torch.testing.assert_close(grad, x.grad, rtol=0, atol=1e-12)


@needs_onednn
def test_prepack_if_it_fits_respects_the_memory_share(tiny_checkpoint_dir):
    model = gpt2.load_openai_checkpoint(tiny_checkpoint_dir)
    assert available_memory() > 0
    assert not prepack_if_it_fits(model, share=1e-12)
    assert packed_layers(model) == [] and model.packed_head is None
    assert prepack_if_it_fits(model, share=0.5)
    assert len(packed_layers(model)) == 4 * model.config.n_layer


def test_a_failing_or_wrong_kernel_means_unpacked_not_an_error(monkeypatch, tiny_checkpoint_dir):
    model = gpt2.load_openai_checkpoint(tiny_checkpoint_dir)

    def broken(*args):
        raise TypeError("no such kernel on this platform")

    monkeypatch.setattr(torch.ops.mkldnn, "_reorder_linear_weight", broken)
    assert not model.prepack() and packed_layers(model) == []
    monkeypatch.undo()
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", lambda x, *rest: torch.zeros(x.shape[0], 1))
    assert not model.prepack()  # a kernel whose answer disagrees with F.linear is never used
    with torch.no_grad():
        assert torch.isfinite(model(IDS)).all()
