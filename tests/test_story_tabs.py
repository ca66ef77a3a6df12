"""The new tabs' handlers (Inside a block, Surprise, About, the head walk, the code boxes) and the story strip,
called directly on 1-, 3- and long prompts: what Analyze and a story card put in each component."""

import json

import gradio as gr
import numpy as np
import pytest

from explorer import panels, story
from explorer.analysis import analyze
from explorer.budget import AnalysisBudget
from explorer.store import ModelStore
from explorer.tabs import View
from explorer.ui import build_app

# The long prompt has more tokens than the test model's 64-token context, so Analyze cuts it.
PROMPTS = {1: "Hi", 3: "Every effort moves", "long": "one two three four five six seven eight nine ten " * 12}


@pytest.fixture(scope="module")
def store(tiny_checkpoint_dir):
    return ModelStore(tiny_checkpoint_dir)


@pytest.fixture(scope="module")
def loaded(store):
    return store.get(store.default)


@pytest.fixture(scope="module")
def page(store):
    """The app's tabs and story strip, as build_app assembles them (components not rendered)."""
    app = build_app(store, budget=AnalysisBudget(2**28))
    return app.explorer_tabs, app.explorer_story


@pytest.fixture(params=sorted(PROMPTS, key=str))
def analysis(request, loaded):
    return analyze(loaded, PROMPTS[request.param])


