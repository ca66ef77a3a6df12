"""Ablation: against an independent float64 forward pass that applies the same intervention by hand."""

import copy
import threading

import numpy as np

from gpt2.fast import make_fast
import pytest
import torch

from conftest import TINY_HPARAMS
from explorer import interventions
from explorer.capture import capture
from openai_layout import _gelu, _layer_norm, _softmax

IDS = [6109, 3626, 6100, 345, 15496, 11, 995, 0, 464, 2068, 7586, 21831, 625, 262]
L, H = TINY_HPARAMS["n_layer"], TINY_HPARAMS["n_head"]


def _removed(x, mode):
    """x [T, ...] replaced: zeros, or at each position the mean of positions 0..i."""
    if mode == "zero":
        return np.zeros_like(x)
    counts = np.arange(1, len(x) + 1).reshape((-1,) + (1,) * (x.ndim - 1))
    return np.cumsum(x, axis=0) / counts


def ablated_reference(weights, ids, heads=(), mlps=(), mode="zero"):
    """OpenAI's equations in float64, with each listed head's z and each listed MLP's output replaced.

    Returns the logits at every position [T, n_vocab].
    """
    w = {name: array.astype(np.float64) for name, array in weights.items()}
    T = len(ids)
    x = w["model/wte"][ids] + w["model/wpe"][:T]
    mask = np.triu(np.full((T, T), -1e10), 1)
    for layer in range(L):
        p = lambda name: w[f"model/h{layer}/{name}"]  # noqa: E731
        a = _layer_norm(x, p("ln_1/g"), p("ln_1/b")) @ p("attn/c_attn/w")[0] + p("attn/c_attn/b")
        q, k, v = (m.reshape(T, H, -1).transpose(1, 0, 2) for m in np.split(a, 3, axis=-1))
        z = _softmax(q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1]) + mask) @ v  # [H, T, d_head]
        for head in [h for l, h in heads if l == layer]:
            z[head] = _removed(z[head], mode)
        x = x + z.transpose(1, 0, 2).reshape(T, -1) @ p("attn/c_proj/w")[0] + p("attn/c_proj/b")
        m = _gelu(_layer_norm(x, p("ln_2/g"), p("ln_2/b")) @ p("mlp/c_fc/w")[0] + p("mlp/c_fc/b"))
        m = m @ p("mlp/c_proj/w")[0] + p("mlp/c_proj/b")
        x = x + (_removed(m, mode) if layer in mlps else m)
    return _layer_norm(x, w["model/ln_f/g"], w["model/ln_f/b"]) @ w["model/wte"].T


