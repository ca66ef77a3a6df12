"""The figure builders: what each picture shows, how it is labelled, and that it stays small."""

import ast
import inspect
import json
import re

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

from explorer import plots
from gpt2.resources import ASSETS

# GPT-2 124M at a 256-token prompt: the payload budget is set for these shapes.
L, H, C, N_CTX, T = 12, 12, 768, 1024, 256
MB = 1_000_000
WORDS = ["␣the", "␣cat", "␣sat", "␣on", "␣the", "␣mat", "."]  # "␣the" twice on purpose


def words(n):
    return [WORDS[i % len(WORDS)] for i in range(n)]


def causal_attention(shape, seed=0):
    """Random causal softmax patterns [..., T, T] in float16, as a Trace stores them."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=shape).astype(np.float32) * 2
    t = shape[-1]
    scores[..., np.triu(np.ones((t, t), dtype=bool), k=1)] = -np.inf
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return (weights / weights.sum(-1, keepdims=True)).astype(np.float16)


def hover(template, **values):
    """What Plotly shows for one point: fill %{name} and %{name:format} like d3-format does for these formats."""
    def fill(match):
        name, fmt = match.group(1), match.group(2) or ""
        return format(values[name], fmt)
    return re.sub(r"%\{(\w+)(?::([^}]*))?\}", fill, template.replace("<extra></extra>", ""))


def note_of(fig):
    return (fig.layout.title.subtitle.text or "").replace("<br>", " ")  # a long note is wrapped


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ---------------------------------------------------------------------------- shared pieces

def test_plots_module_does_not_import_gradio():
    tree = ast.parse(open(plots.__file__).read())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names] + [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.startswith("gradio")]


def test_axis_labels_keep_duplicate_tokens_distinct():
    labels = plots.token_axis_labels(["␣the", "␣cat", "␣the"])
    assert labels == ["0:␣the", "1:␣cat", "2:␣the"]
    assert len(set(labels)) == 3


def test_axis_labels_shorten_long_tokens_and_count_from_the_window_start():
    labels = plots.token_axis_labels(["x" * 40], start=7)
    assert labels[0].startswith("7:x") and labels[0].endswith("…") and len(labels[0]) < 20


def test_empty_figure_shows_the_message():
    fig = plots.empty_figure("Run a prompt first")
    assert isinstance(fig, go.Figure) and len(fig.data) == 0
    assert fig.layout.annotations[0].text == "Run a prompt first"


def test_numbers_are_sent_as_compact_typed_arrays(rng):
    fig = plots.embedding_heatmap(rng.normal(size=(5, 16)), words(5), "x")
    assert '"z":{"dtype":"f4","bdata"' in fig.to_json()


# ---------------------------------------------------------------------------- embeddings

def test_embedding_heatmap_puts_dimensions_on_y_and_tokens_on_x(rng):
    fig = plots.embedding_heatmap(rng.normal(size=(7, 16)), words(7), "Token embeddings")
    (trace,) = fig.data
    assert trace.type == "heatmap" and trace.z.shape == (16, 7)
    assert list(trace.x) == plots.token_axis_labels(words(7))
    assert fig.layout.yaxis.title.text == "embedding dimension"
    assert "token" in fig.layout.xaxis.title.text and fig.layout.title.text == "Token embeddings"


def test_embedding_heatmap_colours_diverge_from_zero(rng):
    trace = plots.embedding_heatmap(rng.normal(size=(7, 16)), words(7), "x").data[0]
    assert trace.zmid == 0 and trace.zmin == -trace.zmax


def test_embedding_heatmap_hover_names_token_dimension_and_value():
    matrix = np.zeros((3, 4), dtype=np.float32)
    matrix[2, 1] = 0.1234
    trace = plots.embedding_heatmap(matrix, ["␣a", "␣b", "␣c"], "x").data[0]
    text = hover(trace.hovertemplate, x=trace.x[2], y=1, z=trace.z[1, 2])
    assert "2:␣c" in text and "dimension 1" in text and "0.123" in text


def test_embedding_heatmap_windows_to_the_last_tokens_and_says_so(rng):
    fig = plots.embedding_heatmap(rng.normal(size=(100, 8)), words(100), "x", max_tokens=64)
    assert fig.data[0].z.shape == (8, 64) and fig.data[0].x[0].startswith("36:")
    assert "last 64 of 100 tokens" in note_of(fig)


def test_embedding_heatmap_clips_an_outlier_dimension_and_says_so(rng):
    matrix = rng.normal(size=(20, 256))
    matrix[:, [5, 77]] = 500.0  # like GPT-2's few huge residual dimensions
    fig = plots.embedding_heatmap(matrix, words(20), "x")
    assert fig.data[0].zmax < 10 and "clipped" in note_of(fig)
    assert fig.data[0].z.max() == pytest.approx(500.0)  # hover still shows the true value


def test_embedding_heatmap_shows_ordinary_spread_unclipped(rng):
    fig = plots.embedding_heatmap(rng.normal(size=(20, 256)), words(20), "x")
    assert fig.data[0].zmax == pytest.approx(np.abs(fig.data[0].z).max()) and not note_of(fig)


def test_pca_axes_report_explained_variance_summing_to_at_most_100(rng):
    fig = plots.embedding_pca(rng.normal(size=(10, 32)), words(10), "PCA")
    shares = [float(re.search(r"([\d.]+)% of variance", fig.layout[axis].title.text).group(1))
              for axis in ("xaxis", "yaxis")]
    assert shares[0] >= shares[1] > 0 and sum(shares) <= 100


def test_pca_of_points_on_a_line_puts_all_variance_on_pc1(rng):
    direction = rng.normal(size=32)
    points = np.outer(np.arange(6.0), direction)
    fig = plots.embedding_pca(points, words(6), "x")
    assert "PC1 (100.0% of variance)" == fig.layout.xaxis.title.text
    np.testing.assert_allclose(np.abs(np.diff(fig.data[0].x)), np.linalg.norm(direction), rtol=1e-5)


def test_pca_points_carry_their_tokens_and_positions(rng):
    trace = plots.embedding_pca(rng.normal(size=(7, 8)), words(7), "x").data[0]
    assert trace.type == "scatter" and "text" in trace.mode
    assert list(trace.text) == words(7) and trace.hovertext[4] == "4:␣the"


@pytest.mark.parametrize("n, expected", [(1, "one token"), (2, "single direction")])
def test_pca_of_one_or_two_tokens_draws_them_with_a_note(rng, n, expected):
    fig = plots.embedding_pca(rng.normal(size=(n, 8)), words(n), "x")
    assert len(fig.data[0].x) == n and expected in note_of(fig)
    assert np.all(np.isfinite(fig.data[0].x)) and np.all(fig.data[0].y == 0)


def test_position_curve_draws_every_position_coloured_by_position_and_rings_the_prompt(rng):
    wpe = np.cumsum(rng.normal(size=(64, 16)), axis=0)
    fig = plots.position_embedding_curve(wpe, n_prompt=5)
    curve, prompt = fig.data
    assert len(curve.x) == 64 and list(curve.marker.color) == list(range(64)) and "lines" in curve.mode
    assert list(prompt.customdata) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(prompt.x, curve.x[:5])
    assert "% of variance" in fig.layout.xaxis.title.text


def test_position_curve_thins_out_only_beyond_max_points_and_says_so(rng):
    fig = plots.position_embedding_curve(rng.normal(size=(100, 8)), n_prompt=3, max_points=50)
    assert len(fig.data[0].x) == 50 and "every 2th position" in note_of(fig)
    assert not note_of(plots.position_embedding_curve(rng.normal(size=(100, 8)), n_prompt=3))


def test_cosine_heatmap_is_symmetric_with_ones_on_the_diagonal(rng):
    fig = plots.cosine_similarity_heatmap(rng.normal(size=(9, 16)), words(9), "cos")
    z = fig.data[0].z
    assert z.shape == (9, 9)
    np.testing.assert_allclose(z, z.T, atol=1e-6)
    np.testing.assert_allclose(np.diag(z), 1.0, atol=1e-6)
    assert (fig.data[0].zmin, fig.data[0].zmax, fig.data[0].zmid) == (-1, 1, 0)


def test_cosine_heatmap_of_opposite_vectors_is_minus_one():
    z = plots.cosine_similarity_heatmap(np.array([[1.0, 2.0], [-2.0, -4.0]]), ["␣a", "␣b"], "x").data[0].z
    assert z[0, 1] == pytest.approx(-1.0)


def test_cosine_heatmap_windows_to_the_last_tokens_and_says_so(rng):
    fig = plots.cosine_similarity_heatmap(rng.normal(size=(200, 8)), words(200), "x", max_tokens=128)
    assert fig.data[0].z.shape == (128, 128) and "last 128 of 200 tokens" in note_of(fig)


# ---------------------------------------------------------------------------- attention

def test_attention_heatmap_masks_the_future_as_nan_and_keeps_the_past():
    pattern = causal_attention((10, 10))
    z = plots.attention_heatmap(pattern, words(10), "L0H0").data[0].z
    future = np.triu(np.ones((10, 10), dtype=bool), k=1)
    assert z.dtype == np.float32 and np.all(np.isnan(z[future]))
    np.testing.assert_array_equal(z[~future], pattern.astype(np.float32)[~future])


def test_attention_heatmap_draws_masked_cells_grey_and_says_why():
    fig = plots.attention_heatmap(causal_attention((5, 5)), words(5), "x")
    assert fig.layout.plot_bgcolor == plots.MASKED_GREY and fig.data[0].hoverongaps is False
    assert "grey = masked: a token cannot see the future" in note_of(fig)


def test_attention_heatmap_has_queries_down_and_keys_across():
    fig = plots.attention_heatmap(causal_attention((5, 5)), words(5), "x")
    assert fig.layout.yaxis.title.text == "query position i" and fig.layout.yaxis.autorange == "reversed"
    assert fig.layout.xaxis.title.text == "key position j"
    assert list(fig.data[0].y) == list(fig.data[0].x) == plots.token_axis_labels(words(5))


def test_attention_heatmap_hover_names_query_key_and_weight():
    pattern = np.tril(np.ones((4, 4))) / np.arange(1, 5)[:, None]
    trace = plots.attention_heatmap(pattern, ["␣A", "␣B", "␣C", "␣D"], "x").data[0]
    text = hover(trace.hovertemplate, x=trace.x[1], y=trace.y[3], z=trace.z[3, 1])
    assert text == "query 3:␣D → key 1:␣B: weight 0.250"


def test_attention_heatmap_does_not_write_into_the_callers_array():
    pattern = np.tril(np.ones((4, 4), dtype=np.float32))
    plots.attention_heatmap(pattern, words(4), "x")
    assert not np.isnan(pattern).any()


def test_attention_heatmap_windows_long_prompts_to_the_last_queries_and_keys_and_says_so():
    fig = plots.attention_heatmap(causal_attention((300, 300)), words(300), "x", max_tokens=256)
    assert fig.data[0].z.shape == (256, 256) and fig.data[0].x[0].startswith("44:")
    assert "last 256 of 300 tokens" in note_of(fig) and "keys before position 44 not shown" in note_of(fig)


def overview(attention, labels=None, **kwargs):
    n_layer, n_head = attention.shape[:2]
    labels = labels or [[f"label{l}.{h}" for h in range(n_head)] for l in range(n_layer)]
    return plots.attention_overview(attention, labels, **kwargs)


def test_overview_is_one_uint8_image_of_tiles_with_one_cell_gaps():
    fig = overview(causal_attention((3, 4, 8, 8)), tile=10)
    image = fig.data[0]
    assert image.type == "heatmap" and image.z.dtype == np.uint8
    assert image.z.shape == (3 * 10 + 2, 4 * 10 + 3)
    assert np.all(image.z[10, :] == plots._GAP) and np.all(image.z[:, 21] == plots._GAP)


def test_overview_puts_layer_0_at_the_top_and_head_0_on_the_left():
    attention = np.zeros((2, 2, 4, 4), dtype=np.float16)
    attention[..., 0] = 1.0  # every head: all attention on the first token
    attention[0, 1] = np.eye(4)  # layer 0, head 1: attends to itself
    z = overview(attention, tile=4).data[0].z
    assert fig_layer_reversed(overview(attention, tile=4))
    assert np.all(np.diag(z[0:4, 5:9]) == 255)  # layer 0 is the first rows, head 1 the second tile
    assert np.all(z[0:4, 0] == 255) and np.all(z[5:9, 0] == 255)


def fig_layer_reversed(fig):
    return fig.layout.yaxis.autorange == "reversed" and fig.layout.yaxis.title.text == "layer"


def test_overview_shows_the_masked_future_grey():
    z = overview(np.tril(np.ones((1, 1, 6, 6), dtype=np.float16)), tile=6).data[0].z
    assert np.all(z[np.triu_indices(6, k=1)] == plots._MASKED) and np.all(np.diag(z) == 255)


def test_overview_shrinking_keeps_a_sharp_previous_token_diagonal_visible():
    attention = np.zeros((1, 1, 96, 96), dtype=np.float16)
    attention[0, 0, np.arange(1, 96), np.arange(95)] = 1.0
    z = overview(attention, tile=24).data[0].z
    assert z.shape == (24, 24) and np.all(np.diag(z)[1:] == 255)



@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_overview_tiles_are_each_blocks_strongest_weight(dtype):
    """The tiles of uneven blocks (100 positions in 24 cells) against each block's max taken in float64."""
    attention = causal_attention((2, 3, 100, 100), seed=3).astype(dtype)
    attention[0, 0, 50:, 10] = np.float16(6e-8)  # a subnormal float16: the smallest weights keep their order too
    levels = plots.overview_tiles(attention, 24)
    edges = np.append(np.arange(24) * 100 // 24, 100)
    wide = attention.astype(np.float64)
    for layer, head in np.ndindex(2, 3):
        for i, j in np.ndindex(24, 24):
            block = wide[layer, head, edges[i]:edges[i + 1], edges[j]:edges[j + 1]]
            if edges[j] > edges[i + 1] - 1:  # every key in the block is after every query: the masked future
                assert levels[layer, head, i, j] == plots._MASKED
            else:
                expected = plots._FIRST_LEVEL + np.rint(np.float32(block.max()) * plots._LEVELS)
                assert levels[layer, head, i, j] == expected, (layer, head, i, j)

def test_overview_hover_names_layer_head_and_label():
    labels = [["previous-token", "induction"], ["broad", "first-token sink"]]
    fig = overview(causal_attention((2, 2, 6, 6)), labels)
    hovers = fig.data[1]  # an invisible heatmap with one cell per tile, centred on it
    assert hovers.type == "heatmap" and hovers.opacity == 0 and np.asarray(hovers.z).shape == (2, 2)
    assert hovers.hovertext[1][1] == "layer 1, head 1: first-token sink"
    assert hovers.x0 + hovers.dx == pytest.approx(np.mean(fig.layout.xaxis.tickvals[1]))
    assert fig.data[0].hoverinfo == "skip"


def test_overview_prints_a_short_label_on_each_tile():
    labels = [["previous-token", "induction"], ["broad", "first-token sink"]]
    text = overview(causal_attention((2, 2, 6, 6)), labels).data[2]
    assert text.mode == "text" and list(text.text) == ["previous", "induction", "broad", "first"]


def test_overview_outlines_the_selected_head():
    fig = overview(causal_attention((3, 3, 6, 6)), selected=(1, 2), tile=10)
    (rect,) = fig.layout.shapes
    assert rect.type == "rect" and (rect.x0, rect.x1) == (21, 32) and (rect.y0, rect.y1) == (10, 21)
    assert not overview(causal_attention((3, 3, 6, 6))).layout.shapes


def test_head_scores_draw_one_map_per_score_and_skip_missing_ones(rng):
    scores = {"previous_token": rng.uniform(size=(L, H)), "first_token": rng.uniform(size=(L, H)),
              "induction": None, "entropy": rng.uniform(size=(L, H))}
    fig = plots.head_scores_heatmap(scores)
    assert [trace.type for trace in fig.data] == ["heatmap"] * 3
    assert all(trace.z.shape == (L, H) for trace in fig.data)
    assert [a.text for a in fig.layout.annotations][:3] == ["previous<br>token", "first<br>token<br>(sink)",
                                                            "entropy<br>0 sharp,<br>1 uniform"]


def test_head_score_titles_fit_above_their_maps_at_a_phones_figure_width(rng):
    """Five maps side by side in the 560 px a phone gives a figure (style.css): each title line must fit its map's
    slice of the plot area, or the titles print over each other."""
    css = (ASSETS / "style.css").read_text(encoding="utf-8")
    phone_width = int(re.search(r"\.js-plotly-plot \{ min-width: (\d+)px; \}", css).group(1))
    fig = plots.head_scores_heatmap(_scores(rng, ["previous_token", "first_token", "self", "induction", "entropy"]))
    colorbar = 60  # its bar, tick labels and title, which Plotly takes from the plot area
    plot_area = phone_width - fig.layout.margin.l - fig.layout.margin.r - colorbar
    for annotation, axis in zip(fig.layout.annotations, ["xaxis", "xaxis2", "xaxis3", "xaxis4", "xaxis5"]):
        low, high = fig.layout[axis].domain
        longest = max(len(line) for line in annotation.text.split("<br>"))
        assert longest * 0.62 * annotation.font.size <= (high - low) * plot_area, annotation.text


def test_head_scores_share_one_zero_to_one_colour_scale(rng):
    fig = plots.head_scores_heatmap({"self": rng.uniform(size=(2, 3)), "entropy": rng.uniform(size=(2, 3))})
    assert {trace.coloraxis for trace in fig.data} == {"coloraxis"}
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0, 1)
    assert fig.layout.yaxis.title.text == "layer" and fig.layout.xaxis.title.text == "head"