def view_of(analysis, loaded, **values):
    defaults = {"layer": 0, "head": 0, "mean_heads": False, "block_layer": 0, "lens_positions": 8,
                "temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 0}
    return View(analysis, loaded, {**defaults, **values})


def by_label(result: dict) -> dict:
    return {getattr(component, "label", None): value for component, value in result.items()}


def plot_data(figure) -> list:
    return json.loads(figure.to_json())["data"]


def test_long_prompt_fixture_is_cut_to_the_context(loaded):
    assert analyze(loaded, PROMPTS["long"]).trace.n_tokens == loaded.model.config.n_ctx


def test_block_tab_opens_the_last_position_with_its_layer_norm_and_gelu(page, loaded, analysis):
    out = by_label(page[0]["block"].show(view_of(analysis, loaded)))
    last = analysis.trace.n_tokens - 1
    assert f"position {last}" in out["Block explained"]
    assert plot_data(out["LayerNorm before and after"]) and plot_data(out["MLP neurons on the GELU curve"])
    assert "attention moves information between positions" in out["Block explained"].lower()


def test_block_tab_story_sets_the_cards_layer_and_position(page, loaded, analysis):
    card = story.story_card(story.CARD_IDS.index("block"), analysis, loaded)
    out = page[0]["block"].story(view_of(analysis, loaded, **card["controls"]), "block")
    values = {getattr(c, "label", None): v for c, v in out.items()}
    assert values["Block (layer)"]["value"] == card["controls"]["layer"]
    assert values["Position"]["value"] == card["controls"]["position"]


@pytest.mark.parametrize("tab", ["tokens", "attention", "layers", "next_token"])
def test_building_one_tab_fills_only_that_tab_and_never_measures_the_surprise(store, loaded, analysis, tab):
    open_tabs = build_app(store, budget=AnalysisBudget(2**28)).explorer_open_tabs
    out = open_tabs.panels(tab, view_of(analysis, loaded))
    assert set(out) <= set(open_tabs.outputs_of(tab))  # nothing of another tab is built or sent
    assert open_tabs.tabs[tab].code.markdown in out  # its code box comes with it
    assert "token_surprise" not in analysis.trace.__dict__  # the T x n_vocab product was not paid


def test_surprise_tab_open_shows_loss_and_perplexity_of_the_prompt(page, loaded, analysis):
    out = by_label(page[0]["surprise"].show(view_of(analysis, loaded)))
    surprise = analysis.trace.token_surprise.astype(np.float64)
    assert len(surprise) == analysis.trace.n_tokens - 1
    if len(surprise):
        assert f"{surprise.mean():.2f} nats" in out["Surprise explained"]
        assert f"{np.exp(surprise.mean()):,.1f}" in out["Surprise explained"]  # the perplexity
    else:
        assert "nothing to predict" in out["Surprise explained"]
    assert len(plot_data(out["Surprise per token"])) == 2  # the first token's grey cell and the coloured rest


def test_about_tab_counts_the_loaded_models_parameters(page, loaded, analysis):
    out = by_label(page[0]["about"].show(view_of(analysis, loaded)))
    assert f"{loaded.model.num_parameters():,} parameters" in out["About this model"]


def test_head_walk_follows_the_selected_query_and_says_what_q_k_v_are(page, loaded, analysis):
    query = analysis.trace.n_tokens - 1
    out = by_label(page[0]["attention"].show(view_of(analysis, loaded)))
    walk = out["Head walk explained"]
    assert f"at position {query}" in walk and "the query qᵢ is what position i is looking for" in walk
    weights = plot_data(out["Head walk"])[0]
    assert len(weights["x"]) == min(query + 1, 64)


def test_head_walk_asks_for_one_head_when_heads_are_averaged(page, loaded, analysis):
    out = by_label(page[0]["attention"].show(view_of(analysis, loaded, mean_heads=True)))
    assert "untick" in out["Head walk explained"]


@pytest.mark.parametrize("tab", ["tokens", "embeddings", "attention", "block", "layers", "next_token", "surprise",
                                 "generate"])
def test_each_tabs_code_box_shows_its_lines_with_this_prompts_shapes(page, loaded, analysis, tab):
    code = page[0][tab].code
    text = code.show(view_of(analysis, loaded))[code.markdown]
    T = analysis.trace.n_tokens
    assert "```python" in text and f"T = {T}" in text


def test_embeddings_text_measures_the_loaded_model(page, loaded, analysis):
    out = by_label(page[0]["embeddings"].show(view_of(analysis, loaded)))
    assert "two tokens drawn at random from the vocabulary have cosine" in out["Embeddings explained"]


def test_attention_title_says_an_induction_label_comes_from_the_random_sequence(loaded, analysis):
    scores = analysis.scores
    scores.induction = np.zeros_like(scores.entropy)
    scores.induction[0, 1] = 1.0  # make head 0.1 an induction head
    title = panels.attention_heatmap(analysis, 0, 1, False, 0).layout.title.text
    assert "induction, on a repeated random sequence" in title


@pytest.mark.parametrize("index", range(len(story.CARDS)))
def test_a_story_card_selects_its_tab_and_sets_its_controls(page, loaded, analysis, index):
    tabs, strip = page
    out = strip.show_card(analysis, loaded, index)
    card = story.story_card(index, analysis, loaded)
    assert out[strip.tabs].selected == card["tab"] and out[strip.open_tabs.open_tab] == card["tab"]
    assert out[strip.card] == card["markdown"]
    assert out[strip.back].interactive == (index > 0) and out[strip.next].interactive == (index < len(story.CARDS) - 1)
    home = tabs[card["tab"]]
    opened = [c for c in home.story_outputs if isinstance(c, gr.Accordion) and c in out]
    assert opened and all(out[c].open for c in opened)  # its explanation is open
    components = {name: c for tab in tabs.values() for name, c in tab.inputs.items()}
    components |= {"query": next(c for c in tabs["attention"].outputs if getattr(c, "label", "").startswith("Query")),
                   "position": next(c for c in tabs["block"].outputs if getattr(c, "label", "") == "Position"),
                   "max_new_tokens": next(c for c in tabs["generate"].story_outputs
                                          if getattr(c, "label", "") == "Max new tokens")}
    if card["tab"] == "block":
        components["layer"] = components.pop("block_layer")
    for name, value in card["controls"].items():
        update = out[components[name]]
        shown = update["value"] if isinstance(update, dict) else update
        assert shown == value, name


def test_an_example_prompt_opens_its_target_card_and_says_why(page):
    strip = page[1]
    example = story.load_examples()[2]
    index, why = strip.for_prompt(example["prompt"], None)
    assert story.CARD_IDS[index] == example["target"] and why == example["why"]


def test_a_prompt_of_the_learners_own_keeps_the_card_they_are_on(page):
    assert page[1].for_prompt("My own words", {"index": 6, "on": True}) == (6, None)


def test_the_embeddings_card_opens_the_sum_heatmap_it_reads(page, loaded, analysis):
    tabs, strip = page
    index = story.CARD_IDS.index("embeddings")
    assert "*Sum* heatmap" in story.story_card(index, analysis, loaded)["markdown"]
    out = strip.show_card(analysis, loaded, index)
    views = next(c for c in tabs["embeddings"].story_outputs if isinstance(c, gr.Tabs))
    assert out[views].selected == "sum"


def test_building_attention_leaves_a_slider_the_learner_may_have_moved_since_unless_it_must_change(page, loaded):
    """The tab is built from the values the page sent; a slider whose value is kept gets only its range, so a
    number typed while the tab was being built is not put back. One out of this model's range is clamped."""
    config, analysis = loaded.model.config, analyze(loaded, PROMPTS[3])
    out = by_label(page[0]["attention"].show(view_of(analysis, loaded, layer=config.n_layer - 1, head=1)))
    assert "value" not in out["Layer"] and out["Layer"]["maximum"] == config.n_layer - 1
    assert "value" not in out["Head"]
    out = by_label(page[0]["attention"].show(view_of(analysis, loaded, layer=99, head=99)))
    assert (out["Layer"]["value"], out["Head"]["value"]) == (config.n_layer - 1, config.n_head - 1)
    assert out["Query position (outlined row)"]["value"] == analysis.trace.n_tokens - 1  # a new prompt: its last token


def test_building_training_keeps_the_head_the_learner_picked_and_the_story_sets_its_own():
    """The shipped model (it has snapshots): a head from the page's sliders gets only the range back; the story's
    card, which names no slider values, gets the finished model's strongest induction head set."""
    store = ModelStore(sizes=[])
    loaded = store.get(store.default)
    app = build_app(store, budget=AnalysisBudget(2**26))
    training = app.explorer_tabs["training"]
    analysis = analyze(loaded, "one two three one two three")
    out = by_label(training.show(View(analysis, loaded, {"training_layer": 1, "training_head": 2})))
    assert "value" not in out["Layer"] and "value" not in out["Head"]
    assert out["Snapshot"]["value"] == len(store.training_run(loaded.name).snapshots) - 1  # a new prompt: the end
    layer, head = np.unravel_index(int(np.argmax(loaded.induction)), loaded.induction.shape)
    out = by_label(training.show(View(analysis, loaded, {})))
    assert (out["Layer"]["value"], out["Head"]["value"]) == (layer, head)
