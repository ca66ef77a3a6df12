"""Direct logit attribution and activation patching, checked against a float64 computation from the
checkpoint's own arrays (sharing no code with the package) and against identities that must hold."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gpt2
from conftest import TINY_HPARAMS
from explorer import attribution
from explorer.attribution import PromptLengthMismatch, logit_attribution, patch
from openai_layout import _gelu, _layer_norm, _softmax

IDS = [6109, 3626, 6100, 345, 15496, 11, 995, 0, 464, 2068, 7586, 21831, 625, 262]
L, H = TINY_HPARAMS["n_layer"], TINY_HPARAMS["n_head"]


def reference_attribution(weights, ids, target, foil=None):
    """OpenAI's equations in float64, keeping each head's z, and the last logit split by hand."""
    w = {name: array.astype(np.float64) for name, array in weights.items()}
    T = len(ids)
    embed = w["model/wte"][ids] + w["model/wpe"][:T]
    x = embed.copy()
    mask = np.triu(np.full((T, T), -1e10), 1)
    heads, mlps, biases = np.zeros((L, H)), np.zeros(L), np.zeros_like(x[-1])
    parts_heads, parts_mlps = [], []
    for layer in range(L):
        p = lambda name: w[f"model/h{layer}/{name}"]  # noqa: E731
        a = _layer_norm(x, p("ln_1/g"), p("ln_1/b")) @ p("attn/c_attn/w")[0] + p("attn/c_attn/b")
        q, k, v = (m.reshape(T, H, -1).transpose(1, 0, 2) for m in np.split(a, 3, axis=-1))
        z = _softmax(q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1]) + mask) @ v  # [H, T, d_head]
        d = z.shape[-1]
        w_o = p("attn/c_proj/w")[0]  # [C (concat z), C]
        parts_heads.append([z[h, -1] @ w_o[h * d:(h + 1) * d] for h in range(H)])
        biases = biases + p("attn/c_proj/b")
        x = x + z.transpose(1, 0, 2).reshape(T, -1) @ w_o + p("attn/c_proj/b")
        m = _gelu(_layer_norm(x, p("ln_2/g"), p("ln_2/b")) @ p("mlp/c_fc/w")[0] + p("mlp/c_fc/b"))
        m = m @ p("mlp/c_proj/w")[0] + p("mlp/c_proj/b")
        parts_mlps.append(m[-1])
        x = x + m
    last = x[-1]
    sigma = np.sqrt(((last - last.mean()) ** 2).mean() + 1e-5)
    direction = w["model/wte"][target] - (w["model/wte"][foil] if foil is not None else 0)
    g = w["model/ln_f/g"]

    def share(vector):  # LN_f with sigma frozen: centre, divide, scale, project
        return float(((vector - vector.mean()) / sigma * g) @ direction)

    for layer in range(L):
        heads[layer] = [share(v) for v in parts_heads[layer]]
        mlps[layer] = share(parts_mlps[layer])
    logits = _layer_norm(x, g, w["model/ln_f/b"]) @ w["model/wte"].T
    logit = logits[-1, target] - (logits[-1, foil] if foil is not None else 0)
    rest = share(biases) + float(w["model/ln_f/b"] @ direction)
    return {"embed": share(embed[-1]), "heads": heads, "mlps": mlps, "rest": rest, "logit": float(logit),
            "argmax": int(logits[-1].argmax())}


@pytest.mark.parametrize("foil", [None, 262])
def test_each_part_matches_a_float64_attribution_from_the_checkpoint(tiny_model, tiny_weights, foil):
    target = 464
    got = logit_attribution(tiny_model, IDS, target=target, foil=foil)
    want = reference_attribution(tiny_weights, IDS, target, foil)
    assert got.target == target and got.foil == foil
    np.testing.assert_allclose(got.heads, want["heads"], atol=1e-3)
    np.testing.assert_allclose(got.mlps, want["mlps"], atol=1e-3)
    assert got.embed == pytest.approx(want["embed"], abs=1e-3)
    assert got.rest == pytest.approx(want["rest"], abs=1e-3)
    assert got.logit == pytest.approx(want["logit"], abs=1e-3)
    assert got.total == pytest.approx(got.logit, abs=1e-3)  # the parts add up to the logit
    assert np.abs(got.heads).max() > 0.01  # random weights: the heads do write something


def test_default_target_is_the_most_likely_next_token(tiny_model, tiny_weights):
    got = logit_attribution(tiny_model, IDS)
    assert got.target == reference_attribution(tiny_weights, IDS, 0)["argmax"]
    names = [name for name, _ in got.parts()]
    assert len(names) == 2 + L + L * H and "head 1.0" in names and "MLP 0" in names
    sizes = [abs(value) for _, value in got.parts()]
    assert sizes == sorted(sizes, reverse=True)


def test_the_fast_model_gives_the_same_split(tiny_checkpoint_dir):
    from gpt2.fast import make_fast

    reference = gpt2.load_openai_checkpoint(tiny_checkpoint_dir)
    fast = make_fast(gpt2.load_openai_checkpoint(tiny_checkpoint_dir))
    a, b = logit_attribution(reference, IDS, 464, 262), logit_attribution(fast, IDS, 464, 262)
    np.testing.assert_allclose(a.heads, b.heads, atol=1e-4)
    np.testing.assert_allclose(a.mlps, b.mlps, atol=1e-4)


def test_bad_targets_are_refused_with_what_is_allowed(tiny_model):
    with pytest.raises(ValueError, match="does not exist"):
        logit_attribution(tiny_model, IDS, target=TINY_HPARAMS["n_vocab"])
    with pytest.raises(ValueError, match="another token"):
        logit_attribution(tiny_model, IDS, target=464, foil=464)
    with pytest.raises(ValueError, match="token id"):
        logit_attribution(tiny_model, IDS, target="464")


CLEAN = [6109, 3626, 6100, 345, 15496, 11, 995, 0, 464, 2068]
CORRUPTED = [6109, 3626, 6100, 345, 15496, 11, 995, 0, 3290, 2068]  # one token differs, at position 8


def _target_and_foil(model):
    """Two tokens whose logit difference the corruption changes: the clean run's top token and the corrupted one's."""
    with torch.no_grad():
        clean, corrupted = model(torch.tensor([CLEAN, CORRUPTED]))[:, -1].argmax(-1).tolist()
    assert clean != corrupted
    return clean, corrupted


@pytest.mark.parametrize("site", ["resid_pre", "resid_post", "attn_out", "mlp_out"])
def test_patching_identities(tiny_model, site):
    target, foil = _target_and_foil(tiny_model)
    result = patch(tiny_model, CLEAN, CORRUPTED, target, foil, site=site)
    assert result.recovered.shape == (L, len(CLEAN))
    assert result.first_difference == 8
    assert result.clean_diff > 0 > result.corrupted_diff  # the clean answer wins clean, loses corrupted
    # Before the first different token both runs hold the same numbers: nothing to recover.
    assert (result.recovered[:, :8] == 0).all()
    if site == "resid_post":  # the last stream at the last position is all the head reads: everything comes back
        assert result.recovered[L - 1, -1] == pytest.approx(1.0, abs=1e-5)
    if site == "resid_pre":  # the only different token, replaced at the bottom: the clean run itself
        assert result.recovered[0, 8] == pytest.approx(1.0, abs=1e-5)
    assert result.rows < L * len(CLEAN)  # the agreeing sites were not run


def test_batched_patching_equals_one_site_at_a_time(tiny_model, monkeypatch):
    target, foil = _target_and_foil(tiny_model)
    for site in ("resid_pre", "head_out"):
        batched = patch(tiny_model, CLEAN, CORRUPTED, target, foil, site=site)
        monkeypatch.setattr(attribution, "PATCH_BATCH_TOKENS", len(CLEAN))  # one row per pass
        single = patch(tiny_model, CLEAN, CORRUPTED, target, foil, site=site)
        monkeypatch.undo()
        assert single.passes == single.rows > batched.passes
        np.testing.assert_allclose(batched.recovered, single.recovered, atol=1e-4)  # float32 sums in another order
        assert np.abs(batched.recovered).max() > 0.01


def test_head_patching_by_hand(tiny_model):
    """One head's z copied from the clean run: the same as running with a hook that does it by hand."""
    target, foil = _target_and_foil(tiny_model)
    result = patch(tiny_model, CLEAN, CORRUPTED, target, foil, site="head_out")
    assert result.recovered.shape == (L, H) and result.by_head
    with torch.no_grad():
        kept = {}
        handle = tiny_model.h[1].attn.hook_z.register_forward_hook(lambda m, i, out: kept.__setitem__("z", out.clone()))
        tiny_model(torch.tensor([CLEAN]))
        handle.remove()

        def put_back(module, inputs, out):
            out = out.clone()
            out[:, :, 2] = kept["z"][:, :, 2]
            return out

        handle = tiny_model.h[1].attn.hook_z.register_forward_hook(put_back)
        logits = tiny_model(torch.tensor([CORRUPTED]))[0, -1].double()
        handle.remove()
    diff = float(logits[target] - logits[foil])
    want = (diff - result.corrupted_diff) / (result.clean_diff - result.corrupted_diff)
    assert result.recovered[1, 2] == pytest.approx(want, abs=1e-5)


