"""TransformerLens's names for the hook points (gpt2/tl_names.py) and capturing by either name."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import gpt2
from explorer.capture import capture_hooks
from gpt2.fast import make_fast
from gpt2.tl_names import HOOK_NAMES, OURS_ONLY, TL_ONLY, name_table, to_ours, to_tl

N_LAYER = 2
IDS = [5, 17, 3, 60, 42, 8, 11]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return gpt2.GPT2(gpt2.GPTConfig(n_vocab=64, n_ctx=16, n_embd=16, n_head=2, n_layer=N_LAYER)).eval()


def template(name: str) -> str:
    parts = name.split(".")
    return ".".join("{l}" if part.isdigit() else part for part in parts)


def test_every_hook_point_has_a_translation_or_is_listed_as_having_none(model):
    for name in model.hook_points():
        if template(name) in OURS_ONLY:
            with pytest.raises(ValueError, match="no TransformerLens counterpart"):
                to_tl(name, N_LAYER)
        else:
            assert to_tl(name, N_LAYER) == name_table(N_LAYER)[name]


def test_the_table_names_only_hook_points_the_model_has(model):
    assert set(name_table(N_LAYER)) | set(OURS_ONLY) == set(model.hook_points())


def test_ours_to_tl_and_back_is_the_identity():
    for ours in name_table(N_LAYER):
        assert to_ours(to_tl(ours, N_LAYER), N_LAYER) == ours


def test_either_name_translates_to_ours_and_to_tl():
    assert to_ours("blocks.1.attn.hook_pattern", N_LAYER) == to_ours("h.1.attn.hook_pattern", N_LAYER)
    assert to_ours("hook_embed") == "hook_tok_embed"
    assert to_tl("hook_tok_embed") == to_tl("hook_embed") == "hook_embed"
    assert to_tl("h.0.attn.hook_scores") == "blocks.0.attn.hook_attn_scores"
    assert to_tl("hook_final") == "ln_final.hook_normalized"


def test_the_table_covers_every_layer():
    for n_layer in (1, 2, 12):
        table = name_table(n_layer)
        per_block = [entry for entry in HOOK_NAMES if "{l}" in entry.ours]
        assert len(table) == len(HOOK_NAMES) - len(per_block) + n_layer * len(per_block)
        for entry in per_block:
            for layer in range(n_layer):
                assert table[entry.ours.format(l=layer)] == entry.tl.format(l=layer)


def test_an_unknown_name_suggests_the_near_ones():
    with pytest.raises(ValueError, match=r"did you mean 'blocks\.1\.attn\.hook_pattern'"):
        to_ours("blocks.1.attn.hook_patern", N_LAYER)
    with pytest.raises(ValueError, match="did you mean 'hook_embed'"):
        to_ours("hook_embd", N_LAYER)


def test_a_layer_the_model_lacks_is_an_error():
    with pytest.raises(ValueError, match="layer 2 does not exist"):
        to_ours("blocks.2.hook_resid_pre", N_LAYER)


def test_a_tl_hook_without_a_counterpart_says_why():
    with pytest.raises(ValueError, match="no counterpart in this model.*ln_1"):
        to_ours("blocks.0.ln1.hook_normalized", N_LAYER)
    assert all(TL_ONLY.values()) and all(OURS_ONLY.values())  # every name without a counterpart says why


def test_both_names_capture_the_same_tensor(model):
    pairs = [(ours, tl) for ours, tl in name_table(N_LAYER).items() if "hook_q" not in ours
             and "hook_k" not in ours and "hook_v" not in ours]
    arrays = capture_hooks(model, IDS, [name for pair in pairs for name in pair])
    for ours, tl in pairs:
        np.testing.assert_array_equal(arrays[ours], arrays[tl], err_msg=f"{ours} vs {tl}")


def test_q_k_v_come_in_the_layout_of_the_name_asked_for(model):
    T, n_head, d_head = len(IDS), model.config.n_head, model.config.d_head
    for kind in "qkv":
        ours, tl = f"h.1.attn.hook_{kind}", f"blocks.1.attn.hook_{kind}"
        arrays = capture_hooks(model, IDS, [ours, tl])
        assert arrays[ours].shape == (n_head, T, d_head)
        assert arrays[tl].shape == (T, n_head, d_head)
        np.testing.assert_array_equal(arrays[tl], arrays[ours].transpose(1, 0, 2))


def test_captured_tensors_are_the_models_own(model):
    arrays = capture_hooks(model, IDS, ["hook_logits", "ln_final.hook_normalized", "blocks.0.attn.hook_pattern"])
    with torch.inference_mode():
        logits = model(torch.tensor([IDS]))[0].numpy()
    np.testing.assert_allclose(arrays["hook_logits"], logits, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(arrays["ln_final.hook_normalized"] @ model.wte.weight.detach().numpy().T, logits,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(arrays["blocks.0.attn.hook_pattern"].sum(-1), 1.0, rtol=1e-6)


def test_capture_hooks_checks_every_name_before_running(model):
    with pytest.raises(ValueError, match="unknown hook point"):
        capture_hooks(model, IDS, ["hook_embed", "blocks.0.hook_resid_pree"])


def test_capture_hooks_takes_one_name_and_leaves_no_hooks(model):
    arrays = capture_hooks(model, IDS, "hook_embed")
    assert list(arrays) == ["hook_embed"] and arrays["hook_embed"].shape == (len(IDS), model.config.n_embd)
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


def test_the_fast_model_gives_the_same_tensors_by_either_name(model):
    fast = make_fast(copy.deepcopy(model))
    names = [name for pair in name_table(N_LAYER).items() for name in pair]
    reference, fast_arrays = capture_hooks(model, IDS, names), capture_hooks(fast, IDS, names)
    for name in names:
        np.testing.assert_allclose(fast_arrays[name], reference[name], rtol=1e-5, atol=1e-5, err_msg=name)
