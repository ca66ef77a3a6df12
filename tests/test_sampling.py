import pytest
import torch

from gpt2.sampling import apply_temperature, filter_logits, sample_token, top_k_mask, top_p_mask


def kept(logits):
    return set(torch.nonzero(torch.isfinite(logits)).flatten().tolist())


def test_temperature_zero_keeps_only_the_argmax():
    logits = torch.tensor([0.1, 3.0, 2.9, -1.0])
    assert kept(filter_logits(logits, temperature=0)) == {1}


def test_temperature_zero_breaks_ties_by_lower_id():
    assert kept(apply_temperature(torch.tensor([1.0, 5.0, 5.0, 2.0]), 0)) == {1}


def test_low_temperature_tends_to_one_hot_and_high_to_uniform():
    logits = torch.tensor([1.0, 2.0, 3.0, 0.5])
    sharp = torch.softmax(filter_logits(logits, temperature=0.01), -1)
    flat = torch.softmax(filter_logits(logits, temperature=1000.0), -1)
    assert sharp[2] > 0.999
    assert (flat - 0.25).abs().max() < 0.01


def test_top_k_keeps_exactly_k():
    logits = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    for k in (1, 5, 40, 999):
        mask = top_k_mask(logits, k)
        assert int(mask.sum()) == k
        assert logits[mask].min() >= logits[~mask].max()


def test_top_k_with_ties_keeps_exactly_k_preferring_lower_ids():
    logits = torch.tensor([1.0, 2.0, 2.0, 2.0, 0.0])
    assert set(torch.nonzero(top_k_mask(logits, 2)).flatten().tolist()) == {1, 2}


def test_top_p_keeps_smallest_set_reaching_p():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log()
    assert kept(filter_logits(logits, top_p=0.5)) == {0}
    assert kept(filter_logits(logits, top_p=0.6)) == {0, 1}
    assert kept(filter_logits(logits, top_p=0.8)) == {0, 1}  # 0.5 + 0.3 = 0.8 >= 0.8
    assert kept(filter_logits(logits, top_p=0.81)) == {0, 1, 2}
    assert kept(filter_logits(logits, top_p=1.0)) == {0, 1, 2, 3}


def test_top_p_set_is_minimal_on_random_distributions():
    generator = torch.Generator().manual_seed(1)
    for _ in range(20):
        logits = torch.randn(200, generator=generator) * 3
        p = float(torch.rand(1, generator=generator)) * 0.98 + 0.01
        mask = top_p_mask(logits, p)
        probs = torch.softmax(logits, -1)
        assert probs[mask].sum() >= p - 1e-6
        assert probs[mask].sum() - probs[mask].min() < p  # without its least likely member it falls short


def test_top_p_applies_after_top_k_renormalises():
    logits = torch.tensor([0.4, 0.3, 0.2, 0.1]).log()
    # After top-2 the probabilities are 4/7 and 3/7; p = 0.5 needs only the first.
    assert kept(filter_logits(logits, top_k=2, top_p=0.5)) == {0}


def test_sampling_is_reproducible_with_a_seeded_generator():
    logits = torch.randn(500, generator=torch.Generator().manual_seed(3))
    draws = [[sample_token(logits, torch.Generator().manual_seed(seed)) for _ in range(1)] for seed in (7, 7)]
    assert draws[0] == draws[1]
    many = {sample_token(logits, torch.Generator().manual_seed(s)) for s in range(30)}
    assert len(many) > 1


def test_draws_follow_the_filtered_distribution():
    logits = filter_logits(torch.tensor([2.0, 1.0, 0.0, -1.0]), top_k=2)
    generator = torch.Generator().manual_seed(0)
    draws = [sample_token(logits, generator) for _ in range(2000)]
    assert set(draws) == {0, 1}
    share = draws.count(0) / len(draws)
    assert abs(share - torch.softmax(torch.tensor([2.0, 1.0]), -1)[0].item()) < 0.05


@pytest.mark.parametrize(
    "settings, message",
    [({"temperature": -0.5}, "temperature"), ({"temperature": float("nan")}, "temperature"),
     ({"top_k": 0}, "top_k"), ({"top_k": 2.5}, "top_k"), ({"top_p": 0.0}, "top_p"), ({"top_p": 1.5}, "top_p")],
)
def test_invalid_settings_raise_clear_errors(settings, message):
    with pytest.raises(ValueError, match=message):
        filter_logits(torch.zeros(5), **settings)