# ---------------------------------------------------------------------------- residual stream

def test_residual_norms_have_a_named_row_per_layer_from_the_embeddings_down(rng):
    fig = plots.residual_norm_heatmap(rng.uniform(size=(4, 6)), words(6))
    trace = fig.data[0]
    assert list(trace.y) == ["embeddings", "after block 0", "after block 1", "after block 2"]
    assert trace.z.shape == (4, 6) and fig.layout.yaxis.autorange == "reversed"
    assert hover(trace.hovertemplate, y=trace.y[2], x=trace.x[1], z=12.345) == "after block 1, token 1:␣cat<br>‖x‖ = 12.3"


def test_residual_norms_scale_colours_past_a_huge_first_position_and_say_so(rng):
    norms = rng.uniform(50, 100, size=(4, 6))
    norms[1:, 0] = 3000.0
    fig = plots.residual_norm_heatmap(norms, words(6))
    assert fig.data[0].zmax <= 100 and "position 0 reaches 3e+03" in note_of(fig)
    assert not note_of(plots.residual_norm_heatmap(rng.uniform(50, 100, size=(4, 6)), words(6)))


def test_layer_contributions_compare_attention_and_mlp_averaged_over_positions():
    attn, mlp = np.array([[1.0, 3.0], [5.0, 7.0]]), np.array([[2.0, 2.0], [0.0, 4.0]])
    fig = plots.layer_contributions(attn, mlp)
    assert [trace.type for trace in fig.data] == ["bar", "bar"] and fig.layout.barmode == "group"
    np.testing.assert_allclose(fig.data[0].y, [2.0, 6.0])
    np.testing.assert_allclose(fig.data[1].y, [2.0, 2.0])
    assert list(fig.data[0].x) == ["block 0", "block 1"] and "mean over positions" in fig.layout.yaxis.title.text


