"""Live in a real browser: each tab is built when opened and shows the current prompt; a slider drag ends
with one redraw of its last value (headless Debian Chromium through Playwright, the tiny test model)."""

import json
import time

# The browser tests' page (the app opened, its story left), and their skip where chromium is missing.
from test_browser import page  # noqa: F401

import gpt2

# The tabs whose panels come from the analysis, and how many figures each shows at once. `tokens` is the
# number of those figures whose labels carry the prompt's own tokens (the others show heads, bars, curves).
TABS = {"Embeddings": dict(plots=4, tokens=3), "Attention": dict(plots=4, tokens=2),
        "Inside a block": dict(plots=2, tokens=0), "Layers": dict(plots=3, tokens=2),
        "Next token": dict(plots=1, tokens=0), "Surprise": dict(plots=1, tokens=1)}
FIRST, SECOND = "The cat sat on the mat", "Every tall tree slowly bends toward the quiet elephant"

# The visible figures of the open tab, each as the JSON of its data and layout (typed arrays as lists).
VISIBLE_FIGURES = """() => [...document.querySelectorAll('.js-plotly-plot')]
    .filter(p => p.offsetParent !== null && p.data)
    .map(p => JSON.stringify([p.data, p.layout], (k, v) => ArrayBuffer.isView(v) ? Array.from(v) : v))"""


def analyze(page, prompt: str) -> int:
    """Analyze `prompt` with the Tokens tab open; its number of tokens once the status says so."""
    n_tokens = len(gpt2.get_tokenizer().encode(prompt))
    page.get_by_role("tab", name="Tokens").click()
    page.get_by_label("Prompt").fill(prompt)
    page.get_by_role("button", name="Analyze").click()
    page.wait_for_function(f"document.querySelector('#status').innerText.includes('prompt: {n_tokens} tokens')"
                           f" && document.querySelectorAll('.token-chip').length === {n_tokens}", timeout=60_000)
    return n_tokens


def open_tab(page, name: str, plots: int, unlike: list[str]) -> list[str]:
    """Open a tab and wait until it shows `plots` figures, none of them equal to one in `unlike`."""
    page.get_by_role("tab", name=name, exact=True).click()
    page.wait_for_function(f"""([count, unlike]) => {{
        const figures = ({VISIBLE_FIGURES})();
        return figures.length === count && figures.every(f => !unlike.includes(f));
    }}""", arg=[plots, unlike], timeout=60_000, polling=50)
    return page.evaluate(VISIBLE_FIGURES)


def test_every_tab_opened_after_one_analyze_shows_that_prompt(page):
    page.get_by_role("tab", name="Next token", exact=True).click()
    loaded_prompt = page.evaluate(VISIBLE_FIGURES)  # the page's own first prompt, analysed on load
    analyze(page, FIRST)
    first = {name: open_tab(page, name, tab["plots"], unlike=loaded_prompt) for name, tab in TABS.items()}
    n_tokens = analyze(page, SECOND)
    assert page.locator(".token-chip").last.inner_text().startswith("␣elephant")
    for name, tab in TABS.items():
        # Every figure of the tab is new (none left from the first prompt), and those with token labels show
        # the second prompt's last token.
        figures = open_tab(page, name, tab["plots"], unlike=first[name])
        assert sum("␣elephant" in figure for figure in figures) >= tab["tokens"], name
    assert f"{n_tokens} tokens" in page.locator("#status").inner_text()
    assert page.evaluate("window.Plotly.drawsOnce === true")  # assets/draw_once.js: one draw per new figure


def test_reopening_a_tab_sends_nothing(page):
    analyze(page, FIRST)
    open_tab(page, "Attention", TABS["Attention"]["plots"], unlike=[])
    open_tab(page, "Layers", TABS["Layers"]["plots"], unlike=[])  # answered: its request is not counted below
    calls = []
    page.on("request", lambda request: calls.append((request.url, request.post_data)) if request.method == "POST" else None)
    page.get_by_role("tab", name="Attention", exact=True).click()
    page.wait_for_timeout(300)
    # The select event still reaches the server (to record the open tab), but its answer carries no figure.
    assert len(calls) <= 1, calls


