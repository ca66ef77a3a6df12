"""benchmarks/page_latency.py drives the app in a browser as its docstring says (no timings are checked)."""

import sys
from pathlib import Path

import pytest

from test_browser import CHROMIUM, FLAGS  # skips this module too when chromium is missing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import page_latency  # noqa: E402


@pytest.fixture(scope="module")
def app_page(app_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = page_latency.AppPage("this", app_server, browser)
        yield page
        page.close()
        browser.close()


def test_a_prompt_ends_in_its_marker_word_and_has_the_asked_length():
    import gpt2

    (token_id, word), = page_latency.marker_words(1, "")
    prompt = page_latency.prompt_ending_in(16, token_id)
    assert gpt2.get_tokenizer().encode(prompt)[-1] == token_id and prompt.endswith(word)
    assert len(gpt2.get_tokenizer().encode(prompt)) == 16


def test_marker_words_never_contain_one_another():
    words = [word for _, word in page_latency.marker_words(40, "the cat sat")]
    assert len(set(words)) == 40
    assert not [(a, b) for a in words for b in words if a != b and a in b]


def test_an_analyze_round_times_the_figures_that_show_this_prompt(app_page):
    (token_id, word), = page_latency.marker_words(1, " ".join(page_latency.WORDS))
    times = app_page.analyze_round(page_latency.prompt_ending_in(16, token_id), word)
    assert set(times) == {"analyze", "first Layers", "first Surprise", "reopen Attention"}
    assert all(seconds > 0 for seconds in times.values())
    assert app_page.page.evaluate(f"__bench.shows('#attention-heatmap', '{word}')")


def test_a_drag_ends_on_its_last_value_and_counts_the_events(app_page):
    app_page.open_tab("Attention")
    result = app_page.drag("Layer", "#attention-heatmap", [0, 1, 0, 1, 0, 1], seconds=0.5)
    assert result["final_ok"] and result["inputs"] >= 5 and result["events_sent"] >= 1