def test_layer_contributions_at_one_position():
    attn, mlp = np.array([[1.0, 3.0], [5.0, 7.0]]), np.array([[2.0, 2.0], [0.0, 4.0]])
    fig = plots.layer_contributions(attn, mlp, position=1)
    np.testing.assert_allclose(fig.data[0].y, [3.0, 7.0])
    assert "at position 1" in fig.layout.title.text


# ---------------------------------------------------------------------------- predictions

def lens_data(n_layers=3, n_positions=4, k=3):
    tokens = [[[f"␣l{l}p{p}k{j}" for j in range(k)] for p in range(n_positions)] for l in range(n_layers)]
    probs = np.tile(np.array([0.5, 0.3, 0.1])[:k], (n_layers, n_positions, 1))
    probs[1, 2, 0] = 0.9
    names = plots.residual_layer_names(n_layers - 1)
    return tokens, probs, names, plots.token_axis_labels(words(n_positions))


def test_logit_lens_colours_cells_by_top1_probability_and_writes_the_top1_token():
    fig = plots.logit_lens_grid(*lens_data())
    trace = fig.data[0]
    assert trace.z.shape == (3, 4) and trace.z[1, 2] == pytest.approx(0.9)
    assert trace.text[1][2] == "␣l1p2k0" and list(trace.y) == ["embeddings", "after block 0", "after block 1"]
    assert (trace.zmin, trace.zmax) == (0, 1)


