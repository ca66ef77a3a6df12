"""Every figure fits the screen it is on, or scrolls inside its own box: a real browser (Debian's headless
Chromium) on the shipped model (`app.py --model-dir assets/models/tiny`) at a phone's width (390 px) and a desktop's (1280 px).

A figure wider than the box that clips it loses its right-hand side: a heatmap's keys and colour bar, the
outlined row's end. That is allowed only when a box between the figure and the clip scrolls sideways."""

import pytest

from app_server import ROOT
from test_browser import launched, whole_page_screenshot  # skips this module too when chromium is missing

if not (ROOT / "assets" / "models" / "tiny" / "model.safetensors").exists():
    pytest.skip("the shipped model (assets/models/tiny) is not in this checkout", allow_module_level=True)

# The tabs that show figures once the page has analysed its prompt (Compare shows them only after a comparison
# runs, which needs a second model). Generate draws its figure after a step, so the test takes one.
TABS_WITH_FIGURES = ("Embeddings", "Attention", "Inside a block", "Layers", "Next token", "Surprise", "Generate",
                     "Training")

# For every figure on screen: the first box above it that hides what overflows it, if the figure pokes out
# of that box and no box on the way scrolls sideways. The page itself counts as a box of the window's width.
CLIPPED_FIGURES = """() => {
  const clipped = [], seen = [];
  for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    const svg = plot.querySelector('.main-svg');
    if (!svg || !plot.offsetParent) continue;  // not drawn, or in a tab that is not open
    const block = plot.closest('.block');
    const name = block.querySelector('[data-testid=block-label]')?.innerText.trim() || block.id;
    const figure = svg.getBoundingClientRect();
    seen.push(name);
    let problem = figure.right > innerWidth + 1 ? `wider than the window (${figure.width} px, ${innerWidth} px)` : null;
    for (let box = plot.parentElement; box && box !== document.body; box = box.parentElement) {
      const overflow = getComputedStyle(box).overflowX;
      if (overflow === 'auto' || overflow === 'scroll') { problem = null; break; }  // the learner can scroll to it
      if (overflow === 'visible') continue;
      const inside = box.getBoundingClientRect().left + box.clientLeft;
      if (figure.left < inside - 1 || figure.right > inside + box.clientWidth + 1) {
        problem = `${figure.width} px wide in a ${box.clientWidth} px box that clips it (${box.className})`;
        break;
      }
    }
    if (problem) clipped.push(`${name}: ${problem}`);
  }
  return {clipped, seen};
}"""




@pytest.fixture(scope="module")
def browser():
    with launched() as browser:
        yield browser


def open_tab(page, name: str):
    """Click a tab of the page, through the "More tabs" menu where a narrow screen has folded it away."""
    tab = page.get_by_role("tab", name=name, exact=True)
    if tab.count():
        tab.click()
    else:
        page.locator("#tabs > .tab-wrapper .overflow-menu > button").click()
        page.locator("#tabs > .tab-wrapper .overflow-dropdown button", has_text=name).click()
    page.wait_for_function(f"document.querySelector('#tabs > .tab-wrapper [role=tab][aria-selected=true]')"
                           f"?.innerText.trim() === {name!r}", timeout=30_000)


def wait_for_figures(page):
    """Until the open tab has drawn its figures and stopped changing them (a redraw resizes them too)."""
    page.wait_for_function("[...document.querySelectorAll('#tabs > .tabitem')].some(panel =>"
                           " panel.offsetParent && panel.querySelector('.js-plotly-plot .main-svg'))", timeout=60_000)
    page.wait_for_function("!document.querySelector('#tabs .wrap.generating, #tabs .wrap.pending')", timeout=60_000)
    page.wait_for_timeout(250)  # Plotly resizes a figure on the next frames after it is shown


@pytest.mark.parametrize("width", [390, 1280])
def test_every_figure_fits_its_box_or_scrolls_inside_it(browser, shipped_app_server, width, tmp_path):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(shipped_app_server.url)
    page.wait_for_function("document.querySelector('#story-card')?.innerText.includes('1 / ')", timeout=90_000)
    page.click("#story-leave")  # explore freely: the page has analysed its prompt already
    clipped, checked = [], {}
    for name in TABS_WITH_FIGURES:
        open_tab(page, name)
        if name == "Generate":
            page.get_by_role("button", name="Step (one token)").click()
        wait_for_figures(page)
        found = page.evaluate(CLIPPED_FIGURES)
        clipped += [f"{name} tab, {problem}" for problem in found["clipped"]]
        checked[name] = found["seen"]
        if width < 640:
            whole_page_screenshot(page, tmp_path / f"phone-{name.replace(' ', '-').lower()}.png")
    print(f"figures checked at {width} px: {checked}; screenshots in {tmp_path}")
    assert all(checked.values()), f"a tab showed no figure: {checked}"
    assert not clipped, "\n".join(clipped)
    assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth")  # the page never scrolls sideways
    page.close()