def reference_probs_and_surprise(weights, **ablation):
    logits = ablated_reference(weights, IDS, **ablation)
    log_probs = logits - logits.max(-1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
    return np.exp(log_probs[-1]), -log_probs[np.arange(len(IDS) - 1), IDS[1:]]


def all_hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


CASES = {
    "one head": dict(heads=[(1, 2)]),
    "several heads in several layers": dict(heads=[(0, 0), (0, 3), (1, 1)]),
    "mlps": dict(mlps=[0, 1]),
    "heads and an mlp, mean": dict(heads=[(0, 1), (1, 3)], mlps=[0], mode="mean"),
    "one head, mean": dict(heads=[(0, 2)], mode="mean"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_ablated_probabilities_match_the_independent_computation(tiny_model, tiny_weights, case):
    expected, _ = reference_probs_and_surprise(tiny_weights, **CASES[case])
    probs = interventions.ablate(tiny_model, IDS, **CASES[case])
    assert probs.shape == (TINY_HPARAMS["n_vocab"],)
    np.testing.assert_allclose(probs, expected, atol=2e-6, rtol=1e-4)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_ablated_surprise_matches_the_independent_computation(tiny_model, tiny_weights, case):
    _, expected = reference_probs_and_surprise(tiny_weights, **CASES[case])
    result = interventions.run_ablation(tiny_model, IDS, **CASES[case])
    np.testing.assert_allclose(result.token_surprise, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_each_ablation_changes_the_prediction(tiny_model, case):
    clean = capture(tiny_model, IDS).next_token_probs
    assert np.abs(interventions.ablate(tiny_model, IDS, **CASES[case]) - clean).max() > 1e-3


def test_an_empty_ablation_is_the_clean_model(tiny_model):
    trace = capture(tiny_model, IDS)
    result = interventions.run_ablation(tiny_model, IDS)
    np.testing.assert_allclose(result.probs, trace.next_token_probs, atol=1e-6)
    np.testing.assert_allclose(result.token_surprise, trace.token_surprise, atol=1e-5)


def test_mean_of_a_single_position_leaves_the_first_token_unchanged(tiny_model):
    # Position 0's causal mean is its own value: a one-token prompt cannot be changed by mean ablation.
    clean = capture(tiny_model, IDS[:1]).next_token_probs
    mean = interventions.ablate(tiny_model, IDS[:1], heads=[(0, 0), (1, 2)], mlps=[0, 1], mode="mean")
    np.testing.assert_allclose(mean, clean, atol=1e-6)


def test_the_model_is_exactly_as_before_afterwards(tiny_model):
    weights = {name: tensor.clone() for name, tensor in tiny_model.state_dict().items()}
    with torch.no_grad():
        before = tiny_model(torch.tensor([IDS]))
    interventions.ablate(tiny_model, IDS, heads=[(0, 1), (1, 0)], mlps=[1], mode="mean")
    assert all_hooks(tiny_model) == 0
    for name, tensor in tiny_model.state_dict().items():
        assert torch.equal(tensor, weights[name]), name
    with torch.no_grad():
        torch.testing.assert_close(tiny_model(torch.tensor([IDS])), before, rtol=0, atol=0)


def test_no_hooks_are_left_when_the_ablated_pass_fails(tiny_model):
    def explode(module, inputs, output):
        raise RuntimeError("boom")

    handle = tiny_model.h[1].mlp.register_forward_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            interventions.ablate(tiny_model, IDS, heads=[(0, 1), (1, 1)], mlps=[0])
    finally:
        handle.remove()
    assert all_hooks(tiny_model) == 0
    clean = capture(tiny_model, IDS).next_token_probs
    np.testing.assert_allclose(interventions.ablate(tiny_model, IDS), clean, atol=1e-6)


def test_a_forward_pass_in_another_thread_is_not_ablated(tiny_model):
    with torch.no_grad():
        clean = tiny_model(torch.tensor([IDS]))
    seen, main = [], threading.get_ident()

    def run_other_thread(module, inputs, output):  # fires inside the ablated pass, in its thread
        if threading.get_ident() == main and not seen:
            with torch.no_grad():
                other = threading.Thread(target=lambda: seen.append(tiny_model(torch.tensor([IDS]))))
                other.start()
                other.join()

    handle = tiny_model.h[0].hook_resid_pre.register_forward_hook(run_other_thread)
    try:
        interventions.ablate(tiny_model, IDS, heads=[(0, 0), (1, 1)], mlps=[0, 1])
    finally:
        handle.remove()
    torch.testing.assert_close(seen[0], clean, rtol=0, atol=1e-5)  # a new thread may sum in another order


def test_a_fast_copy_gives_the_same_ablation(tiny_model):
    packed = make_fast(copy.deepcopy(tiny_model))
    for case in CASES.values():
        np.testing.assert_allclose(interventions.ablate(packed, IDS, **case), interventions.ablate(tiny_model, IDS, **case),
                                   atol=1e-6)


def test_replacement_is_honoured_when_the_pattern_is_also_watched(tiny_model, tiny_weights):
    # Watching hook_pattern switches the model to its explicit attention path; hook_z must still be replaced there.
    expected, _ = reference_probs_and_surprise(tiny_weights, heads=[(1, 2)])
    handles = [block.attn.hook_pattern.register_forward_hook(lambda m, i, o: None) for block in tiny_model.h]
    try:
        probs = interventions.ablate(tiny_model, IDS, heads=[(1, 2)])
    finally:
        for handle in handles:
            handle.remove()
    np.testing.assert_allclose(probs, expected, atol=2e-6, rtol=1e-4)


@pytest.mark.parametrize("arguments, message", [
    (dict(heads=[(2, 0)]), "layer 2 does not exist; this model has layers 0–1"),
    (dict(heads=[(0, 4)]), "head 4 does not exist; this model has heads 0–3"),
    (dict(heads=[(0, -1)]), "head -1 does not exist"),
    (dict(heads=[(0, 1, 2)]), r"\(layer, head\) pairs"),
    (dict(heads=[0]), r"\(layer, head\) pairs"),
    (dict(heads=[(0.5, 1)]), "whole numbers"),
    (dict(heads=[(True, 1)]), "whole numbers"),
    (dict(mlps=[5]), "mlps: layer 5 does not exist"),
    (dict(mlps=[0, 1, 0]), "at most 2 layers"),
    (dict(heads=[(0, 0)] * 9), "at most 8"),
    (dict(mode="half"), "mode must be one of 'zero', 'mean'"),
])
def test_bad_requests_are_refused_with_a_message_naming_the_field(tiny_model, arguments, message):
    with pytest.raises(ValueError, match=message):
        interventions.ablate(tiny_model, IDS, **arguments)


def test_bad_prompts_are_refused(tiny_model):
    with pytest.raises(ValueError, match="empty"):
        interventions.ablate(tiny_model, [], heads=[(0, 0)])
    with pytest.raises(ValueError, match="at most"):
        interventions.ablate(tiny_model, [1] * (TINY_HPARAMS["n_ctx"] + 1))


def test_an_ablation_is_normalised_and_described():
    config = type("Config", (), {"n_layer": 12, "n_head": 12})()
    ablation = interventions.make_ablation(config, heads=[[5, 1], (0, 3), (5, 1)], mlps=[3], mode="mean")
    assert ablation.heads == ((0, 3), (5, 1)) and ablation.mlps == (3,)
    assert ablation.describe() == ("heads 0.3, 5.1 (layer.head) and the MLP of layer 3 replaced by their mean "
                                   "over the positions up to each token")
    assert interventions.make_ablation(config).describe() == "nothing turned off"


def test_moved_most_ranks_by_absolute_change_including_tokens_from_far_down():
    before = np.array([0.5, 0.3, 0.1, 0.05, 0.05, 0.0])
    after = np.array([0.2, 0.3, 0.1, 0.05, 0.05, 0.3])  # token 5 rises from nothing
    moved = interventions.moved_most(before, after, n=3)
    assert [m.token_id for m in moved] == [0, 5, 1]  # 0 and 5 moved 0.3 each (id order), then unchanged ones
    assert moved[0].change == pytest.approx(-0.3) and moved[1].change == pytest.approx(0.3)


def test_moved_most_refuses_mismatched_distributions():
    with pytest.raises(ValueError, match="same length"):
        interventions.moved_most(np.ones(3) / 3, np.ones(4) / 4)
    with pytest.raises(ValueError, match="n must be 1 to 3"):
        interventions.moved_most(np.ones(3) / 3, np.ones(3) / 3, n=0)


def test_surprise_change_reports_loss_perplexity_and_the_most_hurt_positions():
    change = interventions.surprise_change(np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.0, 5.0]))
    assert change.mean_before == pytest.approx(2.0) and change.mean_after == pytest.approx(8.5 / 3)
    assert change.perplexity_before == pytest.approx(np.exp(2.0))
    assert change.most_hurt(2).tolist() == [2, 0]


def test_ablation_figures_compare_the_clean_run_with_the_ablated_one(tiny_checkpoint_dir):
    from explorer import panels
    from explorer.analysis import analyze
    from explorer.store import ModelStore

    store = ModelStore(tiny_checkpoint_dir)
    loaded = store.get(store.default)
    analysis = analyze(loaded, "Every effort moves you forward")
    result = interventions.run_ablation(loaded.model, analysis.trace.token_ids.tolist(), heads=[(1, 2)], mlps=[0])
    figures = panels.ablation_figures(analysis, result)
    top_before = int(np.argmax(analysis.trace.next_token_probs))
    bars = figures["bars"]
    assert analysis.label(top_before) in bars.layout.yaxis.ticktext
    row = list(bars.layout.yaxis.ticktext).index(analysis.label(top_before))
    assert bars.data[0].x[row] == pytest.approx(analysis.trace.next_token_probs[top_before], rel=1e-5)
    assert "head 1.2" in bars.layout.title.text and "MLP of layer 0" in bars.layout.title.text
    moved = interventions.moved_most(analysis.trace.next_token_probs, result.probs, 1)[0]
    assert figures["moved"].data[0].x[0] == pytest.approx(100 * moved.change, rel=1e-4)
    z = np.asarray(figures["surprise"].data[1].z, dtype=float).ravel()
    np.testing.assert_allclose(z[1:analysis.trace.n_tokens], result.token_surprise, rtol=1e-5)


def test_the_ablation_text_leads_with_the_next_token_that_moved_most(loaded):
    from explorer import panels
    from explorer.analysis import analyze

    analysis = analyze(loaded, "one two three four five one two three four")
    for layer in range(loaded.model.config.n_layer):
        result = interventions.run_ablation(loaded.model, analysis.trace.token_ids.tolist(), mlps=[layer])
        before, after = analysis.trace.next_token_probs, result.probs
        moved = int(np.argmax(np.abs(after.astype(np.float64) - before.astype(np.float64))))
        text = panels.ablation_text(analysis, result)
        lead = text.split("\n")[2]  # after "Turned off: ..." and a blank line
        assert lead.startswith("**Largest change in the next token:**")
        assert f"p(**{analysis.label(moved)}**) {panels.percent(float(before[moved]))} → " \
               f"{panels.percent(float(after[moved]))}" in lead