def test_logit_lens_shortens_long_tokens_in_cells_but_not_in_hover():
    tokens, probs, names, columns = lens_data()
    tokens[0][0][0] = "␣international"
    trace = plots.logit_lens_grid(tokens, probs, names, columns).data[0]
    assert trace.text[0][0] == "␣inter…" and "␣international" in trace.hovertext[0][0]


def test_logit_lens_hover_lists_the_top_k_with_probabilities():
    trace = plots.logit_lens_grid(*lens_data()).data[0]
    cell = trace.hovertext[1][2]
    assert "after block 0 · 2:␣sat" in cell
    assert "␣l1p2k0  90.0%" in cell and "␣l1p2k1  30.0%" in cell and "␣l1p2k2  10.0%" in cell


def test_logit_lens_windows_to_the_last_positions_and_says_so():
    fig = plots.logit_lens_grid(*lens_data(n_positions=30), max_positions=24)
    assert fig.data[0].z.shape == (3, 24) and fig.data[0].x[0].startswith("6:")
    assert "last 24 of 30 positions" in note_of(fig)


def bars(n=6, kept_count=4, chosen=None):
    before = np.array([0.4, 0.2, 0.15, 0.1, 0.08, 0.07])[:n]
    kept = np.arange(n) < kept_count
    after = np.where(kept, before / before[kept].sum(), 0.0)
    labels = ["␣the", "␣a", "␣cat", "␣dog", "␣mat", "␣hat"][:n]
    return plots.next_token_bars(labels, before, after, kept, "Next token · H = 1.9 bits", chosen=chosen)