def test_a_slider_drag_ends_with_one_redraw_of_its_last_value(page):
    analyze(page, FIRST)
    open_tab(page, "Next token", 1, unlike=[])
    resample = page.evaluate("window.gradio_config.dependencies.find(d => d.api_name === 'resample').id")
    sent = []

    def is_resample(request) -> bool:
        return request.method == "POST" and f'"fn_index":{resample}' in (request.post_data or "").replace(" ", "")

    def slow(route):  # each redraw takes 150 ms, as on a busy server: values arrive faster than answers
        if is_resample(route.request):
            sent.append(json.loads(route.request.post_data)["data"])
            time.sleep(0.15)
        route.continue_()
    page.route("**/gradio_api/**", slow)
    # A drag: the value moves every 10 ms for about a second and ends at 0.45.
    values = [round(1.5 - 0.01 * i, 2) for i in range(106)]
    assert values[-1] == 0.45 and values.count(0.45) == 1
    page.evaluate("""async (values) => {
        const range = [...document.querySelectorAll('input[type=range]')]
            .find(r => r.offsetParent !== null && r.max === '2');
        for (const v of values) {
            range.value = String(v);
            range.dispatchEvent(new Event('input', {bubbles: true}));
            await new Promise(done => setTimeout(done, 10));
        }
    }""", values)
    page.wait_for_function("document.querySelector('#next-token-bars').closest('.column, .gap, body')"
                           ".innerText.includes('T = 0.45')", timeout=15_000)
    page.wait_for_timeout(500)  # time for any further redraw to arrive
    page.unroute("**/gradio_api/**")
    # Values that came while a redraw ran collapsed into one (not a backlog of 106), and the last one sent,
    # hence drawn, is the drag's last value.
    assert 1 <= len(sent) <= 20, sent
    assert sent[-1][1] == 0.45, sent  # (the handle, temperature, top-k, top-p, seed)


def test_a_tab_opened_before_analyze_is_served_ends_up_showing_the_new_prompt(page):
    analyze(page, FIRST)
    open_tab(page, "Attention", TABS["Attention"]["plots"], unlike=[])
    first = page.evaluate(VISIBLE_FIGURES)
    page.get_by_role("tab", name="Tokens").click()
    held = []  # Analyze's request, kept back until the tab was opened: as if its forward pass took that long

    def hold(route):
        if route.request.method == "POST" and route.request.url.rstrip("?").endswith("/queue/join"):
            held.append(route)
        else:
            route.continue_()
    page.route("**/gradio_api/**", hold)
    page.get_by_label("Prompt").fill(SECOND)
    page.get_by_role("button", name="Analyze").click()
    page.wait_for_function("() => true")  # let the click's request reach the route
    with page.expect_response(lambda r: "run/predict" in r.url and '"Attention"' in (r.request.post_data or "")):
        page.get_by_role("tab", name="Attention", exact=True).click()  # built now, from the first prompt
    assert held, "Analyze's request was not held back"
    for route in held:
        route.continue_()
    page.unroute("**/gradio_api/**")
    # Analyze builds the tab open when it runs (and its follow-up, the tab opened while it ran): the second prompt.
    figures = open_tab(page, "Attention", TABS["Attention"]["plots"], unlike=first)
    assert sum("␣elephant" in figure for figure in figures) >= TABS["Attention"]["tokens"]


# Plotly's own react and resize, counted beneath assets/draw_once.js (which patches them when Plotly arrives):
# a call that reaches them draws a figure. Each is numbered with the animation frame it ran in.
COUNT_DRAWS = """() => {
  window.__frame = 0;
  const tick = () => { window.__frame += 1; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  window.__draws = [];
  let plotly;
  Object.defineProperty(window, 'Plotly', {configurable: true, get: () => plotly, set: (value) => {
    const react = value.react, resize = value.Plots.resize;
    const note = (what, div) => window.__draws.push([what, div.closest('.block')?.id || '', window.__frame]);
    value.react = function (div, ...rest) { note('react', div); return react.call(this, div, ...rest); };
    value.Plots.resize = function (div) { note('resize', div); return resize.call(this, div); };
    plotly = value;
  }});
}"""


def test_a_tab_draws_each_figure_once_its_main_figure_first_with_a_paint_between(page):
    """Opening Attention brings four figures. Each is drawn once (Gradio's resize right after a draw would draw
    it again, as long again, though it already fits its box), the heatmap first, each in its own frame, so the
    page is painted with the heatmap before the others are drawn."""
    fresh = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    fresh.add_init_script(f"({COUNT_DRAWS})()")
    fresh.goto(page.url)
    fresh.wait_for_function("document.querySelector('#story-card')?.innerText.includes('1 / ')", timeout=90_000)
    fresh.click("#story-leave")
    analyze(fresh, FIRST)
    fresh.evaluate("window.__draws = []")
    open_tab(fresh, "Attention", TABS["Attention"]["plots"], unlike=[])
    fresh.wait_for_timeout(500)
    draws = fresh.evaluate("window.__draws")
    fresh.close()
    reacts = [(block, frame) for what, block, frame in draws if what == "react"]
    assert len(reacts) == TABS["Attention"]["plots"], draws
    assert reacts[0][0] == "attention-heatmap", draws
    assert not [d for d in draws if d[0] == "resize"], draws
    frames = [frame for _, frame in reacts]
    assert frames == sorted(set(frames)), draws  # one figure per frame
