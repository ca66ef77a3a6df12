import numpy as np
import pytest

from explorer.capture import capture
from explorer.heads import HeadScores, head_output_norms, head_outputs, head_scores, induction_pattern_score, induction_scores, pattern_scores

T = 12


def previous_token_pattern(t=T):
    a = np.zeros((t, t))
    a[0, 0] = 1
    a[np.arange(1, t), np.arange(t - 1)] = 1
    return a


def test_pure_previous_token_pattern():
    s = pattern_scores(previous_token_pattern())
    assert s["previous_token"] == pytest.approx(1.0)
    assert s["first_token"] == pytest.approx(0.0)
    assert s["self"] == pytest.approx(0.0)
    assert s["entropy"] == pytest.approx(0.0)


def test_pure_first_token_pattern():
    a = np.zeros((T, T))
    a[:, 0] = 1
    s = pattern_scores(a)
    assert s["first_token"] == pytest.approx(1.0) and s["previous_token"] == pytest.approx(0.0)


def test_uniform_causal_pattern_has_full_entropy():
    a = np.tril(np.ones((T, T)))
    a /= a.sum(-1, keepdims=True)
    s = pattern_scores(a)
    assert s["entropy"] == pytest.approx(1.0)
    assert s["self"] < 0.2


def test_induction_score_on_a_hand_built_induction_pattern():
    half, offset = 5, 1
    t = offset + 2 * half
    a = np.tril(np.ones((t, t)))
    a /= a.sum(-1, keepdims=True)
    for j in range(half - 1):
        a[offset + half + j] = 0
        a[offset + half + j, offset + j + 1] = 1
    assert induction_pattern_score(a, half, offset) == pytest.approx(1.0)
    assert induction_pattern_score(np.tril(np.eye(t)), half, offset) == pytest.approx(0.0)


def test_labels_follow_scores():
    shape = (1, 3)
    scores = HeadScores(previous_token=np.array([[0.9, 0.0, 0.0]]), first_token=np.zeros(shape), self=np.zeros(shape),
                        entropy=np.array([[0.1, 0.95, 0.3]]), induction=np.array([[0.0, 0.0, 0.7]]))
    assert scores.labels() == [["previous-token", "broad", "induction"]]


def test_scores_of_a_real_trace_have_one_value_per_head(tiny_model):
    trace = capture(tiny_model, list(range(300, 320)))
    scores = head_scores(trace, induction_scores(tiny_model))
    layers, heads = trace.config.n_layer, trace.config.n_head
    for field in ("previous_token", "first_token", "self", "entropy", "induction"):
        values = getattr(scores, field)
        assert values.shape == (layers, heads)
        assert np.all((values >= -1e-6) & (values <= 1 + 1e-3))


def test_induction_scores_are_cached_per_model(tiny_model):
    assert induction_scores(tiny_model) is induction_scores(tiny_model)


def test_head_outputs_sum_to_the_attention_output(tiny_model):
    trace = capture(tiny_model, list(range(300, 310)))
    per_head = head_outputs(tiny_model, trace, layer=1)
    assert per_head.shape == (10, trace.config.n_head, trace.config.n_embd)
    bias = tiny_model.h[1].attn.c_proj.bias.detach().numpy()
    np.testing.assert_allclose(per_head.sum(1) + bias, trace.attn_out[1], atol=1e-4)
    np.testing.assert_allclose(head_output_norms(tiny_model, trace, 1), np.linalg.norm(per_head, axis=-1), rtol=1e-5)


def test_recomputed_scores_give_the_stored_pattern_row_by_softmax(tiny_model):
    from explorer.heads import attention_scores_row

    trace = capture(tiny_model, list(range(300, 312)))
    for layer, head, query in ((0, 1, 11), (1, 3, 5), (1, 0, 0)):
        scores = attention_scores_row(tiny_model, trace, layer, head, query)
        assert scores.shape == (query + 1,)
        weights = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        np.testing.assert_allclose(weights, trace.attention[layer, head, query, : query + 1], atol=1e-3)


def test_scores_of_many_patterns_in_small_steps_match_float64(monkeypatch):
    import explorer.heads as heads

    rng = np.random.default_rng(3)
    T = 17
    logits = rng.normal(size=(3, 4, T, T)) * 3
    logits[..., np.triu(np.ones((T, T), dtype=bool), k=1)] = -np.inf
    a = np.exp(logits - logits.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    i = np.arange(2, T)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(a[..., i, :] > 0, a[..., i, :] * np.log(a[..., i, :]), 0.0).sum(-1) / np.log(i + 1)
    expected = {"previous_token": a[..., i, i - 1].mean(-1), "first_token": a[..., i, 0].mean(-1),
                "self": a[..., i, i].mean(-1), "entropy": h.mean(-1)}
    monkeypatch.setattr(heads, "SCORE_CHUNK", 2 * T * T)  # two patterns per step: 6 steps for 12 patterns
    monkeypatch.setattr(heads, "QUERY_BLOCK", 4)  # rows 2-5, 6-9, 10-13, 14-16: each block reads its own keys
    for name, values in pattern_scores(a.astype(np.float16)).items():
        assert values.shape == (3, 4)
        np.testing.assert_allclose(values, expected[name], atol=2e-3, err_msg=name)
