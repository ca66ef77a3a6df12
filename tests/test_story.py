import re

import numpy as np
import pytest

from explorer import story, teaching
from explorer.analysis import MAX_LENS_POSITIONS, analyze

PROMPTS = {1: "Hi", 3: "Every effort moves", 50: "one two three four five six seven eight nine ten " * 5}


@pytest.fixture(scope="module", params=sorted(PROMPTS))
def analysis(request, loaded):
    analysis = analyze(loaded, PROMPTS[request.param])
    assert abs(analysis.trace.n_tokens - request.param) <= 2
    return analysis


def _controls_in_range(controls, analysis):
    c, T = analysis.trace.config, analysis.trace.n_tokens
    ranges = {"layer": (0, c.n_layer - 1), "head": (0, c.n_head - 1), "query": (0, T - 1), "position": (0, T - 1),
              "lens_positions": (1, MAX_LENS_POSITIONS), "temperature": (0, 2), "top_k": (0, 200),
              "top_p": (0.01, 1), "seed": (0, 2**63 - 1), "max_new_tokens": (1, 256), "mean_heads": (0, 1)}
    assert set(controls) <= set(ranges), set(controls) - set(ranges)
    for name, value in controls.items():
        low, high = ranges[name]
        assert low <= value <= high, (name, value)


@pytest.mark.parametrize("index", range(len(story.CARDS)))
def test_every_card_renders_with_controls_in_range(loaded, analysis, index):
    card = story.story_card(index, analysis, loaded)
    assert card["index"] == index and card["count"] == len(story.CARDS)
    assert card["markdown"].strip() and not re.search(r"\{\w+(:[^}]*)?\}|\bnan\b", card["markdown"])
    assert card["explanation"] in teaching.PANELS
    _controls_in_range(card["controls"], analysis)


def test_the_story_starts_with_the_top_next_tokens_and_follows_the_data(loaded, analysis):
    first = story.story_card(0, analysis, loaded)
    top = int(np.argmax(analysis.trace.next_token_probs))
    assert first["tab"] == "next_token" and analysis.label(top) in first["markdown"]
    assert "Everything below explains these" in first["markdown"]
    tabs = [card.tab for card in story.CARDS]
    assert tabs.index("tokens") < tabs.index("embeddings") < tabs.index("attention") < tabs.index("block") \
        < tabs.index("layers") < tabs.index("surprise") < tabs.index("generate")


def test_previous_token_card_selects_the_head_with_the_highest_score(loaded, analysis):
    card = story.story_card(story.CARD_IDS.index("previous_token"), analysis, loaded)
    scores = analysis.scores.previous_token
    assert scores[card["controls"]["layer"], card["controls"]["head"]] == scores.max()


def test_induction_card_selects_the_best_induction_head(loaded, analysis):
    card = story.story_card(story.CARD_IDS.index("induction"), analysis, loaded)
    assert loaded.induction[card["controls"]["layer"], card["controls"]["head"]] == loaded.induction.max()


def test_induction_query_is_a_repeated_token_looking_after_its_earlier_copy(loaded):
    analysis = analyze(loaded, "a b c d a b c d")
    ids = analysis.trace.token_ids
    layer, head, _ = story.induction_head(analysis, loaded)
    query, key, weight = story.induction_query(analysis, layer, head)
    assert ids[key - 1] == ids[query] and key - 1 < query
    assert weight == pytest.approx(float(analysis.trace.attention[layer, head, query, key]))


def test_no_induction_query_when_no_token_repeats(loaded):
    analysis = analyze(loaded, "Every effort moves you")
    assert story.induction_query(analysis, 0, 0) is None
    card = story.story_card(story.CARD_IDS.index("induction"), analysis, loaded)
    assert "No token of your prompt repeats" in card["markdown"]


@pytest.mark.parametrize("index", [-1, len(story.CARDS), "x", None])
def test_a_card_outside_the_story_is_refused(loaded, analysis, index):
    with pytest.raises(ValueError, match="card"):
        story.story_card(index, analysis, loaded)


def test_every_example_has_a_why_and_a_target_card():
    examples = story.load_examples()
    assert examples and all(e["why"].strip() and e["target"] in story.CARD_IDS for e in examples)


def test_an_example_opens_the_story_at_its_target():
    examples = story.load_examples()
    for example in examples:
        assert story.CARDS[story.card_for_example(example["prompt"], examples)].id == example["target"]
        assert story.example_why(example["prompt"], examples) == example["why"]
    assert story.card_for_example("my own prompt", examples) == 0 and story.example_why("my own", examples) is None


def test_an_example_with_an_unknown_target_is_refused(tmp_path):
    path = tmp_path / "examples.json"
    path.write_text('[{"prompt": "x", "why": "y", "target": "nowhere"}]', encoding="utf-8")
    with pytest.raises(ValueError, match="nowhere"):
        story.load_examples(path)


def test_previous_token_card_outlines_the_row_where_the_head_looks_back_hardest(loaded, analysis):
    """Among rows with at least 4 keys (in row 1 any head gives the token before a large share of two)."""
    card = story.story_card(story.CARD_IDS.index("previous_token"), analysis, loaded)
    c, T = card["controls"], analysis.trace.n_tokens
    if T >= story.MIN_KEYS:
        rows = range(story.MIN_KEYS - 1, T)
        back = [float(analysis.trace.attention[c["layer"], c["head"], i, i - 1]) for i in rows]
        assert c["query"] == rows[int(np.argmax(back))] and c["query"] + 1 >= story.MIN_KEYS