def test_patching_refuses_what_it_cannot_compare(tiny_model):
    enc = gpt2.get_tokenizer()
    with pytest.raises(PromptLengthMismatch, match=r"clean prompt has 3 .*corrupted one 2") as error:
        patch(tiny_model, enc.encode(" Mary and John"), enc.encode(" Mary John"), 464, 262, tokenizer=enc)
    assert "' Mary', ' and', ' John'" in str(error.value)  # both tokenisations shown
    with pytest.raises(ValueError, match="same tokens"):
        patch(tiny_model, CLEAN, CLEAN, 464, 262)
    with pytest.raises(ValueError, match="site must be one of"):
        patch(tiny_model, CLEAN, CORRUPTED, 464, 262, site="embed")
    with pytest.raises(ValueError, match="another token"):
        patch(tiny_model, CLEAN, CORRUPTED, 464, 464)


def test_no_hook_is_left_behind(tiny_model):
    target, foil = _target_and_foil(tiny_model)
    logit_attribution(tiny_model, IDS)
    patch(tiny_model, CLEAN, CORRUPTED, target, foil, site="head_out")
    with pytest.raises(ValueError):
        patch(tiny_model, CLEAN, CORRUPTED, target, target)
    assert not any(module._forward_hooks for module in tiny_model.modules())