def test_next_token_bars_are_horizontal_with_the_most_likely_at_the_top():
    fig = bars()
    assert all(trace.type == "bar" and trace.orientation == "h" for trace in fig.data)
    assert fig.layout.yaxis.autorange == "reversed" and list(fig.data[0].y) == list(range(6))
    assert fig.layout.yaxis.ticktext[0] == "␣the" and fig.layout.title.text == "Next token · H = 1.9 bits"


def test_next_token_bars_overlay_before_and_after_truncation():
    fig = bars()
    before, after = fig.data
    assert fig.layout.barmode == "overlay" and before.width > after.width
    np.testing.assert_allclose(before.x, [0.4, 0.2, 0.15, 0.1, 0.08, 0.07], rtol=1e-6)
    assert after.x[0] == pytest.approx(0.4 / 0.85) and after.x[5] == 0


def test_next_token_bars_grey_out_dropped_tokens_below_a_cutoff_line():
    fig = bars(kept_count=4)
    assert "#aaa" in fig.layout.yaxis.ticktext[4] and "#aaa" not in fig.layout.yaxis.ticktext[3]
    assert fig.data[0].marker.color[4] != fig.data[0].marker.color[3]
    (line,) = fig.layout.shapes
    assert line.y0 == line.y1 == 3.5
    assert any("cutoff" in a.text for a in fig.layout.annotations)
    assert "dropped" in fig.data[0].hovertext[5]


def test_next_token_bars_draw_no_cutoff_when_every_shown_token_is_kept():
    fig = bars(kept_count=6)
    assert not fig.layout.shapes and not fig.layout.annotations


def test_next_token_bars_mark_the_picked_token():
    fig = bars(chosen=2)
    (picked,) = [a for a in fig.layout.annotations if "picked" in a.text]
    assert picked.y == 2


def test_next_token_bars_refuse_a_chosen_index_outside_the_list():
    with pytest.raises(ValueError, match="chosen"):
        bars(chosen=6)


# ---------------------------------------------------------------------------- payload budget

@pytest.fixture(scope="module")
def gpt2_small_figures():
    """Every figure for a 256-token prompt at GPT-2 124M shapes, built from synthetic arrays."""
    rng = np.random.default_rng(1)
    tokens = words(T)
    residual = rng.normal(size=(L + 1, T, C)).astype(np.float32)
    attention = causal_attention((L, H, T, T))
    labels = [["previous-token"] * H for _ in range(L)]
    scores = {name: rng.uniform(size=(L, H)) for name in ("previous_token", "first_token", "induction", "entropy")}
    lens_tokens = [[["␣" + "long-token" * 2] * 5 for _ in range(T)] for _ in range(L + 1)]
    lens_probs = np.sort(rng.uniform(size=(L + 1, T, 5)), axis=-1)[..., ::-1] / 5
    top = np.sort(rng.dirichlet(np.ones(1000)))[::-1][:30]
    return {
        "embedding_heatmap": plots.embedding_heatmap(residual[0], tokens, "x_0"),
        "embedding_pca": plots.embedding_pca(residual[0], tokens, "x_0"),
        "position_embedding_curve": plots.position_embedding_curve(rng.normal(size=(N_CTX, C)), T),
        "cosine_similarity_heatmap": plots.cosine_similarity_heatmap(residual[6], tokens, "x_6"),
        "attention_heatmap": plots.attention_heatmap(attention[5, 1], tokens, "L5H1"),
        "attention_overview": plots.attention_overview(attention, labels, selected=(5, 1)),
        "head_scores_heatmap": plots.head_scores_heatmap(scores),
        "residual_norm_heatmap": plots.residual_norm_heatmap(np.linalg.norm(residual, axis=-1), tokens),
        "layer_contributions": plots.layer_contributions(rng.uniform(size=(L, T)), rng.uniform(size=(L, T))),
        "logit_lens_grid": plots.logit_lens_grid(lens_tokens, lens_probs, plots.residual_layer_names(L),
                                                 plots.token_axis_labels(tokens)),
        "next_token_bars": plots.next_token_bars(words(30), top, top / top.sum(), np.ones(30, bool), "x", chosen=0),
    }


