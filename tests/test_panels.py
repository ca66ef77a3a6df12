import json

import numpy as np
import pytest

import gpt2
from explorer import panels
from explorer.analysis import analyze, encode_prompt
from explorer.stepping import next_step, start_steps

PROMPT = "Every effort moves you"


@pytest.fixture(scope="module")
def analysis(loaded):
    return analyze(loaded, PROMPT)


def test_prompt_longer_than_the_context_keeps_the_end_with_a_notice():
    ids, notice = encode_prompt(gpt2.get_tokenizer(), "a " * 100, n_ctx=64)
    assert len(ids) == 64 and "only the last 64" in notice
    assert encode_prompt(gpt2.get_tokenizer(), PROMPT, 64) == ([6109, 3626, 6100, 345], "")


@pytest.mark.parametrize("prompt", ["", "   \n\t", None])
def test_empty_prompt_is_refused(prompt):
    with pytest.raises(ValueError, match="empty"):
        encode_prompt(gpt2.get_tokenizer(), prompt, 64)


def test_slider_values_map_to_sampler_settings():
    assert panels.parse_sampling(0.7, 0, 1.0) == (0.7, None, None)  # 0 and 1 switch filters off
    assert panels.parse_sampling("1", 40, 0.9) == (1.0, 40, 0.9)
    with pytest.raises(ValueError, match="numbers"):
        panels.parse_sampling("hot", 0, 1.0)


def test_attention_text_quotes_the_patterns_own_numbers(loaded, analysis):
    text = panels.attention_text(loaded, analysis, layer=1, head=2, mean_over_heads=False, query=3)
    row = analysis.trace.attention[1, 2, 3].astype(np.float64)
    j = int(np.argmax(row))
    assert f"| {j} | {analysis.trace.tokens[j]} |" in text and f"| {row[j]:.3f} |" in text
    assert "layer 1, head 2" in text and "position 3" in text


def test_attention_text_for_an_earlier_query_lists_only_visible_keys(loaded, analysis):
    text = panels.attention_text(loaded, analysis, layer=0, head=0, mean_over_heads=False, query=1)
    assert "| 0 |" in text and "| 1 |" in text and "| 2 |" not in text and "| 3 |" not in text


def test_mean_over_heads_has_no_single_score_row(loaded, analysis):
    text = panels.attention_text(loaded, analysis, layer=0, head=0, mean_over_heads=True, query=3)
    assert "| — |" in text and "mean of all" in text


def test_mean_over_heads_averages_the_layer(analysis):
    mean = panels.head_pattern(analysis, 0, 0, mean_over_heads=True)
    np.testing.assert_allclose(mean, analysis.trace.attention[0].astype(np.float32).mean(0), atol=1e-6)


def test_logit_lens_covers_the_last_positions_of_every_layer(analysis):
    lens = analysis.lens
    assert lens.top_ids.shape[:2] == (analysis.trace.config.n_layer + 1, analysis.trace.n_tokens)
    assert lens.top_ids[-1, -1, 0] == int(np.argmax(analysis.trace.next_token_probs))
    assert "final prediction for your last token is **" + analysis.lens_labels[-1][-1][0] in panels.layers_text(analysis)


def test_distribution_figure_counts_kept_tokens(analysis):
    figure, anatomy = panels.distribution_figure(analysis.label, analysis.trace.logits, 1.0, 5, 1.0)
    assert anatomy.n_kept == 5
    assert "5 tokens kept" in json.dumps(figure.to_plotly_json()["layout"]["title"], ensure_ascii=False)


def test_step_mode_reproduces_seeded_generation(loaded):
    state = start_steps(loaded, PROMPT, seed=123)
    for _ in range(5):
        figure, anatomy = next_step(loaded, state, 0.9, 50, 0.95)
        assert "picked" in json.dumps(figure.to_plotly_json(), ensure_ascii=False)
    expected = list(gpt2.generate(loaded.model, [6109, 3626, 6100, 345], 5, temperature=0.9, top_k=50, top_p=0.95,
                                  seed=123))
    assert state.ids[4:] == expected


def test_token_chips_escape_html(loaded):
    analysis = analyze(loaded, "<script>alert(1)</script>")
    chips = panels.token_chips(analysis.trace)
    assert "<script>" not in chips and "&lt;" in chips


def test_step_titles_count_generated_tokens(loaded):
    state = start_steps(loaded, PROMPT, seed=1)
    titles = [next_step(loaded, state, 1.0, 0, 1.0)[0].layout.title.text for _ in range(2)]
    assert titles[0].startswith("Step 1:") and titles[1].startswith("Step 2:")
    assert state.steps_taken == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_most_likely_is_a_stable_sort_of_the_top(seed):
    rng = np.random.default_rng(seed)
    probs = rng.random(5000)
    probs[rng.integers(0, 5000, 400)] = probs[7]  # many exact ties, some at the cut
    probs[:30] = np.sort(probs)[-20]
    for n in (1, 5, 25, 60, 5000):
        expected = np.argsort(-probs, kind="stable")[:n]
        assert panels.most_likely(probs, n).tolist() == expected.tolist()


def test_small_probabilities_stay_readable():
    assert panels.percent(0.1234) == "12.3%"
    assert panels.percent(0.0) == "0.0%"
    assert panels.percent(4.7e-5) == "0.0047%"  # not "0.0%": a learner must see it is not zero


def test_next_token_text_quotes_the_model_numbers(analysis):
    _, anatomy = panels.distribution_figure(analysis.label, analysis.trace.logits, 1.0, 0, 1.0, 0)
    text = panels.next_token_text(analysis.trace, anatomy, analysis.label)
    top = float(analysis.trace.next_token_probs.max())
    assert f"p = {panels.percent(top)} at temperature 1" in text
    assert f"**{anatomy.n_kept:,}** tokens are kept" in text
