"""Pure Plotly figure builders: arrays from a Trace in, a `go.Figure` out. No Gradio here.

Every figure is sent to the browser as JSON, so its size is the panel's loading time.
Numbers go in as float32 numpy arrays, which Plotly encodes as compact base64 typed
arrays (a list of Python floats costs ~4x more), and uint8 where only a colour matters.
For a 1024-token prompt on GPT-2 124M every figure reaches the browser in under ~300 KB
(benchmarks/figure_sizes.py); when a figure has to show less than it was given (a window
of the last tokens, weights rounded to whole percents), its subtitle says so.

Figures are written as plain dicts in Plotly's JSON form ({"data": [{"type": "heatmap",
...}], "layout": {...}}) and wrapped once, without validation, by `_figure`. Plotly's
Python objects (`go.Heatmap(...)`, `update_layout`, `add_shape`, `make_subplots`, a
`template=`) check and deep-copy every property at every step, which cost many times
what building the same figures as dicts costs (benchmarks/README.md, "Timings behind
design choices"). No safety is lost:
the tests rebuild every builder's figure with full validation, so a misspelt or
invalid property still fails, just there instead of at runtime. What validation used
to do is done here by hand: colour scales are spelled out as [position, colour] lists,
titles are {"text": ...} dicts, and the subplot grid of `head_scores_heatmap` is
written out axis by axis.

One look for every panel (`_styled`), and colours that mean something:

    BLUES     probabilities and attention weights, 0 = white        (sequential, [0, 1])
    ORANGES   sizes that only grow: norms                           (sequential, from 0)
    RED_BLUE  signed values, white at exactly 0: embeddings, cosines (diverging)
    grey      cells that do not exist: attention to future tokens

Positions are labelled "i:token" ("3:␣the"), so a token that occurs twice is still two
distinct rows and columns, and the label says where it sits. Layers that index a block
are 0-based as in the interpretability literature ("layer 0, head 3"); the residual
stream is named by the block it has just passed ("embeddings", "after block 0", ...);
blocks, layers and heads all count from 0, as in the hook names (h.0 ... h.11).
"""

from __future__ import annotations

import textwrap

import numpy as np
import plotly.colors
import plotly.graph_objects as go

from .embeddings import cosine_similarity, pca_2d

# Colour scales as explicit [[position, colour], ...] lists. A name such as "Blues" would reach
# the browser unexpanded (expanding it was validation's job), and plotly.js's own "Blues" has
# other colours than plotly.py's, while "Oranges" and "RdBu_r" do not exist there at all.
BLUES = plotly.colors.get_colorscale("Blues")
ORANGES = plotly.colors.get_colorscale("Oranges")
RED_BLUE = plotly.colors.get_colorscale("RdBu_r")
VIRIDIS = plotly.colors.get_colorscale("Viridis")
MASKED_GREY = "#d4d4d4"
ATTENTION_COLOUR, MLP_COLOUR, PICKED_COLOUR = "#2171b5", "#e6550d", "#d62728"
FONT = dict(family="Inter, 'Helvetica Neue', Arial, sans-serif", size=13, color="#222")
MAX_LABEL_CHARS = 14
NOTE_CHARS = 70  # a figure's note (its subtitle) is wrapped to lines this long: ~460 px, half the page
# A small template, sent with every figure and applied by plotly.js in the browser. Gradio sends each
# figure as a JSON string of its own, so nothing can be shared between figures: the template is kept to
# what plotly.js would not do by itself (~340 bytes a figure on the wire; "plotly_white" would be ~7 kB).
# Every trace names its own colour, so no colorway; no axis shows its line, so no linecolor.
# The backgrounds are transparent so a figure sits on the page's own background, light or dark; in
# the dark theme the page's stylesheet (assets/style.css, `.dark .js-plotly-plot`) lightens the axis
# text and grid lines. ticks="" because heatmaps would otherwise get tick marks.
# ticklabeloverflow="allow": on a numeric axis plotly.js would hide any tick label poking out of the
# figure, and to find one it measures every label of the axis again after drawing each label: a third
# of a redraw of the next-token bars. Automargin already makes room for the labels.
TRANSPARENT = "rgba(0,0,0,0)"
_HOUSE_AXIS = dict(gridcolor="#ebebeb", zerolinecolor="#d0d0d0", ticks="", automargin=True,
                   ticklabeloverflow="allow")
HOUSE_TEMPLATE = {"layout": dict(plot_bgcolor=TRANSPARENT, paper_bgcolor=TRANSPARENT,
                                 xaxis=_HOUSE_AXIS, yaxis=_HOUSE_AXIS)}


# ---------------------------------------------------------------------------- shared pieces

def _figure(data: list[dict], layout: dict) -> go.Figure:
    """Wrap a finished figure, written as Plotly JSON, into a `go.Figure` without validating it.

    `_validate=False` is the switch Plotly itself uses to skip its checks; the tests
    rebuild every figure with the checks on (see the module docstring).
    """
    return go.Figure({"data": data, "layout": layout}, _validate=False)


def _styled(layout: dict, title: str, height: int, note: str | None = None, header: int = 0) -> dict:
    """The house look added to a layout: transparent template, one font, tight margins, a fixed height, notes as subtitle.

    `header` is extra room (px) under the title, for a legend or subplot titles.
    Returns the same layout dict.
    """
    title_spec = dict(text=title, x=0.01, xanchor="left", font=dict(size=16))
    note_lines = 0
    if note:
        # Plotly never wraps a subtitle: a long one runs off a figure in half the page or on a phone.
        lines = note.split("<br>") if "<br>" in note else textwrap.wrap(note, NOTE_CHARS) or [note]
        note_lines = len(lines) - 1
        title_spec["subtitle"] = dict(text="<br>".join(lines), font=dict(size=12, color="#555"))
    layout.update(template=HOUSE_TEMPLATE, font=FONT, height=height + 16 * note_lines, title=title_spec,
                  margin=dict(l=70, r=20, t=(80 if note else 50) + 16 * note_lines + header, b=50),
                  hoverlabel=dict(font=dict(family=FONT["family"], size=13)))
    return layout


def _axis(title: str, **settings) -> dict:
    """One axis of a layout, with its title in the form Plotly's JSON expects."""
    return dict(title=dict(text=title), **settings)


def _colorbar(title: str) -> dict:
    return dict(title=dict(text=title), thickness=12)


def _short(token: str, limit: int = MAX_LABEL_CHARS) -> str:
    return token if len(token) <= limit else token[: limit - 1] + "…"


def token_axis_labels(tokens: list[str], start: int = 0) -> list[str]:
    """Axis categories "i:token", unique even when the same token occurs twice."""
    return [f"{start + i}:{_short(token)}" for i, token in enumerate(tokens)]


def _window(n: int, limit: int, what: str = "tokens") -> tuple[int, str | None]:
    """First position of the last `limit` of `n`, and the note that says so (None if all fit)."""
    start = max(0, n - limit)
    if start == 0:
        return 0, None
    return start, f"showing the last {limit} of {n} {what} (positions {start}–{n - 1})"


def _join_notes(*notes: str | None) -> str | None:
    return " · ".join(note for note in notes if note) or None


def _f32(array) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)


def _colour_limit(values: np.ndarray, percentile: float = 99) -> tuple[float, str | None]:
    """A symmetric colour range that a few outlier values cannot wash out, and a note when it clips.

    GPT-2's residual stream has a handful of dimensions far larger than the rest; scaled
    to those, every other cell would be white. Ordinary spread (max within 3x of the
    99th percentile of |value|) is shown as it is.
    """
    magnitude = np.abs(values)
    top, limit = float(magnitude.max()), float(np.percentile(magnitude, percentile))
    if limit <= 0 or top <= 3 * limit:
        return max(top, 1e-6), None
    return limit, f"colours clipped at ±{limit:.3g} so a few huge values (up to {top:.3g}) don't wash out the rest"