@pytest.mark.parametrize("name", ["embedding_heatmap", "embedding_pca", "position_embedding_curve",
                                  "cosine_similarity_heatmap", "attention_heatmap", "attention_overview",
                                  "head_scores_heatmap", "residual_norm_heatmap", "layer_contributions",
                                  "logit_lens_grid", "next_token_bars"])
def test_every_figure_of_a_256_token_prompt_on_gpt2_small_is_at_most_1_mb(gpt2_small_figures, name):
    assert len(gpt2_small_figures[name].to_json()) <= MB


def test_a_1024_token_attention_heatmap_stays_under_1_mb_by_windowing():
    fig = plots.attention_heatmap(causal_attention((N_CTX, N_CTX)), words(N_CTX), "L0H0")
    assert len(fig.to_json()) <= MB and "last 256 of 1024 tokens" in note_of(fig)


def test_a_1024_token_attention_overview_stays_under_1_mb():
    attention = np.zeros((L, H, N_CTX, N_CTX), dtype=np.float16)
    attention[..., 0] = 1.0  # cheap to build; the overview's size does not depend on the values
    assert len(plots.attention_overview(attention, [["mixed"] * H] * L).to_json()) <= MB


def test_attention_heatmap_outlines_the_selected_query_row():
    pattern = np.tril(np.ones((5, 5), dtype=np.float32))
    pattern /= pattern.sum(-1, keepdims=True)
    fig = plots.attention_heatmap(pattern, ["a", "b", "c", "d", "e"], "t", query=3)
    (shape,) = fig.layout.shapes
    assert (shape.y0, shape.y1, shape.x0, shape.x1) == (2.5, 3.5, -0.5, 3.5)
    assert not plots.attention_heatmap(pattern, ["a", "b", "c", "d", "e"], "t").layout.shapes


# ---------------------------------------------------------------------------- valid Plotly, built by hand

def _outliers(rng, n_tokens, d):
    matrix = rng.normal(size=(n_tokens, d))
    matrix[:, [1, 5]] = 500.0
    return matrix


def _norms_with_a_sink(rng):
    norms = rng.uniform(50, 100, size=(4, 6))
    norms[1:, 0] = 3000.0
    return norms


def training_curve(snapshots=None, note=None):
    tokens = np.array([0, 1e5, 2e5, 3e5])
    return plots.training_curve(tokens, np.array([np.nan, 6.0, 5.0, 4.5]), np.array([8.3, 5.7, 5.1, 4.8]), 2e5,
                                "step 200", snapshot_tokens=snapshots, note=note)


def test_training_curve_marks_the_snapshot_and_leaves_step_zero_without_a_training_loss():
    fig = training_curve(snapshots=np.array([0, 2e5, 3e5]))
    train, val, stops = fig.data
    assert np.isnan(train.y[0]) and val.y[0] == pytest.approx(8.3)
    assert fig.layout.shapes[0].x0 == fig.layout.shapes[0].x1 == pytest.approx(0.2)  # millions of tokens
    assert fig.layout.annotations[0].text == "step 200"
    assert list(stops.x) == pytest.approx([0, 0.2, 0.3])


def _scores(rng, names):
    return {name: rng.uniform(size=(3, 4)) for name in names}