def test_previous_token_card_promises_a_diagonal_only_for_a_head_the_app_labels(loaded, analysis):
    card = story.story_card(story.CARD_IDS.index("previous_token"), analysis, loaded)
    if analysis.trace.n_tokens >= 3:
        labelled = analysis.scores.previous_token.max() >= story.PREVIOUS_TOKEN_LABEL
        assert ("bright diagonal" in card["markdown"]) == labelled
        assert ("no head of this model does" in card["markdown"]) == (not labelled)


def test_the_sampling_card_says_top_p_counts_what_top_k_kept_rescaled(loaded, analysis):
    from explorer.panels import percent
    from explorer.sampling import sampling_anatomy

    card = story.story_card(story.CARD_IDS.index("sampling"), analysis, loaded)
    s = story.STORY_SAMPLING
    anatomy = sampling_anatomy(analysis.trace.logits, s["temperature"], s["top_k"], s["top_p"], seed=s["seed"])
    after_top_k = float(anatomy.probs_after_top_k[anatomy.kept].sum())
    assert after_top_k >= s["top_p"] - 1e-6 or anatomy.n_kept == s["top_k"]  # what top-p asked for, after top-k
    assert f"{percent(after_top_k)} after top-k" in card["markdown"] and "rescales them" in card["markdown"]
    assert f"{percent(anatomy.kept_mass)} of the whole distribution" in card["markdown"]


def test_surprise_card_says_when_a_model_has_not_learned(loaded):
    analysis = analyze(loaded, "The quick brown fox jumps over the lazy dog")
    card = story.story_card(story.CARD_IDS.index("surprise"), analysis, loaded)
    mean = story.token_surprise(analysis, loaded).mean()
    assert ("has not learned yet" in card["markdown"]) == (mean >= np.log(analysis.trace.config.n_vocab))


def test_attention_opens_on_the_strongest_previous_token_head_without_an_induction_head(loaded, analysis):
    view = story.suggested_head(analysis, loaded)
    _controls_in_range(view, analysis)
    if loaded.induction.max() < story.INDUCTION_THRESHOLD:  # the random test model has no clear induction head
        scores = analysis.scores.previous_token
        assert scores[view["layer"], view["head"]] == scores.max()


def test_attention_opens_on_a_clear_induction_head_where_it_fires(loaded, monkeypatch):
    analysis = analyze(loaded, "a b c d a b c d")
    planted = np.zeros_like(loaded.induction)
    planted[1, 2] = 0.9
    monkeypatch.setattr(analysis.scores, "induction", planted)
    view = story.suggested_head(analysis, loaded)
    assert (view["layer"], view["head"]) == (1, 2)
    assert view["query"] == story.induction_query(analysis, 1, 2)[0]


def test_the_induction_card_says_how_the_shipped_models_head_grew(loaded):
    from explorer.store import SHIPPED, ModelStore

    shipped = ModelStore(None, sizes=[]).get(next(iter(SHIPPED)))
    data = shipped.facts.data
    card = story.story_card(story.CARD_IDS.index("induction"), analyze(shipped, "x = 1\nx = 1"), shipped)
    layer, head = card["controls"]["layer"], card["controls"]["head"]
    score = float(shipped.induction[layer, head])
    assert f"{data.repeat_share:.0%} of this model's training windows held a sequence written twice" in card["markdown"]
    assert data.repeat_kinds in card["markdown"] and "whole vocabulary" in data.repeat_kinds
    assert ("it copies any token" in card["markdown"]) == (score >= story.INDUCTION_THRESHOLD)


def test_the_induction_card_says_where_a_head_drilled_on_a_pool_fails(loaded, monkeypatch):
    """A model whose repeats drew from its most frequent tokens only: the card measures both and says so."""
    import dataclasses

    from explorer.store import SHIPPED, ModelStore

    shipped = ModelStore(None, sizes=[]).get(next(iter(SHIPPED)))
    drilled_data = dataclasses.replace(shipped.facts.data, repeat_vocab=500, repeat_text_share=0.0)
    drilled = dataclasses.replace(shipped, facts=dataclasses.replace(shipped.facts, data=drilled_data),
                                  induction_any_token=np.zeros_like(shipped.induction))
    card = story.story_card(story.CARD_IDS.index("induction"), analyze(drilled, "x = 1\nx = 1"), drilled)
    assert "of its 500 most frequent tokens" in card["markdown"]
    assert "the same head puts 0% there" in card["markdown"] and "not any token" in card["markdown"]
    plain = story.story_card(story.CARD_IDS.index("induction"), analyze(loaded, "a b a b"), loaded)
    assert loaded.induction_any_token is None and "How it grew" not in plain["markdown"]


def test_the_induction_card_promises_copying_only_from_a_head_that_passes_the_label(loaded, monkeypatch):
    analysis = analyze(loaded, "a b c d a b c d")
    card = lambda: story.story_card(story.CARD_IDS.index("induction"), analysis, loaded)["markdown"]  # noqa: E731
    for best, passes in ((0.9, True), (0.05, False)):
        planted = np.zeros_like(loaded.induction)
        planted[1, 2] = best
        monkeypatch.setattr(analysis.scores, "induction", planted)
        assert ("That lets the model continue a pattern" in card()) == passes
        assert ("A head that did this would let the model" in card()) == (not passes)


def test_the_perplexity_is_said_with_a_decimal_only_where_it_matters():
    assert story._perplexity(np.log(3.44)) == "3.4" and story._perplexity(np.log(68934.7)) == "68,935"