def empty_figure(message: str) -> go.Figure:
    """A blank panel with a centred message, e.g. "Run a prompt first"."""
    layout = dict(
        annotations=[dict(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                          font=dict(size=16, color="#777"))],
        xaxis=dict(visible=False), yaxis=dict(visible=False))
    return _figure([], _styled(layout, "", height=300))


# ---------------------------------------------------------------------------- embeddings

def embedding_heatmap(matrix: np.ndarray, tokens: list[str], title: str, max_tokens: int = 64) -> go.Figure:
    """Each column is one token's vector x_i in R^d_model, each row one embedding dimension.

    Red is positive, blue negative, white exactly 0. Rows that are red or blue across
    all columns are dimensions the whole prompt shares (GPT-2 has a few huge ones).
    """
    start, note = _window(len(tokens), max_tokens)
    values = _f32(matrix[start:]).T  # (d_model, T')
    limit, clip_note = _colour_limit(values)
    heatmap = dict(
        type="heatmap", z=values, x=token_axis_labels(tokens[start:], start),
        colorscale=RED_BLUE, zmid=0, zmin=-limit, zmax=limit, colorbar=_colorbar("value"),
        hovertemplate="token %{x}<br>dimension %{y}<br>value %{z:.3f}<extra></extra>")
    layout = dict(xaxis=_axis("token (position:token)", type="category"),
                  yaxis=_axis("embedding dimension", autorange="reversed"))
    return _figure([heatmap], _styled(layout, title, height=520, note=_join_notes(note, clip_note)))


def _pca_note(n_points: int) -> str | None:
    if n_points == 1:
        return "one token: PCA needs at least two points to find a direction"
    if n_points == 2:
        return "two tokens span a single direction, so PC2 is 0"
    return None


def embedding_pca(vectors: np.ndarray, tokens: list[str], title: str,
                  pca: tuple[np.ndarray, np.ndarray] | None = None) -> go.Figure:
    """The token vectors projected onto the two directions along which they differ most.

    Tokens close together here have similar vectors; the axis titles say how much of
    the spread (variance) each direction captures; the rest is invisible in 2-D.
    `pca` is `pca_2d(vectors)` if already known.
    """
    coords, variance = pca if pca is not None else pca_2d(vectors)
    labels = token_axis_labels(tokens)
    points = dict(
        type="scatter", x=_f32(coords[:, 0]), y=_f32(coords[:, 1]), mode="markers+text",
        text=[_short(t) for t in tokens], textposition="top center", textfont=dict(size=11),
        marker=dict(size=8, color=ATTENTION_COLOUR),
        hovertext=labels, hovertemplate="%{hovertext}<br>PC1 %{x:.2f}, PC2 %{y:.2f}<extra></extra>")
    layout = dict(xaxis=_axis(f"PC1 ({variance[0]:.1%} of variance)", zeroline=True),
                  yaxis=_axis(f"PC2 ({variance[1]:.1%} of variance)", zeroline=True))
    return _figure([points], _styled(layout, title, height=480, note=_pca_note(len(labels))))