# One small figure from every public builder, in each of its variants (notes, shapes, annotations).
BUILDER_CASES = {
    "empty_figure": lambda rng: plots.empty_figure("Run a prompt first"),
    "embedding_heatmap": lambda rng: plots.embedding_heatmap(rng.normal(size=(7, 16)), words(7), "x"),
    "embedding_heatmap windowed, clipped": lambda rng: plots.embedding_heatmap(_outliers(rng, 12, 16), words(12), "x",
                                                                                max_tokens=8),
    "embedding_pca": lambda rng: plots.embedding_pca(rng.normal(size=(7, 16)), words(7), "x"),
    "embedding_pca one token": lambda rng: plots.embedding_pca(rng.normal(size=(1, 16)), words(1), "x"),
    "position_embedding_curve": lambda rng: plots.position_embedding_curve(rng.normal(size=(64, 16)), 5),
    "position_embedding_curve thinned": lambda rng: plots.position_embedding_curve(rng.normal(size=(100, 8)), 3,
                                                                                   max_points=50),
    "cosine_similarity_heatmap": lambda rng: plots.cosine_similarity_heatmap(rng.normal(size=(9, 16)), words(9), "x",
                                                                             max_tokens=6),
    "attention_heatmap": lambda rng: plots.attention_heatmap(causal_attention((6, 6)), words(6), "x"),
    "attention_heatmap windowed, query": lambda rng: plots.attention_heatmap(causal_attention((9, 9)), words(9), "x",
                                                                             max_tokens=6, query=7),
    "attention_heatmap rounded, query": lambda rng: plots.attention_heatmap(causal_attention((9, 9)), words(9), "x",
                                                                            exact_tokens=4, query=7,
                                                                            exact_weights_at="the score table"),
    "attention_overview": lambda rng: overview(causal_attention((2, 3, 8, 8)), tile=6),
    "attention_overview selected": lambda rng: overview(causal_attention((2, 3, 8, 8)), tile=6, selected=(1, 2)),
    "head_scores_heatmap": lambda rng: plots.head_scores_heatmap({**_scores(rng, ["previous_token", "self", "entropy"]),
                                                                  "induction": None}),
    "head_scores_heatmap one score": lambda rng: plots.head_scores_heatmap(_scores(rng, ["my_score"])),
    "head_scores_heatmap none": lambda rng: plots.head_scores_heatmap({"induction": None}),
    "residual_norm_heatmap": lambda rng: plots.residual_norm_heatmap(rng.uniform(size=(4, 6)), words(6)),
    "residual_norm_heatmap clipped": lambda rng: plots.residual_norm_heatmap(_norms_with_a_sink(rng), words(6)),
    "layer_contributions": lambda rng: plots.layer_contributions(rng.uniform(size=(3, 5)), rng.uniform(size=(3, 5))),
    "layer_contributions at a position": lambda rng: plots.layer_contributions(rng.uniform(size=(3, 5)),
                                                                               rng.uniform(size=(3, 5)), position=-1),
    "logit_lens_grid windowed": lambda rng: plots.logit_lens_grid(*lens_data(n_positions=30), max_positions=24),
    "next_token_bars": lambda rng: bars(kept_count=6),
    "next_token_bars cutoff, chosen": lambda rng: bars(kept_count=4, chosen=2),
    "layer_norm_before_after": lambda rng: plots.layer_norm_before_after(rng.normal(size=16) * 9, rng.normal(size=16),
                                                                         "x"),
    "gelu_curve": lambda rng: plots.gelu_curve(rng.normal(size=64) * 2, rng.normal(size=64), np.array([4, 9]), "x"),
    "head_walk_bars": lambda rng: plots.head_walk_bars(words(5), np.full(5, 0.2), rng.uniform(size=5), "x"),
    "head_walk_bars windowed": lambda rng: plots.head_walk_bars(words(9), np.full(9, 1 / 9), rng.uniform(size=9), "x",
                                                                max_keys=4),
    "surprise_tokens": lambda rng: plots.surprise_tokens(words(20), rng.uniform(0, 12, size=19), per_row=8),
    "surprise_tokens one token": lambda rng: plots.surprise_tokens(words(1), np.zeros(0)),
    "before_after_bars": lambda rng: plots.before_after_bars(words(5), rng.uniform(size=5), rng.uniform(size=5), "x"),
    "moved_most_bars": lambda rng: plots.moved_most_bars(words(4), rng.uniform(size=4), rng.uniform(size=4), "x"),
    "branch_tree": lambda rng: plots.branch_tree([None, 0, 1, 0, 3], words(5), rng.uniform(size=5), current=4),
    "training_curve": lambda rng: training_curve(),
    "training_curve with snapshots and a note": lambda rng: training_curve(snapshots=np.array([0, 2e5]), note="x"),
    "top_token_bars": lambda rng: plots.top_token_bars(words(5), rng.uniform(size=5), "x"),
    "head_type_map": lambda rng: plots.head_type_map([["mixed", "broad"], ["induction", "self"]],
                                                     ["induction", "self", "broad", "mixed"], "x"),
    "attribution_heads": lambda rng: plots.attribution_heads(rng.normal(size=(3, 4)), "x", note="y"),
    "attribution_layers": lambda rng: plots.attribution_layers(0.5, rng.normal(size=3), rng.normal(size=3), -0.2, "x"),
    "patching_heatmap": lambda rng: plots.patching_heatmap(rng.uniform(-0.2, 1.1, size=(3, 5)), words(5), "x",
                                                           "token", note="y"),
}


def test_every_public_builder_has_a_validation_case():
    builders = {name for name, function in inspect.getmembers(plots, inspect.isfunction)
                if function.__module__ == plots.__name__ and not name.startswith("_")
                and inspect.signature(function).return_annotation in ("go.Figure", go.Figure)}
    assert builders == {case.split()[0] for case in BUILDER_CASES}


@pytest.mark.parametrize("case", list(BUILDER_CASES))
def test_every_figure_passes_plotly_validation_unchanged(case):
    """The builders skip Plotly's checks for speed; here they run, on everything a builder writes.

    Rebuilding with validation raises ValueError on a misspelt or invalid property. The
    rebuilt figure must also serialise to the same JSON: validation would have changed
    nothing (no named colour scale left to expand, no title string left to wrap).
    """
    fig = BUILDER_CASES[case](np.random.default_rng(3))
    validated = go.Figure(fig.to_plotly_json())
    assert json.loads(validated.to_json()) == json.loads(fig.to_json())


@pytest.mark.parametrize("n_maps", [1, 2, 3, 5])
def test_head_scores_lay_out_their_maps_as_make_subplots_would(rng, n_maps):
    names = ["previous_token", "first_token", "self", "induction", "entropy"][:n_maps]
    fig = plots.head_scores_heatmap(_scores(rng, names))
    grid = make_subplots(rows=1, cols=n_maps, shared_yaxes=True, horizontal_spacing=0.03,
                         subplot_titles=["<br>".join(plots._SCORE_TITLE_LINES[name]) for name in names])
    for col in range(n_maps):
        suffix = str(col + 1) if col else ""
        for axis, settings in (("xaxis", ["anchor", "domain"]), ("yaxis", ["anchor", "domain", "matches", "showticklabels"])):
            for setting in settings:
                mine, theirs = fig.layout[axis + suffix][setting], grid.layout[axis + suffix][setting]
                assert mine == (pytest.approx(theirs) if setting == "domain" else theirs), (axis + suffix, setting)
        assert (fig.data[col].xaxis, fig.data[col].yaxis) == ("x" + suffix, "y" + suffix)
    for mine, theirs in zip(fig.layout.annotations, grid.layout.annotations, strict=True):
        assert mine.text == theirs.text and mine.x == pytest.approx(theirs.x)
        assert (mine.y, mine.xref, mine.yref, mine.xanchor, mine.yanchor, mine.showarrow) == \
               (theirs.y, theirs.xref, theirs.yref, theirs.xanchor, theirs.yanchor, theirs.showarrow)


