"""A real browser (Debian's headless Chromium, driven by Playwright) uses the app like a learner."""

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

import gpt2

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

if not CHROMIUM.exists():
    if os.environ.get("REQUIRE_BROWSER"):
        raise RuntimeError("REQUIRE_BROWSER is set but /usr/bin/chromium is missing (apt-get install chromium)")
    pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)


@contextmanager
def launched():
    """Debian's headless Chromium through Playwright, closed afterwards (other browser modules use it too)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def whole_page_screenshot(page, path) -> None:
    """A screenshot of the whole page with every figure drawn. The page leaves figures out of view unpainted
    (style.css: content-visibility), and a capture beyond the window would show them blank."""
    tag = page.add_style_tag(content=".js-plotly-plot { content-visibility: visible !important; }")
    page.wait_for_timeout(100)
    page.screenshot(path=str(path), full_page=True)
    tag.evaluate("tag => tag.remove()")  # the page goes on as a learner has it


@pytest.fixture(scope="module")
def page(app_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app_server.url)
        # The page analyses its prompt and opens the story; these tests explore freely, so leave it.
        page.wait_for_function("document.querySelector('#story-card')?.innerText.includes('1 / ')", timeout=90_000)
        page.click("#story-leave")
        yield page
        browser.close()


def open_attention(page, n_tokens: int) -> None:
    """Open the Attention tab and wait for its heatmap of this prompt, as a learner sees it before
    touching a slider (a number typed while the tab is still being built may meet the older figure)."""
    page.get_by_role("tab", name="Attention").click()
    page.wait_for_function("document.querySelector('#attention-heatmap .js-plotly-plot')?.data?.[0]?.x?.length"
                           f" === {n_tokens}", timeout=30_000)


def test_a_learner_analyses_a_prompt_and_sees_the_panels(page, tmp_path_factory):
    prompt = "The quick brown fox jumps over the lazy dog. The quick brown fox"
    page.get_by_label("Prompt").fill(prompt)
    page.get_by_role("button", name="Analyze").click()
    page.get_by_role("tab", name="Tokens").click()
    expected = len(gpt2.get_tokenizer().encode(prompt))
    # The chips of the page's first prompt are there already: wait for this prompt's (a wrong count times out).
    page.wait_for_function(f"document.querySelectorAll('.token-chip').length === {expected}", timeout=60_000)
    chips = page.locator(".token-chip")
    assert chips.count() == expected
    assert "id 464" in chips.first.get_attribute("title")  # hovering a chip shows its id and bytes

    page.get_by_role("tab", name="Attention").click()
    page.wait_for_selector("#attention-heatmap .js-plotly-plot", timeout=30_000)
    assert page.locator("#attention-heatmap").inner_text().count("quick") >= 2  # token labels on the axes
    head = page.get_by_label("number input for Head")  # typing a head and pressing Enter redraws at once
    head.fill("2")
    head.press("Enter")
    page.wait_for_function("document.querySelector('#attention-heatmap').innerText.includes('head 2 (')",
                           timeout=30_000)
    frame = page.evaluate("() => { const p = document.querySelector('#attention-overview .js-plotly-plot');"
                          " return [p.layout.shapes[0].x0, p.layout.meta.step]; }")
    assert frame[0] == 2 * frame[1] - 1  # the overview's frame moved to head 2 (of layer 0)

    page.get_by_role("tab", name="Layers").click()
    page.wait_for_selector("#logit-lens .js-plotly-plot", timeout=30_000)  # Analyze emptied it: this prompt's lens
    window = page.get_by_label("number input for Logit lens: how many of the last positions to show")
    window.fill("3")  # the lens grid narrows to the last 3 positions as soon as Enter is pressed
    window.press("Enter")
    page.wait_for_function("document.querySelector('#logit-lens').textContent.includes('11:␣quick')"
                           " && !document.querySelector('#logit-lens').textContent.includes('10:␣The')", timeout=30_000)

    page.get_by_role("tab", name="Next token").click()
    page.wait_for_selector("#next-token-bars .js-plotly-plot", timeout=30_000)
    assert "kept" in page.locator("#next-token-bars").inner_text()
    # Gradio's run history would copy each Analyze's inputs and figures into the browser's storage (a shared
    # classroom computer keeps them) and rewrite the whole list on every event: the app turns it off.
    kept = page.evaluate("Object.keys(localStorage).filter(key => key.startsWith('gradio:run-history'))")
    assert kept == [], f"the browser keeps a run history: {kept}"
    # Analyze's follow-up leaves once the answer's figures are drawn: the page's promise of that resolves.
    assert page.evaluate("window.explorerDrawn().then(() => 'drawn')") == "drawn"

    shots = tmp_path_factory.mktemp("screenshots")
    page.get_by_role("tab", name="Attention").click()
    page.wait_for_timeout(500)
    whole_page_screenshot(page, shots / "attention.png")
    assert (shots / "attention.png").stat().st_size > 50_000
    print(f"screenshot: {shots / 'attention.png'}")


def test_an_empty_prompt_shows_a_message_not_a_crash(page):
    page.get_by_label("Prompt").fill("")
    page.get_by_role("button", name="Analyze").click()
    page.get_by_text("The prompt is empty").first.wait_for(timeout=30_000)
    page.get_by_label("Prompt").fill("Every effort moves you")
    page.get_by_role("button", name="Analyze").click()
    page.get_by_text("prompt: 4 tokens").wait_for(timeout=30_000)


def test_a_one_token_prompt_shows_every_panel_and_a_disabled_query_slider(page):
    page.get_by_label("Prompt").fill("Hello")
    page.get_by_role("button", name="Analyze").click()
    page.get_by_text("prompt: 1 token").wait_for(timeout=60_000)
    page.get_by_role("tab", name="Attention").click()
    page.wait_for_selector("#attention-heatmap .js-plotly-plot", timeout=30_000)
    assert page.get_by_label("number input for Query position (outlined row)").is_disabled()
    # Gradio accepted every update: no error toast (but the previous test's "empty prompt" one may linger)
    errors = page.locator(".toast-body.error").all_inner_texts()
    assert not [text for text in errors if "empty" not in text], errors
    page.get_by_role("tab", name="Layers").click()
    page.wait_for_function("document.querySelector('#logit-lens').textContent.includes('0:Hello')", timeout=30_000)


def test_a_learner_turns_a_head_off_and_sees_the_distribution_before_and_after(page):
    page.get_by_label("Prompt").fill("one two three four one two three four")
    page.get_by_role("button", name="Analyze").click()
    page.get_by_text("prompt: 8 tokens").wait_for(timeout=60_000)
    open_attention(page, 8)
    for name, value in (("Layer", "1"), ("Head", "3")):  # the ablation acts on the head the sliders select
        field = page.get_by_label(f"number input for {name}")
        field.fill(value)
        field.press("Enter")
    page.wait_for_function("document.querySelector('#attention-heatmap').innerText.includes('Layer 1, head 3 (')",
                           timeout=30_000)
    assert not page.locator("#ablation-bars").is_visible()  # no empty figures before the first ablation
    page.locator("#ablation-turn-off").click()
    page.wait_for_function("document.querySelector('#ablation-bars .js-plotly-plot')?.data?.length === 2",
                           timeout=30_000)
    assert page.locator("#ablation-bars .main-svg").first.bounding_box()["width"] > 200  # drawn at its full width
    names = page.evaluate("() => document.querySelector('#ablation-bars .js-plotly-plot').data.map(t => t.name)")
    assert names == ["before", "ablated"]
    assert "head 1.3 (layer.head) set to zero" in page.locator("#ablation-summary").inner_text()
    page.locator("#ablation-clear").click()
    page.get_by_text("Nothing is turned off").wait_for(timeout=30_000)
    page.locator("#ablation-bars").wait_for(state="hidden", timeout=30_000)  # and the figures go with it


def test_take_this_run_home_downloads_the_page_with_the_head_the_learner_chose(page):
    """One click makes the handout and downloads it, with the head set on the Attention tab."""
    open_attention(page, 8)  # the previous test's prompt
    for name, value in (("Layer", "1"), ("Head", "3")):
        field = page.get_by_label(f"number input for {name}")
        field.fill(value)
        field.press("Enter")
    page.wait_for_function("document.querySelector('#attention-heatmap').innerText.includes('Layer 1, head 3 (')",
                           timeout=30_000)
    with page.expect_download(timeout=60_000) as download:
        page.locator("#handout-make").click()
    assert download.value.suggested_filename == "gpt2-explorer-run.html"
    handout = Path(download.value.path()).read_text(encoding="utf-8")
    assert "Layer 1, head 3 (" in handout and page.get_by_label("Prompt").input_value().split()[0] in handout


def test_a_learner_asks_who_voted_patches_a_pair_and_opens_a_head(page):
    """Logit attribution, a head opened from it in the Attention tab, and the patching example run."""
    import re

    page.get_by_label("Prompt").fill("Every effort moves you forward, every effort moves you")
    page.get_by_role("button", name="Analyze").click()
    page.get_by_text("prompt: 10 tokens").wait_for(timeout=60_000)
    page.get_by_role("tab", name="Who voted").click()
    page.wait_for_function("document.querySelector('#attribution-heads .js-plotly-plot')?.data?.[0]?.type"
                           " === 'heatmap'", timeout=30_000)
    assert "What each head wrote" in page.locator("#attribution-heads").inner_text()
    button = page.locator("#attribution-open-0")
    button.wait_for(state="visible", timeout=30_000)
    layer, head = re.match(r"Open head (\d+)\.(\d+) ", button.inner_text()).groups()
    button.click()
    # The Attention tab opens, drawn for this prompt (an earlier test may have left the same head on screen).
    page.wait_for_function(
        "[...document.querySelectorAll('[role=tab]')].some(t => t.getAttribute('aria-selected') === 'true'"
        " && t.innerText.trim() === 'Attention')"
        f" && document.querySelector('#attention-heatmap')?.innerText.includes('Layer {layer}, head {head} (')"
        " && document.querySelector('#attention-heatmap')?.innerText.includes('effort')", timeout=30_000)

    page.get_by_role("tab", name="Who voted").click()
    page.get_by_role("tab", name="Patching").click()
    page.locator("#patching-example").click()
    page.locator("#patching-run").click()
    page.wait_for_function("document.querySelector('#patching-map .js-plotly-plot')?.data?.[0]?.type === 'heatmap'",
                           timeout=60_000)
    assert "The clean prompt prefers" in page.locator("#patching-text").inner_text()
    errors = page.locator(".toast-body.error").all_inner_texts()
    assert not [text for text in errors if "empty" not in text], errors