def position_embedding_curve(wpe: np.ndarray, n_prompt: int, max_points: int = 4096,
                             pca: tuple[np.ndarray, np.ndarray] | None = None) -> go.Figure:
    """All learned position vectors W_pe[0..n_ctx-1] in their first two principal components.

    GPT-2 was never told that position 5 is next to position 6, yet neighbouring
    positions learned neighbouring vectors: they trace a smooth curve. The big markers
    are the positions the current prompt uses. `pca` is `pca_2d(wpe)` if already known:
    W_pe is fixed for a model, so the app computes it once at load.
    """
    coords, variance = pca if pca is not None else pca_2d(wpe)
    positions = np.arange(len(wpe))
    step = -(-len(wpe) // max_points)  # ceil: only thins out for n_ctx beyond max_points
    shown = positions[::step]
    curve = dict(
        type="scatter", x=_f32(coords[shown, 0]), y=_f32(coords[shown, 1]), mode="lines+markers",
        name="all positions", line=dict(color="#ccc", width=1), customdata=shown.astype(np.int32),
        marker=dict(size=4, color=shown.astype(np.float32), colorscale=VIRIDIS, colorbar=_colorbar("position i")),
        hovertemplate="position %{customdata}<br>PC1 %{x:.2f}, PC2 %{y:.2f}<extra></extra>")
    prompt = positions[: max(0, min(n_prompt, len(wpe)))]
    rings = dict(
        type="scatter", x=_f32(coords[prompt, 0]), y=_f32(coords[prompt, 1]), mode="markers",
        name="this prompt", customdata=prompt.astype(np.int32),
        marker=dict(size=9, color="rgba(0,0,0,0)", line=dict(color=PICKED_COLOUR, width=2)),
        hovertemplate="prompt position %{customdata}<extra></extra>")
    layout = dict(xaxis=_axis(f"PC1 ({variance[0]:.1%} of variance)"),
                  yaxis=_axis(f"PC2 ({variance[1]:.1%} of variance)"),
                  legend=dict(x=0.01, y=0.99, bgcolor="rgba(255,255,255,0.7)"))
    note = f"every {step}th position drawn" if step > 1 else None
    title = f"Learned position embeddings W_pe (all {len(wpe)} positions, PCA)"
    return _figure([curve, rings], _styled(layout, title, height=520, note=note))


def cosine_similarity_heatmap(vectors: np.ndarray, tokens: list[str], title: str, max_tokens: int = 128) -> go.Figure:
    """cos(x_i, x_j) = x_i·x_j / (|x_i| |x_j|) for every pair of tokens: 1 same direction, 0 unrelated, -1 opposite."""
    start, note = _window(len(tokens), max_tokens)
    labels = token_axis_labels(tokens[start:], start)
    heatmap = dict(
        type="heatmap", z=_f32(cosine_similarity(vectors[start:])), x=labels, y=labels,
        colorscale=RED_BLUE, zmin=-1, zmax=1, zmid=0, colorbar=_colorbar("cosine"),
        hovertemplate="cos(%{y}, %{x}) = %{z:.3f}<extra></extra>")
    layout = dict(xaxis=_axis("token j", type="category", constrain="domain"),
                  yaxis=_axis("token i", type="category", autorange="reversed", scaleanchor="x", constrain="domain"))
    return _figure([heatmap], _styled(layout, title, height=560, note=note))


# ---------------------------------------------------------------------------- attention

# Up to this many queries an attention heatmap sends its weights exactly, as float32: on Gradio's wire
# that is ~6.5 bytes a cell (base64, escaped once more inside the event's JSON), ~240 KB at 192 x 192.
# A bigger window sends whole percents, one byte a cell, so the heatmap of a 1024-token prompt (the
# last 256 tokens) stays under ~300 KB; its subtitle says so (benchmarks/figure_sizes.py).
EXACT_ATTENTION_TOKENS = 192


def attention_heatmap(pattern: np.ndarray, tokens: list[str], title: str, max_tokens: int = 256,
                      query: int | None = None, exact_tokens: int = EXACT_ATTENTION_TOKENS,
                      exact_weights_at: str | None = None) -> go.Figure:
    """One head's attention A = softmax(q k^T / sqrt(d_head) + mask): row i says how query i spreads its attention.

    Each row sums to 1. Cells right of the diagonal (key j > query i) are masked to
    -inf before the softmax, so they are exactly 0: they are drawn grey, not white.
    `query` outlines that row (the one the teaching text works through). A window of
    more than `exact_tokens` tokens shows weights rounded to whole percents;
    `exact_weights_at` names where the exact ones are, for the subtitle.
    """
    start, note = _window(len(tokens), max_tokens)
    labels = token_axis_labels(tokens[start:], start)
    n = len(labels)
    if n <= exact_tokens:
        weights = np.array(pattern[start:, start:], dtype=np.float32)  # a copy (NaNs go in), float16 -> float32
        weights[np.triu_indices(n, k=1)] = np.nan  # j > i: the future
        heatmap = dict(type="heatmap", z=weights, zmin=0, zmax=1, hoverongaps=False, colorbar=_colorbar("weight"),
                       hovertemplate="query %{y} → key %{x}: weight %{z:.3f}<extra></extra>")
        shapes, rounded_note = [], None
    else:
        heatmap, shapes = _rounded_attention(pattern[start:, start:])
        rounded_note = "<br>weights rounded to whole percents"  # on a line of its own
        if exact_weights_at:
            rounded_note += f" (exact: {exact_weights_at})"
    heatmap.update(x=labels, y=labels, colorscale=BLUES)
    layout = dict(
        xaxis=_axis("key position j", type="category", showgrid=False, constrain="domain"),
        yaxis=_axis("query position i", type="category", autorange="reversed", showgrid=False,
                    scaleanchor="x", constrain="domain"),
        plot_bgcolor=MASKED_GREY)  # NaN cells are left undrawn, so the background shows through
    if query is not None and start <= query < len(tokens):
        row = query - start  # category axes place row r at r
        shapes.append(dict(type="rect", x0=-0.5, x1=row + 0.5, y0=row - 0.5, y1=row + 0.5,
                           line=dict(color=PICKED_COLOUR, width=2)))
    if shapes:
        layout["shapes"] = shapes
    if note:
        note += f"; keys before position {start} not shown"
    note = _join_notes("grey = masked: a token cannot see the future", note) + (rounded_note or "")
    return _figure([heatmap], _styled(layout, title, height=620, note=note, header=16 if rounded_note else 0))


def _rounded_attention(weights: np.ndarray) -> tuple[dict, list[dict]]:
    """A big pattern as whole percents, one uint8 a cell, and the grey staircase that covers its future.

    Integers have no NaN to leave the masked cells undrawn, so they are 0 (which their
    weight is) under a grey shape: one path along the diagonal, the same few bytes
    whatever the size.
    """
    n = len(weights)
    percents = np.rint(np.tril(_f32(weights)) * 100).astype(np.uint8)
    heatmap = dict(type="heatmap", z=percents, zmin=0, zmax=100, colorbar=dict(_colorbar("weight"), ticksuffix="%"),
                   hovertemplate="query %{y} → key %{x}: weight ≈ %{z}%<extra></extra>")
    if n < 2:
        return heatmap, []
    # Row r's future is keys r+1 .. n-1: walk the top edge right, then step down and left along the diagonal.
    steps = "".join(f"H{r + 0.5}V{r - 0.5}" for r in range(n - 2, -1, -1))
    future = dict(type="path", path=f"M0.5,-0.5H{n - 0.5}V{n - 1.5}{steps}Z", fillcolor=MASKED_GREY,
                  line=dict(width=0))
    return heatmap, [future]


# The overview packs every head into one uint8 image. Two reserved values draw the gaps
# between tiles and the masked future; attention weights take the 254 levels above them.
# (Low reserved values also keep the JSON small: Plotly escapes "/", which is what base64
# makes of long runs of bytes near 255.)
_GAP, _MASKED, _FIRST_LEVEL = 0, 1, 2
_LEVELS = 255 - _FIRST_LEVEL


def _overview_colourscale() -> list:
    blues = plotly.colors.sequential.Blues
    first = _FIRST_LEVEL / 255
    stops = [[first + (1 - first) * k / (len(blues) - 1), colour] for k, colour in enumerate(blues)]
    return [[_GAP / 255, "white"], [_MASKED / 255, MASKED_GREY]] + stops


def _tile_index(n: int, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of `tile` cells: the first and last position it covers."""
    first = np.arange(tile) * n // tile
    if n <= tile:  # nearest neighbour: a position may get two cells
        return first, first
    return first, np.append(first[1:], n) - 1


def overview_tiles(attention: np.ndarray, tile: int = 24) -> np.ndarray:
    """[..., T, T] -> [..., tile, tile] by the max over each block of cells, as uint8 levels.

    The max, not the mean: a sharp pattern such as a previous-token diagonal is one
    cell per row, and averaging it with its zero neighbours would make it invisible.
    For a 1024-token prompt on 124M this reads 150 M weights, and the result does not
    depend on which head is selected, so callers may keep it (`tiles=` below).

    The weights are compared as stored (float16 in a trace), without converting them: read
    as unsigned integers of the same width, floats that are >= 0 (attention weights are)
    keep their order, and integer maxima are fast where numpy's float16 arithmetic is
    emulated. Only the small result is turned back into numbers.
    """
    n = attention.shape[-1]
    first, last = _tile_index(n, tile)
    if n <= tile:
        small = attention[..., first[:, None], first[None, :]]
    else:
        weights = np.ascontiguousarray(attention)
        bits = weights.view(np.dtype(f"u{weights.itemsize}"))
        small = np.maximum.reduceat(np.maximum.reduceat(bits, first, axis=-1), first, axis=-2).view(weights.dtype)
    levels = (_FIRST_LEVEL + np.rint(np.clip(_f32(small), 0, 1) * _LEVELS)).astype(np.uint8)
    levels[..., first[None, :] > last[:, None]] = _MASKED  # every key in the block is in the future
    return levels


def _tile_label(label: str) -> str:
    """The first word of a head label, to fit a tile: "previous-token" -> "previous"."""
    return (label.replace("-", " ").split() or [""])[0]


def attention_overview(attention: np.ndarray, labels: list[list[str]], selected: tuple[int, int] | None = None,
                       tile: int = 24, tiles: np.ndarray | None = None) -> go.Figure:
    """Every head of every layer at a glance: one small attention pattern per tile.

    Rows are layers (layer 0 at the top), columns heads. Each tile is that head's
    pattern (queries down, keys across) shrunk to tile x tile cells; a cell shows the
    strongest weight in the block it covers. Hover a tile for its label. `tiles` is
    `overview_tiles(attention, tile)` if the caller already has it.
    """
    n_layer, n_head = attention.shape[:2]
    small = overview_tiles(attention, tile) if tiles is None else tiles
    if small.shape != (n_layer, n_head, tile, tile):
        raise ValueError(f"tiles of shape {small.shape} do not fit {n_layer} x {n_head} heads of {tile} x {tile}")
    step = tile + 1  # one blank cell between tiles
    image = np.full((n_layer * step - 1, n_head * step - 1), _GAP, dtype=np.uint8)
    for layer in range(n_layer):
        for head in range(n_head):
            image[layer * step: layer * step + tile, head * step: head * step + tile] = small[layer, head]
    picture = dict(type="heatmap", z=image, colorscale=_overview_colourscale(), zmin=0, zmax=255, showscale=False,
                   hoverinfo="skip")
    centres = np.arange(max(n_layer, n_head)) * step + (tile - 1) / 2
    layer_of, head_of = np.divmod(np.arange(n_layer * n_head), n_head)
    # Invisible, one cell per tile, over the picture: it carries the hover text. One image in the page,
    # where a marker per tile was 144 more elements for the browser to style and lay out at each redraw.
    hovers = dict(
        type="heatmap", z=np.zeros((n_layer, n_head), dtype=np.uint8), x0=(tile - 1) / 2, dx=step,
        y0=(tile - 1) / 2, dy=step, opacity=0, showscale=False, hoverlabel=dict(bgcolor=ATTENTION_COLOUR),
        hovertext=[[f"layer {l}, head {h}: {labels[l][h]}" for h in range(n_head)] for l in range(n_layer)],
        hovertemplate="%{hovertext}<extra></extra>")
    names = dict(  # the label, small, in each tile's empty (masked) upper-right corner
        type="scatter", x=_f32(head_of * step + tile - 0.5), y=_f32(layer_of * step - 0.5), mode="text",
        hoverinfo="skip", showlegend=False, text=[_tile_label(labels[l][h]) for l, h in zip(layer_of, head_of)],
        textposition="bottom left", textfont=dict(size=9, color="#333"))
    layout = dict(
        xaxis=_axis("head", tickvals=centres[:n_head], ticktext=[str(h) for h in range(n_head)],
                    showgrid=False, zeroline=False, constrain="domain"),
        yaxis=_axis("layer", tickvals=centres[:n_layer], ticktext=[str(l) for l in range(n_layer)],
                    showgrid=False, zeroline=False, autorange="reversed", scaleanchor="x", constrain="domain"))
    # The page moves the selection frame itself (ui.FRAME_SELECTED_HEAD, the same formula in JavaScript),
    # reading the tile geometry from here.
    layout["meta"] = dict(tile=tile, step=step)
    if selected is not None:
        layer, head = selected
        layout["shapes"] = [dict(type="rect", x0=head * step - 1, x1=head * step + tile,
                                 y0=layer * step - 1, y1=layer * step + tile, line=dict(color=PICKED_COLOUR, width=3))]
    note = "each tile: queries down, keys across; darker = more attention (max over the cells a pixel covers)"
    title = "All heads: attention patterns by layer and head"
    return _figure([picture, hovers, names], _styled(layout, title, height=720, note=note))


_SCORE_TITLES = {"previous_token": "previous-token", "first_token": "first-token (sink)", "self": "self",
                 "induction": "induction", "entropy": "entropy (0 sharp, 1 uniform)"}
# The same titles in short lines, above the small maps: five maps side by side leave each about 70 px on
# a phone (style.css gives a figure 560 px there), where one-line titles would print over each other.
_SCORE_TITLE_LINES = {"previous_token": ("previous", "token"), "first_token": ("first", "token", "(sink)"),
                      "self": ("self",), "induction": ("induction",), "entropy": ("entropy", "0 sharp,", "1 uniform")}
_SUBPLOT_GAP = 0.03  # horizontal space between the small maps, as a fraction of the plot width


def head_scores_heatmap(scores: dict[str, np.ndarray]) -> go.Figure:
    """One small layer x head map per score (see heads.py), all on the same [0, 1] colour scale.

    A bright cell in "previous-token" is a head whose query i mostly looks at key i-1;
    in "induction", a head that completes repeated patterns. Missing scores (None) are skipped.
    """
    present = {name: values for name, values in scores.items() if values is not None}
    if not present:
        return empty_figure("No head scores yet")
    # One row of small maps side by side, laid out as make_subplots(rows=1, cols=n, shared_yaxes=True)
    # would: map c draws on axes x{c}/y{c} (Plotly calls the first pair plain "x"/"y"), its x axis
    # takes one slice of the width, every y axis follows the first one ("matches") and only the
    # first shows tick labels, and each map's title is an annotation just above its slice.
    width = (1 - _SUBPLOT_GAP * (len(present) - 1)) / len(present)
    data, layout, subplot_titles = [], {}, []
    for col, (name, values) in enumerate(present.items()):
        title = _SCORE_TITLES.get(name, name.replace("_", " "))
        suffix = str(col + 1) if col else ""
        left = col * (width + _SUBPLOT_GAP)
        data.append(dict(type="heatmap", z=_f32(values), coloraxis="coloraxis", name=name,
                         xaxis="x" + suffix, yaxis="y" + suffix,
                         hovertemplate=f"layer %{{y}}, head %{{x}}<br>{title}: %{{z:.2f}}<extra></extra>"))
        layout["xaxis" + suffix] = _axis("head", anchor="y" + suffix, domain=[left, left + width], dtick=1)
        shared = _axis("layer") if col == 0 else dict(matches="y", showticklabels=False)
        layout["yaxis" + suffix] = dict(anchor="x" + suffix, domain=[0.0, 1.0], autorange="reversed", dtick=1, **shared)
        lines = _SCORE_TITLE_LINES.get(name, (title,))
        subplot_titles.append(dict(text="<br>".join(lines), x=left + width / 2, xref="paper", xanchor="center",
                                   y=1.0, yref="paper", yanchor="bottom", showarrow=False, font=dict(size=12)))
    layout["annotations"] = subplot_titles
    layout["coloraxis"] = dict(colorscale=BLUES, cmin=0, cmax=1, colorbar=_colorbar("score"))
    title = "Head scores: what each head tends to attend to"
    tallest = max(len(_SCORE_TITLE_LINES.get(name, (name,))) for name in present)
    return _figure(data, _styled(layout, title, height=400 + 15 * tallest, header=10 + 16 * tallest))


# ---------------------------------------------------------------------------- residual stream

def residual_layer_names(n_layer: int) -> list[str]:
    """Names of x_0 .. x_L: "embeddings", then "after block 0" ... "after block L-1" (0-based, like h.0)."""
    return ["embeddings"] + [f"after block {l}" for l in range(n_layer)]


def residual_norm_heatmap(norms: np.ndarray, tokens: list[str]) -> go.Figure:
    """||x_l|| for every layer l (rows, embeddings at the top) and position i (columns).

    The stream only accumulates, x_l = x_{l-1} + attn_l + mlp_l, so norms tend to grow
    with depth. GPT-2's first position grows far larger than the rest (it serves as an
    attention sink), so the colours are scaled to the other positions when it would
    dominate them; hover shows the true values.
    """
    values = _f32(norms)
    limit, clip_note = float(values.max()), None
    rest = float(values[:, 1:].max(initial=0.0))  # GPT-2's position 0 is a huge outlier
    if 0 < 2 * rest < limit:
        limit, clip_note = rest, f"colours clipped at {rest:.3g}: position 0 reaches {values.max():.3g} and would wash out the rest"
    heatmap = dict(
        type="heatmap", z=values, x=token_axis_labels(tokens), y=residual_layer_names(len(values) - 1),
        colorscale=ORANGES, zmin=0, zmax=limit, colorbar=_colorbar("‖x‖"),
        hovertemplate="%{y}, token %{x}<br>‖x‖ = %{z:.1f}<extra></extra>")
    layout = dict(xaxis=_axis("token (position:token)", type="category"),
                  yaxis=_axis("residual stream", type="category", autorange="reversed"))
    title = "Size of the residual stream ‖x_l‖ at each layer and position"
    return _figure([heatmap], _styled(layout, title, height=460, note=clip_note))


def layer_contributions(attn_norms: np.ndarray, mlp_norms: np.ndarray, position: int | None = None) -> go.Figure:
    """How much each block writes into the residual stream: ||attn_l(x)|| next to ||mlp_l(x)||.

    Averaged over positions, or at one `position`. Big bars are the layers that change
    the stream most; small ones barely touch it.
    """
    attn, mlp = np.asarray(attn_norms), np.asarray(mlp_norms)
    if position is None:
        attn, mlp, where = attn.mean(-1), mlp.mean(-1), "mean over positions"
    else:
        attn, mlp, where = attn[:, position], mlp[:, position], f"at position {position % attn.shape[-1]}"
    blocks = [f"block {l}" for l in range(len(attn))]
    data = [dict(type="bar", x=blocks, y=_f32(values), name=name, marker=dict(color=colour),
                 hovertemplate=f"%{{x}}<br>{name}: %{{y:.1f}}<extra></extra>")
            for name, values, colour in (("attention ‖attn_l‖", attn, ATTENTION_COLOUR), ("MLP ‖mlp_l‖", mlp, MLP_COLOUR))]
    layout = dict(barmode="group", legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"),
                  xaxis=_axis("block"), yaxis=_axis(f"‖output‖ ({where})"))
    title = f"What each block adds to the residual stream ({where})"
    return _figure(data, _styled(layout, title, height=400, header=30))


# ---------------------------------------------------------------------------- predictions

def logit_lens_grid(top_tokens: list[list[list[str]]], top_probs: np.ndarray, layer_names: list[str],
                    position_labels: list[str], max_positions: int = 24) -> go.Figure:
    """The logit lens: softmax(LN_f(x_l) W_te^T) read at every layer (rows) and position (columns).

    Each cell names the top-1 next token the model would predict if it stopped after
    that layer; its colour is that token's probability. Read a column top to bottom
    to watch a prediction form.
    """
    start, note = _window(len(position_labels), max_positions, what="positions")
    probs = _f32(np.asarray(top_probs)[:, start:])  # [L', P', k]
    tokens = [row[start:] for row in top_tokens]
    columns = position_labels[start:]
    hover = [[f"{name} · {column}<br>" + "<br>".join(f"{_short(t, 20)}  {p:.1%}" for t, p in zip(cell, cell_probs))
              for column, cell, cell_probs in zip(columns, row, row_probs)]
             for name, row, row_probs in zip(layer_names, tokens, probs)]
    heatmap = dict(
        type="heatmap", z=probs[..., 0], x=columns, y=layer_names, colorscale=BLUES, zmin=0, zmax=1,
        text=[[_short(cell[0], 7) for cell in row] for row in tokens], texttemplate="%{text}", textfont=dict(size=10),
        hovertext=hover, hovertemplate="%{hovertext}<extra></extra>", colorbar=_colorbar("top-1 p"))
    layout = dict(xaxis=_axis("position (each cell predicts the token after it)", type="category"),
                  yaxis=_axis("layer read", type="category", autorange="reversed"))
    height = max(320, 26 * len(layer_names) + 140)
    title = "Logit lens: the top next-token guess after each layer"
    return _figure([heatmap], _styled(layout, title, height=height, note=note))


def next_token_bars(token_labels: list[str], probs_before: np.ndarray, probs_after: np.ndarray, kept: np.ndarray,
                    title: str, chosen: int | None = None) -> go.Figure:
    """The next-token distribution before and after truncation, most likely at the top.

    Light bars: p_T = softmax(z / T), temperature applied. Solid bars: what is really
    sampled from, q_i = p_T,i / sum(kept p_T) for kept tokens, 0 for the rest. Dropped
    tokens are grey, below the dashed cutoff line.
    """
    n = len(token_labels)
    if chosen is not None and not 0 <= chosen < n:
        raise ValueError(f"chosen must index the {n} tokens shown, got {chosen}")
    kept = np.asarray(kept, dtype=bool)
    rows = np.arange(n)
    ticks = [_short(label) if keep else f"<span style='color:#aaa'>{_short(label)}</span>"
             for label, keep in zip(token_labels, kept)]
    hover = [f"{label}<br>before truncation {b:.2%}<br>" + (f"sampled with {a:.2%}" if keep else "dropped")
             for label, b, a, keep in zip(token_labels, probs_before, probs_after, kept)]
    data = [
        dict(type="bar", y=rows, x=_f32(probs_before), orientation="h", width=0.85,
             name="before truncation (temperature applied)",
             marker=dict(color=np.where(kept, "#deebf7", "#eeeeee").tolist(),
                         line=dict(color=np.where(kept, "#6baed6", "#bbbbbb").tolist(), width=1)),
             hovertext=hover, hovertemplate="%{hovertext}<extra></extra>"),
        dict(type="bar", y=rows, x=_f32(probs_after), orientation="h", width=0.45, name="after truncation, renormalised",
             marker=dict(color=ATTENTION_COLOUR), hovertext=hover, hovertemplate="%{hovertext}<extra></extra>"),
    ]
    layout = dict(barmode="overlay", legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"), bargap=0.1,
                  xaxis=_axis("probability", tickformat=".3~%", rangemode="tozero"),
                  yaxis=_axis("next token", tickvals=rows, ticktext=ticks, autorange="reversed", showgrid=False))
    annotations = []
    if kept.any() and rows[kept].max() < n - 1:
        cut = float(rows[kept].max() + 0.5)
        # A dashed line across the whole plot width ("x domain": 0 is the left edge, 1 the right).
        layout["shapes"] = [dict(type="line", xref="x domain", x0=0, x1=1, yref="y", y0=cut, y1=cut,
                                 line=dict(color="#555", dash="dash", width=1))]
        annotations.append(dict(x=1, xref="paper", y=cut, text="cutoff: tokens below are dropped", showarrow=False,
                                xanchor="right", yanchor="bottom", font=dict(size=11, color="#555")))
    if chosen is not None:
        tip = float(max(probs_before[chosen], probs_after[chosen]))
        annotations.append(dict(x=tip, y=int(chosen), text="◀ picked", showarrow=False, xanchor="left", xshift=4,
                                font=dict(color=PICKED_COLOUR, size=13)))
    if annotations:
        layout["annotations"] = annotations
    return _figure(data, _styled(layout, title, height=max(320, 22 * n + 150), header=30))


# ---------------------------------------------------------------------------- inside a block

def layer_norm_before_after(before: np.ndarray, after: np.ndarray, title: str) -> go.Figure:
    """One position's d_model numbers going into a LayerNorm (left) and coming out (right), by dimension.

    Each side has its own y axis, because LayerNorm changes the scale: the input may
    reach hundreds, the output is (x − mean)/std · γ + β. A dashed line marks each side's mean.
    """
    before, after = _f32(before), _f32(after)
    dims = np.arange(len(before), dtype=np.int32)
    data, layout, titles = [], {}, []
    for col, (name, values, colour) in enumerate((("input x", before, ATTENTION_COLOUR),
                                                  ("output LN(x)", after, MLP_COLOUR))):
        suffix = str(col + 1) if col else ""
        left = col * 0.55
        data.append(dict(type="scatter", x=dims, y=values, mode="markers", name=name, showlegend=False,
                         marker=dict(size=3, color=colour), xaxis="x" + suffix, yaxis="y" + suffix,
                         hovertemplate=f"{name}<br>dimension %{{x}}: %{{y:.3f}}<extra></extra>"))
        layout["xaxis" + suffix] = _axis("dimension", anchor="y" + suffix, domain=[left, left + 0.45])
        layout["yaxis" + suffix] = _axis("value", anchor="x" + suffix, zeroline=True)
        mean, std = float(values.mean()), float(values.std())
        titles.append(dict(text=f"{name}: mean {mean:.2f}, std {std:.2f}", x=left + 0.225, xref="paper",
                           xanchor="center", y=1.0, yref="paper", yanchor="bottom", showarrow=False,
                           font=dict(size=14)))
        data.append(dict(type="scatter", x=[0, len(values) - 1], y=[mean, mean], mode="lines", showlegend=False,
                         line=dict(color="#555", dash="dash", width=1), xaxis="x" + suffix, yaxis="y" + suffix,
                         hoverinfo="skip"))
    layout["annotations"] = titles
    return _figure(data, _styled(layout, title, height=380, header=30))


NEURON_LABEL_GAP = 14  # px between two neuron labels' centres: a 10 px number and a little air


def _spread(wanted: np.ndarray, gap: float, highest: float) -> np.ndarray:
    """Positions (px, in ascending order) moved apart to at least `gap` each, none past `highest`.

    Each label goes as close to its own place as the labels before it allow; if that pushes the last one
    past `highest`, they are pushed back from there."""
    placed = np.array(wanted, dtype=np.float64)
    for i in range(1, len(placed)):
        placed[i] = max(placed[i], placed[i - 1] + gap)
    for i in range(len(placed) - 1, -1, -1):
        placed[i] = min(placed[i], highest if i == len(placed) - 1 else placed[i + 1] - gap)
    return placed


def gelu_curve(pre: np.ndarray, post: np.ndarray, top: np.ndarray, title: str) -> go.Figure:
    """GPT-2's GELU as a curve, and every MLP neuron of one position as a point on it.

    x: the neuron's pre-activation (u W_fc + b_fc), y: GELU of it. Neurons left of 0
    are almost switched off (GELU ≥ −0.17 there); the `top` ids, the most active, are
    marked and numbered.
    """
    pre, post = _f32(pre), _f32(post)
    low, high = float(min(pre.min(), -3.0)), float(max(pre.max(), 3.0))
    grid = np.linspace(low, high, 200)
    curve_y = 0.5 * grid * (1 + np.tanh(np.sqrt(2 / np.pi) * (grid + 0.044715 * grid**3)))
    ids = np.arange(len(pre), dtype=np.int32)
    top = np.asarray(top, dtype=np.int64)
    data = [
        dict(type="scatter", x=_f32(grid), y=_f32(curve_y), mode="lines", name="GELU(u)",
             line=dict(color="#999", width=2), hoverinfo="skip"),
        dict(type="scatter", x=pre, y=post, mode="markers", name=f"all {len(pre):,} neurons",
             marker=dict(size=4, color=ATTENTION_COLOUR, opacity=0.5), customdata=ids,
             hovertemplate="neuron %{customdata}<br>before %{x:.2f} → after %{y:.2f}<extra></extra>"),
        dict(type="scatter", x=pre[top], y=post[top], mode="markers", name="most active",
             marker=dict(size=8, color=PICKED_COLOUR), customdata=top.astype(np.int32),
             hovertemplate="neuron %{customdata}<br>before %{x:.2f} → after %{y:.2f}<extra></extra>"),
    ]
    height, note = 420, f"{int((pre > 0).sum()):,} of {len(pre):,} pre-activations are positive"
    layout = _styled(dict(legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom")), title, height, note, header=30)
    # The most active neurons sit close together on the curve, so their numbers, written beside each point,
    # would overprint each other. Each number stands up and to the left instead, in the empty corner above
    # the rising curve, moved up to keep NEURON_LABEL_GAP px from the one below, with a thin line to its
    # point. The y range is fixed here (what Plotly's autorange would choose, give or take) so that data
    # units convert to pixels.
    y_low = float(min(curve_y.min(), post.min()))
    y_high = float(max(curve_y.max(), post.max()))
    pad = 0.06 * (y_high - y_low)
    y_range = [y_low - pad, y_high + pad]
    plot_px = height - layout["margin"]["t"] - layout["margin"]["b"]
    to_px = plot_px / (y_range[1] - y_range[0])
    lowest_first = top[np.argsort(post[top], kind="stable")]
    points_px = (post[lowest_first].astype(np.float64) - y_range[0]) * to_px  # up from the plot's bottom
    labels_px = _spread(points_px + 8, NEURON_LABEL_GAP, highest=plot_px - NEURON_LABEL_GAP / 2)
    layout.update(
        xaxis=_axis("pre-activation u (before GELU)", zeroline=True),
        yaxis=_axis("GELU(u) (after)", zeroline=True, range=y_range),
        annotations=[dict(x=float(pre[n]), y=float(post[n]), text=str(n), showarrow=True, arrowhead=0,
                          arrowwidth=1, arrowcolor="#999", ax=-34, ay=float(point - label), font=dict(size=10))
                     for n, point, label in zip(lowest_first, points_px, labels_px)])
    return _figure(data, layout)


def head_walk_bars(tokens: list[str], weights: np.ndarray, value_norms: np.ndarray, title: str,
                   max_keys: int = 64) -> go.Figure:
    """One query's attention weights w_j over its visible keys, next to each value's size ‖v_j‖.

    The head's output is z = Σ w_j v_j: a key contributes by its weight (blue bars) times
    its value vector, whose size is the orange bar. Long prompts show the last `max_keys` keys.
    """
    start, note = _window(len(weights), max_keys, what="keys")
    keys = token_axis_labels(tokens[start:len(weights)], start)
    # Two y axes, one bar pair per key. barmode="group" alone would draw the second axis's bars on top of
    # the first's (orange over blue reads brown, like neither legend entry); an offsetgroup each puts them
    # side by side, so each bar is drawn in its own legend colour.
    data = [
        dict(type="bar", x=keys, y=_f32(weights[start:]), name="weight wⱼ", marker=dict(color=ATTENTION_COLOUR),
             offsetgroup="weight", hovertemplate="key %{x}<br>weight %{y:.3f}<extra></extra>"),
        dict(type="bar", x=keys, y=_f32(value_norms[start:]), name="‖vⱼ‖", marker=dict(color=MLP_COLOUR),
             offsetgroup="value size", yaxis="y2", hovertemplate="key %{x}<br>‖v‖ = %{y:.2f}<extra></extra>"),
    ]
    layout = dict(barmode="group", legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"),
                  xaxis=_axis("key (position:token)", type="category"),
                  yaxis=_axis("weight", range=[0, 1]),
                  yaxis2=_axis("‖v‖", overlaying="y", side="right", rangemode="tozero", showgrid=False))
    return _figure(data, _styled(layout, title, height=380, note=note, header=30))


# ---------------------------------------------------------------------------- training

def training_curve(tokens_seen: np.ndarray, train_loss: np.ndarray, val_loss: np.ndarray, marked_tokens: float,
                   marked_label: str, snapshot_tokens: np.ndarray | None = None, note: str | None = None) -> go.Figure:
    """Loss (nats per token) against training tokens seen, with one snapshot marked.

    `train_loss` is the mean over the steps since the previous evaluation (NaN where there
    is none, as at step 0); `val_loss` is measured on held-out text. `snapshot_tokens` puts a
    small tick where each kept snapshot sits, so the slider's stops can be seen on the curve.
    """
    millions = _f32(np.asarray(tokens_seen, dtype=np.float64) / 1e6)
    data = [
        dict(type="scatter", mode="lines", x=millions, y=_f32(train_loss), name="training loss",
             line=dict(color=MLP_COLOUR, width=2), connectgaps=False,
             hovertemplate="%{x:.1f}M tokens: training loss %{y:.2f}<extra></extra>"),
        dict(type="scatter", mode="lines+markers", x=millions, y=_f32(val_loss), name="validation loss",
             line=dict(color=ATTENTION_COLOUR, width=2), marker=dict(size=4),
             hovertemplate="%{x:.1f}M tokens: validation loss %{y:.2f}<extra></extra>"),
    ]
    if snapshot_tokens is not None and len(snapshot_tokens):
        data.append(dict(type="scatter", mode="markers", x=_f32(np.asarray(snapshot_tokens) / 1e6),
                         y=np.zeros(len(snapshot_tokens), dtype=np.float32), yaxis="y2", name="snapshots",
                         marker=dict(symbol="triangle-up", size=9, color="#888"),
                         hovertemplate="snapshot after %{x:.1f}M tokens<extra></extra>"))
    marked = marked_tokens / 1e6
    layout = dict(
        xaxis=_axis("training tokens seen (millions)", rangemode="tozero"),
        yaxis=_axis("loss (nats per token)", rangemode="tozero"),
        yaxis2=dict(overlaying="y", range=[0, 1], visible=False, fixedrange=True),
        legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"),
        shapes=[dict(type="line", x0=marked, x1=marked, yref="paper", y0=0, y1=1,
                     line=dict(color=PICKED_COLOUR, width=2, dash="dot"))],
        annotations=[dict(x=marked, y=1, yref="paper", text=marked_label, showarrow=False, xanchor="left",
                          yanchor="top", xshift=4, font=dict(color=PICKED_COLOUR))])
    return _figure(data, _styled(layout, "Loss while training", height=400, note=note, header=30))


# ---------------------------------------------------------------------------- experiments

SURPRISE_LIMIT = 10.0  # nats: p = e^-10 ≈ 0.005 %; rarer tokens are all drawn the darkest colour
REDS = plotly.colors.get_colorscale("Reds")
INCREASE_COLOUR, DECREASE_COLOUR = "#2ca02c", "#d62728"


def surprise_tokens(tokens: list[str], surprise: np.ndarray, model_name: str = "GPT-2",
                    per_row: int = 16) -> go.Figure:
    """The prompt as rows of tokens, each coloured by its surprise -ln p(t_i | t_<i), the loss on that token.

    The first token has nothing before it to be predicted from, so it is grey. Hover says
    the probability the model gave the token that really came, e.g. "GPT-2 gave ␣Paris 71 %".
    """
    n = len(tokens)
    if len(surprise) != max(0, n - 1):
        raise ValueError(f"{n} tokens need {max(0, n - 1)} surprise values, got {len(surprise)}")
    rows = -(-n // per_row)
    values = np.full(rows * per_row, np.nan, dtype=np.float32)
    values[1:n] = surprise
    text = np.full(rows * per_row, "", dtype=object)
    text[:n] = [_short(token) for token in tokens]
    hover = np.full(rows * per_row, "", dtype=object)
    hover[0] = f"{plotly_escape(tokens[0])}: the first token, nothing before it to predict it from"
    for i in range(1, n):
        p = float(np.exp(-surprise[i - 1]))
        hover[i] = (f"{model_name} gave {plotly_escape(tokens[i])} {_percent(p)}"
                    f"<br>surprise -ln p = {surprise[i - 1]:.2f} nats")
    heatmap = dict(
        type="heatmap", z=values.reshape(rows, per_row), text=text.reshape(rows, per_row).tolist(),
        texttemplate="%{text}", textfont=dict(size=11), hovertext=hover.reshape(rows, per_row).tolist(),
        hovertemplate="%{hovertext}<extra></extra>", colorscale=REDS, zmin=0, zmax=SURPRISE_LIMIT,
        hoverongaps=False, xgap=2, ygap=2, colorbar=_colorbar("-ln p (nats)"))
    # The first token gets a grey cell of its own (a second heatmap, of one cell at (0, 0)), so that the
    # cells left empty after the last token stay white and are not mistaken for it.
    first_cell = dict(type="heatmap", z=np.zeros((1, 1), dtype=np.float32), showscale=False, xgap=2, ygap=2,
                      colorscale=[[0, MASKED_GREY], [1, MASKED_GREY]], hovertext=[[hover[0]]],
                      hovertemplate="%{hovertext}<extra></extra>")
    layout = dict(xaxis=dict(visible=False), yaxis=dict(visible=False, autorange="reversed"))
    mean = float(np.mean(surprise)) if len(surprise) else float("nan")
    note = (f"mean {mean:.2f} nats per token (the loss) · perplexity {np.exp(mean):.1f} · "
            "grey: the first token is never predicted") if len(surprise) else "one token: nothing is predicted yet"
    title = f"How surprised {model_name} was by each token"
    return _figure([first_cell, heatmap], _styled(layout, title, height=max(260, 34 * rows + 160), note=note))


def _percent(p: float) -> str:
    return f"{p:.0%}" if p >= 0.01 else f"{p * 100:.2g} %"


def plotly_escape(text: str) -> str:
    """Plotly reads a little HTML in labels: show "<" and ">" of a token as themselves."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def before_after_bars(token_labels: list[str], before: np.ndarray, after: np.ndarray, title: str,
                      after_name: str = "after") -> go.Figure:
    """The next-token distribution before and after an intervention, bar beside bar for each token."""
    if not len(token_labels) == len(before) == len(after):
        raise ValueError("token_labels, before and after must have the same length")
    rows = np.arange(len(token_labels))
    ticks = [_short(label) for label in token_labels]
    data = [dict(type="bar", y=rows, x=_f32(values), orientation="h", name=name, marker=dict(color=colour),
                 hovertext=[f"{plotly_escape(label)}: {name} {p:.2%}" for label, p in zip(token_labels, values)],
                 hovertemplate="%{hovertext}<extra></extra>")
            for name, values, colour in (("before", before, "#9ecae1"), (after_name, after, ATTENTION_COLOUR))]
    layout = dict(barmode="group", legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"),
                  xaxis=_axis("probability", tickformat=".3~%", rangemode="tozero"),
                  yaxis=_axis("next token", tickvals=rows, ticktext=ticks, autorange="reversed", showgrid=False))
    return _figure(data, _styled(layout, title, height=max(320, 26 * len(rows) + 150), header=30))


