"""An exported page, opened from disk in a browser with the network off, draws its figures."""

import os
from pathlib import Path

import pytest

from explorer import export
from explorer.analysis import analyze
from explorer.store import ModelStore
from test_browser import CHROMIUM, FLAGS

if not CHROMIUM.exists():  # test_browser also raises when REQUIRE_BROWSER is set and chromium is missing
    if os.environ.get("REQUIRE_BROWSER"):
        raise RuntimeError("REQUIRE_BROWSER is set but /usr/bin/chromium is missing (apt-get install chromium)")
    pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)


def test_an_exported_page_draws_every_figure_offline_with_no_server(tiny_checkpoint_dir, tmp_path):
    from playwright.sync_api import sync_playwright

    store = ModelStore(tiny_checkpoint_dir)
    loaded = store.get(store.default)
    page_path, _ = export.write_export(loaded, analyze(loaded, "Every effort moves you. Every effort"),
                                       tmp_path / "run.html", layer=0, head=1)
    requests = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
        context.on("request", lambda request: requests.append(request.url))
        page = context.new_page()
        page.goto(Path(page_path).as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 10", timeout=60_000)
        drawn = page.evaluate("""() => [...document.querySelectorAll('.figure')].map(div => ({
            plotted: div.classList.contains('js-plotly-plot'),
            traces: div.querySelectorAll('.trace, .hm, image').length,
            title: (div.querySelector('.gtitle') || {}).textContent || ''}))""")
        browser.close()
    assert len(drawn) == 10 and all(figure["plotted"] for figure in drawn)  # 8, and the two of Who voted
    assert all(figure["traces"] > 0 for figure in drawn), drawn  # plotly drew each figure's data, not only axes
    assert any("Layer 0, head 1" in figure["title"] for figure in drawn)
    assert [url for url in requests if not url.startswith("file://")] == []