def test_overview_from_kept_tiles_equals_the_one_from_patterns():
    attention = causal_attention((2, 3, 30, 30))
    labels = [["mixed"] * 3] * 2
    tiles = plots.overview_tiles(attention, 6)
    fresh = plots.attention_overview(attention, labels, selected=(1, 2), tile=6)
    kept = plots.attention_overview(attention, labels, selected=(1, 2), tile=6, tiles=tiles)
    assert fresh.to_json() == kept.to_json()
    with pytest.raises(ValueError, match="do not fit"):
        plots.attention_overview(attention, labels, tile=8, tiles=tiles)


def test_gelu_curve_puts_each_neuron_on_its_pre_and_post_activation():
    pre, post = np.array([-2.0, 0.5, 3.0]), np.array([-0.05, 0.35, 2.99])
    fig = plots.gelu_curve(pre, post, np.array([2]), "x")
    neurons, top = fig.data[1], fig.data[2]
    np.testing.assert_allclose(neurons.x, pre) and np.testing.assert_allclose(neurons.y, post)
    assert float(top.x[0]) == 3.0
    (label,) = fig.layout.annotations  # its number, with a line to its point
    assert (label.text, label.x, label.y) == ("2", 3.0, pytest.approx(2.99))
    assert "2 of 3 pre-activations are positive" in note_of(fig)


def test_the_most_active_neurons_numbers_do_not_overprint_each_other():
    """Ten neurons bunched on the curve (as the most active ones are): their numbers, placed in the figure's own
    pixel scale, stand at least NEURON_LABEL_GAP apart and inside the plot, each with a line to its own point."""
    rng = np.random.default_rng(0)
    pre = np.concatenate([rng.normal(size=500), 2.0 + rng.uniform(0, 0.3, size=10)])
    post = 0.5 * pre * (1 + np.tanh(np.sqrt(2 / np.pi) * (pre + 0.044715 * pre**3)))  # GELU
    top = np.argsort(-post)[:10]
    fig = plots.gelu_curve(pre, post, top, "x")
    low, high = fig.layout.yaxis.range
    plot_px = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    labels = fig.layout.annotations
    assert sorted(int(a.text) for a in labels) == sorted(top.tolist())
    for a in labels:
        assert a.showarrow and (a.x, a.y) == (pytest.approx(pre[int(a.text)]), pytest.approx(post[int(a.text)]))
    at_px = sorted((high - a.y) / (high - low) * plot_px + a.ay for a in labels)
    assert np.diff(at_px).min() >= plots.NEURON_LABEL_GAP - 1e-6
    assert 0 <= at_px[0] and at_px[-1] <= plot_px


def test_layer_norm_figure_gives_each_side_its_mean_and_std():
    fig = plots.layer_norm_before_after(np.array([0.0, 10.0]), np.array([-1.0, 1.0]), "x")
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["input x: mean 5.00, std 5.00", "output LN(x): mean 0.00, std 1.00"]


def test_head_walk_bars_put_weights_and_value_sizes_on_their_own_axes():
    fig = plots.head_walk_bars(words(3), np.array([0.5, 0.3, 0.2]), np.array([4.0, 1.0, 2.0]), "x")
    weights, sizes = fig.data
    np.testing.assert_allclose(weights.y, [0.5, 0.3, 0.2]) and np.testing.assert_allclose(sizes.y, [4.0, 1.0, 2.0])
    assert sizes.yaxis == "y2" and list(weights.x) == ["0:␣the", "1:␣cat", "2:␣sat"]


def test_head_walk_bars_stand_side_by_side_in_their_legend_colours():
    """Bars on two y axes overlap unless each has its own offsetgroup; blue under translucent orange reads brown."""
    fig = plots.head_walk_bars(words(3), np.array([0.5, 0.3, 0.2]), np.array([4.0, 1.0, 2.0]), "x")
    weights, sizes = fig.data
    assert fig.layout.barmode == "group"
    assert weights.offsetgroup and sizes.offsetgroup and weights.offsetgroup != sizes.offsetgroup
    assert (weights.marker.color, sizes.marker.color) == (plots.ATTENTION_COLOUR, plots.MLP_COLOUR)
    assert weights.opacity in (None, 1) and sizes.opacity in (None, 1)  # the legend's swatch is the bar's colour


def test_a_long_note_is_wrapped_into_lines_and_the_figure_makes_room_for_them():
    """Plotly never wraps a subtitle: one longer than the figure runs off its right-hand side."""
    words = "every word of this note matters to the learner reading the figure".split()
    short, long = plots._styled({}, "t", 400, note="a short note"), plots._styled({}, "t", 400, note=" ".join(words * 3))
    lines = long["title"]["subtitle"]["text"].split("<br>")
    assert len(lines) >= 3 and all(len(line) <= plots.NOTE_CHARS for line in lines)
    assert " ".join(lines) == " ".join(words * 3)  # nothing lost or reordered
    extra = 16 * (len(lines) - 1)
    assert long["margin"]["t"] == short["margin"]["t"] + extra and long["height"] == short["height"] + extra
    given = plots._styled({}, "t", 400, note="first line<br>second line")  # lines a builder chose are kept
    assert given["title"]["subtitle"]["text"] == "first line<br>second line"
