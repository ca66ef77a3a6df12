import numpy as np
import pytest
import torch

from explorer.capture import capture
from explorer.lens import lens_logits, logit_lens

IDS = [6109, 3626, 6100, 345, 15496, 11, 995, 0]


@pytest.fixture(scope="module")
def trace(tiny_model):
    return capture(tiny_model, IDS)


def test_last_layer_of_the_lens_is_the_final_distribution(tiny_model, trace):
    lens = logit_lens(tiny_model, trace, layers=[trace.config.n_layer], positions=[len(IDS) - 1], k=10)
    expected = np.argsort(-trace.next_token_probs, kind="stable")[:10]
    assert lens.top_ids[0, 0].tolist() == expected.tolist()
    np.testing.assert_allclose(lens.top_probs[0, 0], trace.next_token_probs[expected], atol=1e-5)


def test_layer_norm_statistics_are_recomputed_per_layer(tiny_model, trace):
    # Scaling a residual vector must not change its lens reading: LN_f divides by that vector's own std.
    x = trace.residual[1, 3]
    torch.testing.assert_close(lens_logits(tiny_model, x * 7.0), lens_logits(tiny_model, x), atol=1e-3, rtol=1e-4)


def test_shapes_and_ordering(tiny_model, trace):
    lens = logit_lens(tiny_model, trace, k=4)
    L = trace.config.n_layer + 1
    assert lens.top_ids.shape == lens.top_probs.shape == (L, len(IDS), 4)
    assert lens.entropy.shape == (L, len(IDS))
    assert np.all(np.diff(lens.top_probs, axis=-1) <= 0)


def test_only_requested_layers_and_positions_are_projected(tiny_model, trace):
    lens = logit_lens(tiny_model, trace, layers=[0, 2], positions=[1, 5], k=3)
    full = logit_lens(tiny_model, trace, k=3)
    assert lens.top_ids.shape == (2, 2, 3)
    assert np.array_equal(lens.top_ids, full.top_ids[np.ix_([0, 2], [1, 5])])


def test_entropy_in_bits_matches_a_float64_computation(tiny_model, trace):
    lens = logit_lens(tiny_model, trace, k=3)
    logits = lens_logits(tiny_model, trace.residual).double()  # [L+1, T, n_vocab]
    p = torch.softmax(logits, dim=-1)
    expected = -(p * torch.log2(p.clamp_min(1e-300))).sum(-1)
    np.testing.assert_allclose(lens.entropy, expected.numpy(), atol=2e-3)
    assert np.all(lens.entropy >= 0) and np.all(lens.entropy <= np.log2(trace.config.n_vocab) + 1e-3)