def moved_most_bars(token_labels: list[str], before: np.ndarray, after: np.ndarray, title: str) -> go.Figure:
    """How much each token's probability changed, in percentage points: green rose, red fell."""
    if not len(token_labels) == len(before) == len(after):
        raise ValueError("token_labels, before and after must have the same length")
    change = 100 * (np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64))
    rows = np.arange(len(token_labels))
    bars = dict(type="bar", y=rows, x=_f32(change), orientation="h",
                marker=dict(color=np.where(change >= 0, INCREASE_COLOUR, DECREASE_COLOUR).tolist()),
                hovertext=[f"{plotly_escape(label)}: {b:.2%} → {a:.2%}" for label, b, a in zip(token_labels, before, after)],
                hovertemplate="%{hovertext}<extra></extra>")
    layout = dict(xaxis=_axis("change in probability (percentage points)", zeroline=True),
                  yaxis=_axis("token", tickvals=rows, ticktext=[_short(t) for t in token_labels],
                              autorange="reversed", showgrid=False))
    return _figure([bars], _styled(layout, title, height=max(300, 26 * len(rows) + 130)))


def branch_tree(parents: list[int | None], labels: list[str], probs: np.ndarray, current: int,
                title: str = "Branches: every token tried, and the path you are on") -> go.Figure:
    """A generation tree, left to right: node i is token labels[i], chosen with probability probs[i].

    parents[i] is the node before i (None for the root, the prompt). Nodes on the path from
    the root to `current` are drawn red and joined by thick lines; other branches are grey.
    """
    n = len(parents)
    if not n == len(labels) == len(probs) or not 0 <= current < n:
        raise ValueError("parents, labels and probs must have one entry per node, and current must be one of them")
    children: list[list[int]] = [[] for _ in range(n)]
    depth = np.zeros(n, dtype=np.int32)
    for node, parent in enumerate(parents):
        if parent is not None:
            children[parent].append(node)
            depth[node] = depth[parent] + 1  # parents come before their children
    row = np.zeros(n, dtype=np.float32)
    next_leaf = [0]

    def place(node):  # leaves take successive rows; a parent sits level with its first child
        if not children[node]:
            row[node] = next_leaf[0]
            next_leaf[0] += 1
            return
        for child in children[node]:
            place(child)
        row[node] = row[children[node][0]]

    for root in (i for i, parent in enumerate(parents) if parent is None):
        place(root)
    path, node = set(), current
    while node is not None:
        path.add(node)
        node = parents[node]
    edges = {True: ([], []), False: ([], [])}
    for node, parent in enumerate(parents):
        if parent is not None:
            xs, ys = edges[node in path]
            xs += [int(depth[parent]), int(depth[node]), None]
            ys += [float(row[parent]), float(row[node]), None]
    data = [dict(type="scatter", x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                 line=dict(color=PICKED_COLOUR if on_path else "#bbbbbb", width=3 if on_path else 1))
            for on_path, (xs, ys) in edges.items() if xs]
    on_path = np.array([i in path for i in range(n)])
    data.append(dict(
        type="scatter", x=depth, y=row, mode="markers+text", text=[_short(label) for label in labels],
        textposition="top center", textfont=dict(size=11), showlegend=False,
        marker=dict(size=np.where(np.arange(n) == current, 14, 9).tolist(),
                    color=np.where(on_path, PICKED_COLOUR, "#888888").tolist()),
        hovertext=[f"{plotly_escape(label)}" + ("" if parents[i] is None else f"<br>chosen with p = {float(p):.1%}")
                   for i, (label, p) in enumerate(zip(labels, probs))],
        hovertemplate="%{hovertext}<extra></extra>"))
    # Room above the first row and beside the last step, so the labels drawn above the nodes are not cut off.
    layout = dict(xaxis=_axis("step", dtick=1, zeroline=False, range=[-0.4, int(depth.max()) + 0.4]),
                  yaxis=dict(visible=False, range=[next_leaf[0] - 0.5, -0.8]))
    return _figure(data, _styled(layout, title, height=max(260, 40 * next_leaf[0] + 140)))