def test_the_trained_models_example_pair_points_the_right_way():
    """On the shipped model (trained here on Python): the clean prompt prefers its answer, the corrupted one the
    foil, and copying the stream at the changed token back into the corrupted run restores the answer."""
    from explorer.attribution import PATCHING_EXAMPLES

    model = gpt2.load_pretrained("tiny")
    enc = gpt2.get_tokenizer(gpt2.SHIPPED_MODELS["tiny"])
    example = PATCHING_EXAMPLES["trained"]
    clean, corrupted = enc.encode(example.clean), enc.encode(example.corrupted)
    (target,), (foil,) = enc.encode(example.answer), enc.encode(example.foil)
    result = patch(model, clean, corrupted, target, foil, site="resid_pre")
    assert result.clean_diff > 1 and result.corrupted_diff < -1
    first = result.first_difference
    assert result.recovered[0, first] == pytest.approx(1.0, abs=1e-4)  # one token differs: that is the clean run
    assert result.recovered[1, first] > 0.5  # the last block still reads the answer where it was written
    after = patch(model, clean, corrupted, target, foil, site="resid_post")
    assert after.recovered[-1, -1] == pytest.approx(1.0, abs=1e-4) and after.recovered[-1, first] < 0.1  # moved
    heads = patch(model, clean, corrupted, target, foil, site="head_out").recovered
    assert np.unravel_index(int(np.argmax(heads)), heads.shape)[0] == 1  # a head of the last layer carried it
    split = logit_attribution(model, clean, target, foil)
    assert split.total == pytest.approx(result.clean_diff, abs=1e-3)
