"""The teaching texts: conditional sections, and sentences that follow the prompt's own numbers."""

import re

import numpy as np
import pytest
import torch

from explorer import panels, teaching
from explorer.analysis import analyze
from explorer.store import ModelStore


@pytest.fixture(scope="module")
def analyses(loaded):
    prompts = {"one": "Hi", "three": "Every effort moves", "long": "The quick brown fox jumps over the lazy dog. " * 5}
    return {name: analyze(loaded, prompt) for name, prompt in prompts.items()}


def test_sections_are_kept_or_dropped_by_their_flag():
    text = "a <!-- if x -->X<!-- end -->b <!-- if not x -->Y<!-- end -->c"
    assert teaching.select_sections(text, {"x": True}) == "a Xb c"
    assert teaching.select_sections(text, {"x": False}) == "a b Yc"


def test_a_section_flag_left_out_is_an_error():
    with pytest.raises(ValueError, match="x"):
        teaching.select_sections("<!-- if x -->X<!-- end -->", {})


@pytest.mark.parametrize("panel", teaching.PANELS)
def test_every_panel_has_a_template(panel):
    assert teaching.template(panel).strip()


def _filled(text):
    """No placeholder or section marker left over."""
    return not re.search(r"\{\w+(:[^}]*)?\}|<!--", text)


def test_no_space_sentence_when_no_token_starts_with_a_space(loaded, analyses):
    one, three = (panels.tokens_text(analyses[name].trace, loaded.facts) for name in ("one", "three"))
    assert "A leading space belongs to the token" not in one and "No token of your prompt starts with a space" in one
    assert "A leading space belongs to the token: **␣effort**" in three
    assert _filled(one) and _filled(three)


def test_a_split_character_is_shown_from_the_prompt(loaded):
    trace = analyze(loaded, "東京").trace
    partial = [t for t in trace.tokens if "⟨" in t]
    text = panels.tokens_text(trace, loaded.facts)
    assert partial and f"like **{partial[0]}**" in text


def test_embedding_norm_is_the_first_tokens_row(analyses):
    trace = analyses["three"].trace
    text = panels.embeddings_text(analyses["three"])
    row = np.linalg.norm(trace.tok_embed[0])
    assert f"‖W_te[{trace.token_ids[0]}]‖ = {row:.2f}" in text


def test_random_pair_cosine_is_high_when_all_tokens_share_a_direction():
    rng = torch.Generator().manual_seed(0)
    spread = torch.randn(5000, 64, generator=rng)
    assert abs(panels.random_pair_cosine(spread)) < 0.05
    assert panels.random_pair_cosine(spread + 3.0) > 0.8


def test_cosine_baseline_sentence_quotes_the_models_baseline(loaded, analyses):
    text = panels.embeddings_text(analyses["three"], loaded)
    baseline = panels.random_pair_cosine(loaded.model.wte.weight.detach())
    assert f"have cosine {baseline:.2f} on average here" in text


def test_smooth_position_vectors_are_called_smooth_and_random_ones_not():
    t = np.arange(256)[:, None] / 256
    smooth = np.concatenate([np.sin(2 * np.pi * t * k) for k in (0.5, 1)] + [np.cos(2 * np.pi * t)], axis=1)
    near, far, gap = panels.position_neighbour_cosines(smooth)
    assert near > 0.99 and far < near - 0.5 and gap == 128
    near, far, _ = panels.position_neighbour_cosines(np.random.default_rng(0).normal(size=(256, 32)))
    assert abs(near) < 0.1


def test_position_sentence_for_an_untrained_model_does_not_claim_a_smooth_curve(loaded, analyses):
    text = panels.embeddings_text(analyses["three"], loaded)
    assert "no more alike than distant positions" in text


def test_attention_label_sentence_quotes_the_score_that_earned_it(loaded, analyses):
    analysis = analyses["long"]
    s = analysis.scores
    for layer in range(s.entropy.shape[0]):
        for head in range(s.entropy.shape[1]):
            sentence = panels.head_label_sentence(s, layer, head)
            label = s.label(layer, head)
            assert f"labelled **{label}**" in sentence
            if label == "first-token sink":
                assert f"{s.first_token[layer, head]:.2f}" in sentence


def test_attention_warns_when_labels_rest_on_few_query_rows(loaded, analyses):
    few = panels.attention_text(loaded, analyses["three"], 0, 0, False, 2)
    many = panels.attention_text(loaded, analyses["long"], 0, 0, False, 5)
    one = panels.attention_text(loaded, analyses["one"], 0, 0, False, 0)
    assert "only 1 query row " in few and "too few" not in many and "no query row" in one
    assert _filled(few) and _filled(many) and _filled(one)


