"""The guided story in a real browser (Debian's headless Chromium), on the model the app ships:
`app.py --model-dir assets/models/tiny`. Walks every card at a desktop's width (1280 px) and a phone's
(390 px) with a screenshot each, and follows the map of the model."""

from pathlib import Path

import pytest

from explorer import model_map, story
from explorer.analysis import analyze
from explorer.store import ModelStore
from test_browser import launched, whole_page_screenshot  # skips this module too when chromium is missing
from test_browser_phone import CLIPPED_FIGURES

SHIPPED = Path(__file__).resolve().parent.parent / "assets" / "models" / "tiny"
TAB_LABELS = {"tokens": "Tokens", "embeddings": "Embeddings", "attention": "Attention", "block": "Inside a block",
              "layers": "Layers", "next_token": "Next token", "attribution": "Who voted", "surprise": "Surprise",
              "generate": "Generate", "training": "Training", "compare": "Compare"}
SELECTED_TAB = "() => document.querySelector('[role=tab][aria-selected=true]').innerText.trim()"

if not (SHIPPED / "model.safetensors").exists():
    pytest.skip("the shipped model (assets/models/tiny) is not in this checkout", allow_module_level=True)


@pytest.fixture(scope="module")
def shipped_server(shipped_app_server):
    return shipped_app_server  # conftest.py: one server for this module and test_browser_phone.py


@pytest.fixture(scope="module")
def browser():
    with launched() as browser:
        yield browser


@pytest.fixture(scope="module")
def expected_cards():
    """The cards as the story module makes them for the page's first prompt, computed here independently."""
    store = ModelStore(SHIPPED, sizes=[])
    loaded = store.get(store.default)
    analysis = analyze(loaded, story.default_prompt(speaks_gpt2=False))  # the shipped model reads Python
    return [story.story_card(i, analysis, loaded) for i in range(len(story.CARDS))]


def open_page(browser, url, width):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(url)
    wait_for_card(page, 1)  # the page analyses its prompt by itself and shows the first card
    return page


def wait_for_card(page, number: int):
    page.wait_for_function(f"document.querySelector('#story-card')?.innerText.includes('{number} / {len(story.CARDS)}')",
                           timeout=90_000)


def check_card_on_page(page, card):
    controls = card["controls"]
    if card["tab"] == "attention":
        page.wait_for_function(f"document.querySelector('#attention-heatmap')?.textContent"
                               f".includes('Layer {controls['layer']}, head {controls['head']}')", timeout=30_000)
        query = page.get_by_label("number input for Query position (outlined row)")
        assert query.input_value() == str(controls["query"])
    elif card["tab"] == "block":
        page.wait_for_function(f"document.querySelector('#block-layer-norm')?.textContent"
                               f".includes('block {controls['layer']}, position {controls['position']}')",
                               timeout=30_000)
    elif card["tab"] == "surprise":
        page.wait_for_function("document.querySelector('#surprise-tokens')?.textContent.includes('How surprised')",
                               timeout=30_000)
    elif card["tab"] == "next_token":
        temperature = page.get_by_label("number input for Temperature (0 = greedy)")
        page.wait_for_function("([el, t]) => Number(el.value) === t",
                               arg=[temperature.element_handle(), controls["temperature"]], timeout=30_000)


MAP_SHOWS = "() => { const m = document.querySelector('.model-map'); return m && [m.dataset.shows, m.dataset.showsLayer]; }"


def check_map(page, card):
    """The map of the model lights up the card's tab, and on Attention and Inside a block the card's block."""
    layer = str(card["controls"]["layer"]) if card["tab"] in model_map.LAYERED else ""
    page.wait_for_function(f"({MAP_SHOWS})()?.join('|') === {card['tab'] + '|' + layer!r}", timeout=10_000)
    lit = page.locator(".model-map .here")
    assert lit.count() >= 1
    if layer:
        assert set(lit.evaluate_all("parts => parts.map(p => p.dataset.layer).filter(l => l !== undefined)")) == {layer}