def top_token_bars(token_labels: list[str], probs: np.ndarray, title: str) -> go.Figure:
    """One model's most likely next tokens, most likely on top (two models with different vocabularies
    cannot share one axis of tokens, so a comparison draws one of these per model)."""
    if len(token_labels) != len(probs):
        raise ValueError("token_labels and probs must have the same length")
    rows = np.arange(len(token_labels))
    bars = dict(type="bar", y=rows, x=_f32(probs), orientation="h", marker=dict(color=ATTENTION_COLOUR),
                hovertext=[f"{plotly_escape(label)}: {p:.2%}" for label, p in zip(token_labels, probs)],
                hovertemplate="%{hovertext}<extra></extra>")
    layout = dict(xaxis=_axis("probability", tickformat=".3~%", rangemode="tozero"),
                  yaxis=_axis("next token", tickvals=rows, ticktext=[_short(t) for t in token_labels],
                              autorange="reversed", showgrid=False))
    return _figure([bars], _styled(layout, title, height=max(300, 26 * len(rows) + 120)))


KIND_COLOURS = ("#d62728", "#2171b5", "#6a51a3", "#31a354", "#bdbdbd", "#f0f0f0")


def head_type_map(labels: list[list[str]], kinds: list[str], title: str) -> go.Figure:
    """Every head of a model as a cell (row: layer, column: head), coloured and named by its label.

    `kinds` fixes the colour of each label (at most six), so two maps drawn with the same kinds compare.
    """
    if not 0 < len(kinds) <= len(KIND_COLOURS):
        raise ValueError(f"kinds: 1 to {len(KIND_COLOURS)} labels, got {len(kinds)}")
    index = {kind: i for i, kind in enumerate(kinds)}
    unknown = {label for row in labels for label in row} - set(index)
    if unknown:
        raise ValueError(f"labels not among the kinds: {sorted(unknown)}")
    z = np.array([[index[label] for label in row] for row in labels], dtype=np.float32)
    n = len(kinds)
    scale = [[edge, colour] for i, colour in enumerate(KIND_COLOURS[:n]) for edge in (i / n, (i + 1) / n)]
    cells = dict(type="heatmap", z=z, zmin=-0.5, zmax=n - 0.5, colorscale=scale, showscale=False, xgap=2, ygap=2,
                 text=[[_tile_label(label) for label in row] for row in labels], texttemplate="%{text}",
                 textfont=dict(size=10), customdata=labels,
                 hovertemplate="layer %{y}, head %{x}: %{customdata}<extra></extra>")
    layout = dict(xaxis=_axis("head", dtick=1), yaxis=_axis("layer", dtick=1, autorange="reversed"))
    legend = " · ".join(f"<span style='color:{KIND_COLOURS[i]}'>■</span> {kind}" for i, kind in enumerate(kinds))
    return _figure([cells], _styled(layout, title, height=max(260, 22 * len(labels) + 150), note=legend))


