import numpy as np
import pytest

from explorer.sampling import entropy_bits, sampling_anatomy

LOGITS = np.log(np.array([0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.02], dtype=np.float32))


def test_temperature_one_with_no_truncation_is_the_plain_softmax():
    a = sampling_anatomy(LOGITS)
    np.testing.assert_allclose(a.probs_final, np.exp(LOGITS) / np.exp(LOGITS).sum(), atol=1e-6)
    assert a.n_kept == len(LOGITS) and a.kept_mass == pytest.approx(1.0)


def test_temperature_towards_zero_tends_to_one_hot():
    for t, floor in ((0.5, 0.6), (0.1, 0.99), (0.01, 0.9999)):
        assert sampling_anatomy(LOGITS, temperature=t).probs_final[0] > floor
    assert sampling_anatomy(LOGITS, temperature=0).probs_final.tolist() == [1, 0, 0, 0, 0, 0, 0]


def test_top_k_keeps_exactly_k_and_renormalises():
    a = sampling_anatomy(LOGITS, top_k=3)
    assert a.kept.tolist() == [True, True, True, False, False, False, False]
    assert a.kept_mass == pytest.approx(0.8, abs=1e-6)
    np.testing.assert_allclose(a.probs_final[:3], np.array([0.4, 0.25, 0.15]) / 0.8, atol=1e-6)
    assert a.cutoff_prob == pytest.approx(0.15, abs=1e-6)


def test_top_k_ties_keep_lower_ids():
    a = sampling_anatomy(np.array([1.0, 2.0, 2.0, 2.0], dtype=np.float32), top_k=2)
    assert a.kept.tolist() == [False, True, True, False]


def test_top_p_keeps_smallest_set_with_mass_at_least_p():
    assert sampling_anatomy(LOGITS, top_p=0.65).n_kept == 2  # 0.4 + 0.25 = 0.65
    assert sampling_anatomy(LOGITS, top_p=0.66).n_kept == 3
    assert sampling_anatomy(LOGITS, top_p=0.3).n_kept == 1


def test_entropy_drops_when_truncating():
    a = sampling_anatomy(LOGITS, top_k=2)
    assert a.entropy_before == pytest.approx(entropy_bits(np.exp(LOGITS) / np.exp(LOGITS).sum()))
    assert a.entropy_after < a.entropy_before
    assert entropy_bits(np.array([0.5, 0.5])) == pytest.approx(1.0)


def test_seeded_choice_is_reproducible_and_always_kept():
    picks = {sampling_anatomy(LOGITS, top_k=3, seed=s).chosen for s in range(40)}
    assert picks <= {0, 1, 2} and len(picks) > 1
    assert sampling_anatomy(LOGITS, top_p=0.9, seed=11).chosen == sampling_anatomy(LOGITS, top_p=0.9, seed=11).chosen


def test_bad_settings_raise_value_error():
    with pytest.raises(ValueError, match="top_p"):
        sampling_anatomy(LOGITS, top_p=0)