def test_label_rules_show_every_threshold():
    text = panels.label_rules_text()
    for name, _, threshold in panels.LABEL_RULES:
        assert f"**{name}**: score ≥ {threshold:g}" in text


@pytest.mark.parametrize("start,end,verb", [(3.0, 30.0, "grows 10.0×"), (30.0, 3.0, "shrinks to 0.10×"),
                                            (10.0, 10.5, "stays about the same")])
def test_norm_change_verb_follows_the_numbers(start, end, verb):
    assert panels.norm_change(start, end) == verb


def test_layers_text_says_what_the_norms_did(analyses):
    trace = analyses["long"].trace
    norms = trace.residual_norms[:, -1]
    assert panels.norm_change(norms[0], norms[-1]) in panels.layers_text(analyses["long"])


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_temperature_example_divides_the_logit_gap(analyses, temperature):
    logits = analyses["three"].trace.logits
    text = panels.temperature_example(logits, temperature, str)
    top2 = np.sort(logits.astype(np.float64))[-2:]
    gap = top2[1] - top2[0]
    assert f"= {panels._times(np.exp(gap / temperature))}." in text


def test_next_token_text_says_the_order_of_the_filters(analyses):
    analysis = analyses["three"]
    _, anatomy = panels.distribution_figure(analysis.label, analysis.trace.logits, 0.8, 20, 0.9)
    text = panels.next_token_text(analysis.trace, anatomy, analysis.label)
    assert text.index("**temperature**, then **top-k**, then **top-p**") > 0 and _filled(text)


def _independent_surprise(model, ids):
    with torch.no_grad():
        logits = model(torch.tensor([ids]))[0].double()
    return -torch.log_softmax(logits, -1)[:-1].gather(1, torch.tensor(ids[1:])[:, None])[:, 0].numpy()


def test_surprise_text_reports_mean_loss_and_perplexity(loaded, analyses):
    trace = analyses["long"].trace
    surprise = _independent_surprise(loaded.model, trace.token_ids.tolist())
    text = panels.surprise_text(trace, surprise, loaded.facts)
    assert f"{surprise.mean():.2f} nats" in text and f"**{np.exp(surprise.mean()):,.1f}**" in text
    assert f"ln {trace.config.n_vocab:,} = {np.log(trace.config.n_vocab):.2f}" in text and _filled(text)


def test_shift_table_puts_each_target_under_the_token_before_it(analyses):
    trace = analyses["three"].trace
    table = panels.shift_table(trace, np.array([1.0, 2.0]))
    inputs, targets = [line for line in table.splitlines() if line.startswith(("| input", "| target"))]
    assert inputs.split("|")[2:4] == [f" {t} " for t in trace.tokens[:2]]
    assert targets.split("|")[2:4] == [f" {t} " for t in trace.tokens[1:3]]


def test_surprise_of_the_wrong_length_is_refused(loaded, analyses):
    with pytest.raises(ValueError, match="one value per target"):
        panels.surprise_text(analyses["three"].trace, np.zeros(3), loaded.facts)


def test_one_token_has_no_surprise_to_show(loaded, analyses):
    assert "nothing to predict" in panels.surprise_text(analyses["one"].trace, np.zeros(0), loaded.facts)


def test_generate_text_gives_the_sliding_window(loaded):
    c = loaded.model.config
    text = panels.generate_text(c)
    window = c.n_ctx - c.n_ctx // 4
    assert f"between {window:,} and {c.n_ctx:,}" in text and _filled(text)


def test_title_label_says_an_induction_label_comes_from_the_random_test():
    from explorer.heads import HeadScores

    zeros = np.zeros((1, 2))
    scores = HeadScores(zeros, zeros, zeros, zeros, induction=np.array([[0.9, 0.0]]))
    assert "repeated random sequence" in panels.head_title_label(scores, 0, 0)
    assert panels.head_title_label(scores, 0, 1) == scores.label(0, 1)


def test_embedding_baselines_are_remade_when_the_weights_change(tiny_checkpoint_dir):
    loaded = ModelStore(tiny_checkpoint_dir).get(ModelStore(tiny_checkpoint_dir).default)
    before = panels.embedding_baselines(loaded)[0]
    with torch.no_grad():
        loaded.model.wte.weight.add_(5.0)  # every row gains a shared direction
    assert panels.embedding_baselines(loaded)[0] > before + 0.5