# ---------------------------------------------------------------------------- attribution and patching

def attribution_heads(heads: np.ndarray, title: str, note: str | None = None) -> go.Figure:
    """Each head's part of a logit, layer x head: red pushed the token up, blue pushed it down."""
    values = _f32(heads)
    limit = max(float(np.abs(values).max()), 1e-6)
    heatmap = dict(type="heatmap", z=values, colorscale=RED_BLUE, zmin=-limit, zmax=limit, zmid=0,
                   colorbar=_colorbar("logit"), xgap=1, ygap=1,
                   hovertemplate="head %{y}.%{x} (layer.head)<br>part of the logit: %{z:+.3f}<extra></extra>")
    layout = dict(xaxis=_axis("head", dtick=1), yaxis=_axis("layer", autorange="reversed", dtick=1))
    return _figure([heatmap], _styled(layout, title, height=max(300, 60 + 28 * values.shape[0]), note=note))


def attribution_layers(embed: float, heads_by_layer: np.ndarray, mlps: np.ndarray, rest: float,
                       title: str) -> go.Figure:
    """The same logit by layer: all heads of a layer summed, next to its MLP; the embeddings and the
    biases no part owns at the ends."""
    layers = [f"layer {layer}" for layer in range(len(mlps))]
    data = [dict(type="bar", x=["embeddings"], y=[float(embed)], name="embeddings", marker=dict(color="#7f7f7f"),
                 hovertemplate="embeddings: %{y:+.3f}<extra></extra>"),
            dict(type="bar", x=layers, y=_f32(heads_by_layer), name="attention heads (sum)",
                 marker=dict(color=ATTENTION_COLOUR), hovertemplate="%{x}, heads: %{y:+.3f}<extra></extra>"),
            dict(type="bar", x=layers, y=_f32(mlps), name="MLP", marker=dict(color=MLP_COLOUR),
                 hovertemplate="%{x}, MLP: %{y:+.3f}<extra></extra>"),
            dict(type="bar", x=["biases"], y=[float(rest)], name="biases (no part's)", marker=dict(color="#bdbdbd"),
                 hovertemplate="attention output biases and LN_f's β: %{y:+.3f}<extra></extra>")]
    layout = dict(barmode="group", legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"),
                  xaxis=_axis("", type="category"), yaxis=_axis("part of the logit"))
    return _figure(data, _styled(layout, title, height=380, header=30))


def patching_heatmap(recovered: np.ndarray, columns: list[str], title: str, column_axis: str,
                     note: str | None = None, row_axis: str = "layer") -> go.Figure:
    """The share of the clean answer each patched site brings back: layer (rows) x position or head."""
    values = _f32(recovered)
    limit = max(1.0, float(np.abs(values).max()))
    heatmap = dict(type="heatmap", z=values, x=columns, colorscale=RED_BLUE, zmin=-limit, zmax=limit, zmid=0,
                   colorbar=_colorbar("recovered"), xgap=1, ygap=1,
                   hovertemplate=f"layer %{{y}}, {column_axis} %{{x}}<br>recovered: %{{z:.0%}}<extra></extra>")
    layout = dict(xaxis=_axis(column_axis, type="category"), yaxis=_axis(row_axis, autorange="reversed", dtick=1))
    return _figure([heatmap], _styled(layout, title, height=max(320, 80 + 26 * values.shape[0]), note=note))
