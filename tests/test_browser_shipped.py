"""A real browser on the app as it starts offline: the shipped model's heads are labelled, and the Training tab
shows them forming."""

import json

import pytest

import gpt2

from test_browser import CHROMIUM, FLAGS

PROMPT = "def __init__(self, name):\n    self.name = name\n    self.name = name"


@pytest.fixture(scope="module")
def page(offline_app_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(offline_app_server.url)
        yield page
        browser.close()


def test_a_learner_offline_sees_a_previous_token_head_labelled_and_watches_the_heads_form(page):
    page.get_by_text("cannot be reached").first.wait_for(timeout=60_000)  # the status line says why
    page.get_by_label("Prompt").fill(PROMPT)
    page.get_by_role("button", name="Analyze").click()
    page.get_by_role("tab", name="Attention").click()
    page.wait_for_function("document.querySelector('#attention-overview') &&"
                           " document.querySelector('#attention-overview').textContent.includes('previous')",
                           timeout=60_000)  # the tile of layer 0 head 3 carries its label

    page.get_by_role("tab", name="Training").click()
    heads = "document.querySelector('#training-heads')"
    page.wait_for_function(f"{heads} && {heads}.textContent.includes('induction')", timeout=30_000)
    snapshot = page.get_by_label("number input for Snapshot")
    snapshot.fill("0")  # back to before training: no head is labelled induction or previous-token
    snapshot.press("Enter")
    page.wait_for_function(f"!{heads}.textContent.includes('induction') && !{heads}.textContent.includes('previous')",
                           timeout=30_000)
    last_step = json.loads((gpt2.SHIPPED_MODELS["tiny"] / "training_log.json").read_text(encoding="utf-8"))["step"]
    assert f"step 0 of {last_step:,}" in page.locator("body").inner_text()
