"""The guided story in a real browser (Debian's headless Chromium), on the model the app ships:
`app.py --model-dir assets/models/tiny`. Walks every card at desktop width with a screenshot each,
and checks a phone's width (390 px)."""

from pathlib import Path

import pytest

from explorer import story
from explorer.analysis import analyze
from explorer.store import ModelStore
from test_browser import launched  # skips this module too when chromium is missing

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
        page.wait_for_function(f"document.querySelector('#attention-heatmap')?.innerText"
                               f".includes('Layer {controls['layer']}, head {controls['head']}')", timeout=30_000)
        query = page.get_by_label("number input for Query position (outlined row)")
        assert query.input_value() == str(controls["query"])
    elif card["tab"] == "block":
        page.wait_for_function(f"document.querySelector('#block-layer-norm')?.innerText"
                               f".includes('block {controls['layer']}, position {controls['position']}')",
                               timeout=30_000)
    elif card["tab"] == "surprise":
        page.wait_for_function("document.querySelector('#surprise-tokens')?.innerText.includes('How surprised')",
                               timeout=30_000)
    elif card["tab"] == "next_token":
        temperature = page.get_by_label("number input for Temperature (0 = greedy)")
        page.wait_for_function("([el, t]) => Number(el.value) === t",
                               arg=[temperature.element_handle(), controls["temperature"]], timeout=30_000)


def test_a_learner_walks_the_whole_story_card_by_card(browser, shipped_server, expected_cards, tmp_path_factory):
    page = open_page(browser, shipped_server.url, 1400)
    shots = tmp_path_factory.mktemp("story-screenshots")
    for number, card in enumerate(expected_cards, start=1):
        wait_for_card(page, number)
        assert card["title"] in page.locator("#story-card").inner_text()
        assert page.evaluate(SELECTED_TAB) == TAB_LABELS[card["tab"]]
        check_card_on_page(page, card)
        page.wait_for_timeout(300)  # let the figures finish drawing for the screenshot
        page.screenshot(path=str(shots / f"card-{number:02d}-{card['id']}.png"), full_page=True)
        if number < len(expected_cards):
            page.click("#story-next")
    assert page.locator("#story-next").is_disabled()  # the last card
    assert not page.locator(".toast-body.error").all_inner_texts()
    print(f"story screenshots: {shots}")
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


def test_at_phone_width_nothing_overflows_sideways_and_next_works(browser, shipped_server, tmp_path_factory):
    page = open_page(browser, shipped_server.url, 390)
    no_overflow = "document.scrollingElement.scrollWidth <= innerWidth"
    assert page.evaluate(no_overflow)
    page.click("#story-next")
    wait_for_card(page, 2)
    page.wait_for_selector(".token-chip", timeout=30_000)
    assert page.evaluate(no_overflow)
    for number in (3, 4):  # on to the first attention card: the widest figures
        page.click("#story-next")  # a click while the last one is still answered is ignored: wait each time
        wait_for_card(page, number)
    page.wait_for_selector("#attention-heatmap .js-plotly-plot", timeout=30_000)
    assert page.evaluate(no_overflow)
    shots = tmp_path_factory.mktemp("phone-screenshots")
    page.screenshot(path=str(shots / "phone-card-04.png"), full_page=True)
    print(f"phone screenshot: {shots}")
    page.close()