@pytest.mark.parametrize("width", [1280, 390])
def test_a_learner_walks_the_whole_story_card_by_card(browser, shipped_server, expected_cards, tmp_path_factory,
                                                      width):
    """Every card at a desktop's and a phone's width, a screenshot of each kept as an artifact. On the phone no
    figure pokes out of a box that clips it (test_browser_phone.CLIPPED_FIGURES) and the page never scrolls
    sideways; on both, the map of the model shows where the card is."""
    page = open_page(browser, shipped_server.url, width)
    shots = tmp_path_factory.mktemp(f"story-screenshots-{width}")
    for number, card in enumerate(expected_cards, start=1):
        wait_for_card(page, number)
        assert card["title"] in page.locator("#story-card").inner_text()
        assert page.evaluate(SELECTED_TAB) == TAB_LABELS[card["tab"]]
        check_card_on_page(page, card)
        check_map(page, card)
        # Let the figures finish drawing for the screenshot: nothing pending, then a few frames.
        page.wait_for_function("!document.querySelector('#tabs .wrap.generating, #tabs .wrap.pending')",
                               timeout=30_000)
        page.wait_for_timeout(120)
        whole_page_screenshot(page, shots / f"card-{number:02d}-{card['id']}.png")
        if width < 640:
            assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth"), f"card {number}"
            assert not page.evaluate(CLIPPED_FIGURES)["clipped"], f"card {number}"
        if number < len(expected_cards):
            page.click("#story-next")
    assert page.locator("#story-next").is_disabled()  # the last card
    assert not page.locator(".toast-body.error").all_inner_texts()
    print(f"story screenshots: {shots}")
    page.close()


def test_clicking_the_map_opens_the_part_and_the_map_follows(browser, shipped_server):
    page = open_page(browser, shipped_server.url, 1280)
    page.click("#story-leave")
    page.click(".model-map .mm-block[data-layer='1'] .mm-attention")
    page.wait_for_function(f"({SELECTED_TAB})() === 'Attention'", timeout=30_000)
    page.wait_for_function("document.querySelector('#attention-heatmap')?.textContent.includes('Layer 1, head')",
                           timeout=30_000)
    page.wait_for_function(f"({MAP_SHOWS})()?.join('|') === 'attention|1'", timeout=10_000)
    page.get_by_role("tab", name="Next token", exact=True).click()  # a tab opened the usual way: the map follows
    page.wait_for_function(f"({MAP_SHOWS})()?.join('|') === 'next_token|'", timeout=10_000)
    assert page.locator(".model-map .mm-next").get_attribute("class").split().count("here") == 1
    assert not page.locator(".toast-body.error").all_inner_texts()
    page.close()


def test_the_learner_can_leave_the_story_and_come_back_to_the_same_card(browser, shipped_server):
    page = open_page(browser, shipped_server.url, 1400)
    page.click("#story-next")
    wait_for_card(page, 2)
    page.click("#story-leave")
    page.locator("#story").wait_for(state="hidden", timeout=30_000)
    page.get_by_role("tab", name="Layers").click()  # exploring freely: the story no longer moves the tabs
    page.click("#story-resume")
    wait_for_card(page, 2)
    assert page.evaluate(SELECTED_TAB) == "Tokens"
    page.close()


def test_clicking_an_example_runs_it_and_opens_its_card(browser, shipped_server):
    examples = story.load_examples()
    example = next(e for e in examples if e["target"] == "induction")
    page = open_page(browser, shipped_server.url, 1400)
    page.get_by_text("Example prompts, and why to try each").click()
    page.get_by_text(example["why"]).click()
    wait_for_card(page, story.CARD_IDS.index("induction") + 1)
    assert page.get_by_label("Prompt").input_value() == example["prompt"]
    assert example["why"] in page.locator("#story-card").inner_text()
    assert page.evaluate(SELECTED_TAB) == "Attention"
    page.close()
