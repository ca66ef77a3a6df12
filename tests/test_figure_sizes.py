"""What the browser is sent: every figure of a 1024-token prompt under ~300 KB, short prompts exact (issue 17)."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest

import gpt2
from explorer import plots
from test_plots import BUILDER_CASES, causal_attention, hover, note_of, words

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from figure_sizes import LIMIT, app_figures, loaded_random, template_bytes, wire_bytes  # noqa: E402

# GPT-2 124M's widths and context, two layers to stay quick: a figure's size follows the prompt
# length, d_model and the heads, not the depth (benchmarks/figure_sizes.py measures all 12 layers).
WIDE_AND_SHALLOW = gpt2.GPTConfig(n_layer=2)


@pytest.fixture(scope="module")
def loaded_wide():
    return loaded_random(WIDE_AND_SHALLOW)


@pytest.fixture(scope="module")
def figures_1024(loaded_wide):
    return app_figures(loaded_wide, 1024)


def test_every_figure_of_a_1024_token_prompt_is_sent_in_at_most_300_kb(figures_1024):
    sizes = {name: wire_bytes(figure) for name, figure in figures_1024.items()}
    assert {name: size for name, size in sizes.items() if size > LIMIT} == {}


def test_the_figures_of_a_1024_token_prompt_include_a_rounded_attention_heatmap(figures_1024):
    heatmap = figures_1024["attention/heatmap"].data[0]
    assert heatmap.z.dtype == np.uint8
    assert "rounded to whole percents" in note_of(figures_1024["attention/heatmap"])
    assert "score table" in note_of(figures_1024["attention/heatmap"])


def test_a_32_token_prompt_sends_its_attention_weights_exactly(loaded_wide):
    figures = app_figures(loaded_wide, 32)
    heatmap = figures["attention/heatmap"].data[0]
    assert heatmap.z.dtype == np.float32 and heatmap.z.shape == (32, 32)
    assert "rounded" not in note_of(figures["attention/heatmap"])
    assert all(figure.data[0].z.dtype == np.float32 for name, figure in figures.items()
               if name.startswith("embeddings/") and figure.data[0].type == "heatmap")


def test_a_heatmap_at_the_exact_limit_keeps_float32_and_one_past_it_is_rounded():
    pattern = causal_attention((9, 9))
    exact = plots.attention_heatmap(pattern, words(9), "x", exact_tokens=9)
    rounded = plots.attention_heatmap(pattern, words(9), "x", exact_tokens=8)
    assert exact.data[0].z.dtype == np.float32 and rounded.data[0].z.dtype == np.uint8


def test_rounded_attention_weights_are_whole_percents_of_the_exact_ones():
    pattern = causal_attention((12, 12))
    z = plots.attention_heatmap(pattern, words(12), "x", exact_tokens=4).data[0].z
    past = np.tril(np.ones((12, 12), dtype=bool))
    assert np.abs(z[past] - 100 * pattern.astype(np.float64)[past]).max() <= 0.5 + 1e-3
    assert not z[~past].any()  # the future is weight 0, drawn grey by a shape over it


def test_rounded_attention_hover_says_the_weight_is_approximate_and_in_percent():
    pattern = np.tril(np.ones((4, 4))) / np.arange(1, 5)[:, None]
    trace = plots.attention_heatmap(pattern, ["␣A", "␣B", "␣C", "␣D"], "x", exact_tokens=2).data[0]
    text = hover(trace.hovertemplate, x=trace.x[1], y=trace.y[3], z=trace.z[3, 1])
    assert text == "query 3:␣D → key 1:␣B: weight ≈ 25%"


def _inside(polygon: list[tuple[float, float]], x: float, y: float) -> bool:
    """Even-odd rule: does a ray from (x, y) to the right cross the polygon's edges an odd number of times?"""
    crossings = 0
    for (x0, y0), (x1, y1) in zip(polygon, polygon[1:] + polygon[:1]):
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            crossings += 1
    return crossings % 2 == 1


def _path_points(path: str) -> list[tuple[float, float]]:
    """The corners of an SVG path made of M, H, V and Z, as Plotly's shapes write it."""
    points, x, y = [], 0.0, 0.0
    for command, value in re.findall(r"([MHVZ])([^MHVZ]*)", path):
        if command == "M":
            x, y = (float(v) for v in value.split(","))
        elif command == "H":
            x = float(value)
        elif command == "V":
            y = float(value)
        else:
            continue
        points.append((x, y))
    return points


def test_rounded_attention_covers_exactly_the_future_cells_in_grey():
    n = 7
    fig = plots.attention_heatmap(causal_attention((n, n)), words(n), "x", exact_tokens=3, query=5)
    mask, outline = fig.layout.shapes  # the outline of the query row is drawn over the mask
    assert mask.fillcolor == plots.MASKED_GREY and outline.type == "rect"
    corners = _path_points(mask.path)
    covered = np.array([[_inside(corners, key, query) for key in range(n)] for query in range(n)])
    np.testing.assert_array_equal(covered, np.triu(np.ones((n, n), dtype=bool), k=1))


def test_a_1024_token_surprise_map_carries_each_hover_text_once():
    surprise = np.random.default_rng(0).uniform(0, 10, size=1023)
    fig = plots.surprise_tokens(words(1024), surprise)
    first_cell, tokens = fig.data
    assert np.asarray(first_cell.z).shape == (1, 1) and len(first_cell.hovertext) == 1
    assert wire_bytes(fig) < LIMIT


def test_the_house_template_costs_each_figure_under_400_bytes():
    # "plotly_white" would cost each figure ~7 kB; the house template holds only what plotly.js would not do
    # by itself (and the tick-label setting that saves a third of a redraw of the next-token bars).
    assert 0 < template_bytes(plots.empty_figure("x")) < 400


@pytest.mark.parametrize("case", list(BUILDER_CASES))
def test_every_trace_names_its_own_colour_so_the_template_needs_no_colorway(case):
    """Without a colorway plotly.js would colour (and colour the hover label of) an unnamed trace its own blue."""
    figure = BUILDER_CASES[case](np.random.default_rng(3)).to_plotly_json()
    for trace in figure["data"]:
        if trace["type"] == "heatmap" or trace.get("mode") == "text":
            continue
        assert trace.get("marker", {}).get("color") is not None or trace.get("line", {}).get("color") is not None
