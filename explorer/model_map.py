"""The map of the model: the whole model as one column of parts, drawn from the loaded model's own sizes.

A learner on the Attention tab or on the block card should see where that part sits in the whole
model, as Transformer Explainer and Bycroft's LLM Visualization keep a picture of the model in view.
The map reads top to bottom in the order data flows, the order of the tabs:

    tokens -> token + position embeddings -> block 0 ... block N-1 (attention, MLP) -> LN_f -> unembed -> next token

with one row per block of this model (2 for the shipped model, 12 for GPT-2 124M, 48 for 1558M) and
this model's sizes on every part. Each part names the tab that shows it (`data-tab`, a tab's id is its
module's name), so clicking the part opens that tab; the parts inside a block also name their layer.

Which parts "you are here" lights up for each tab is `HERE`, here in Python, written into the map as
data: the page (ui.py's map script) reads the open tab and the layer its slider shows and marks the
parts whose `data-here` lists that tab, without asking the server.
"""

from __future__ import annotations

import html
import json

from .model_facts import ModelFacts

# The parts each tab shows, by part kind. "attention" and "mlp" are inside every block; for the tabs
# in LAYERED only the block of the layer on the tab's slider lights up, for the others every block does.
HERE = {
    "tokens": ("tokens",),
    "embeddings": ("embeddings",),
    "attention": ("attention",),
    "block": ("attention", "mlp", "block"),
    "layers": ("stream", "ln_f", "unembed"),
    "next_token": ("unembed", "next"),
    "attribution": ("attention", "mlp", "unembed"),  # every head and MLP writes part of the logit
    "surprise": ("next",),
    "generate": ("next", "tokens"),  # the chosen token is appended to the prompt
    "training": ("tokens", "embeddings", "attention", "mlp", "block", "stream", "ln_f", "unembed", "next"),
    "compare": ("tokens", "embeddings", "attention", "mlp", "block", "stream", "ln_f", "unembed", "next"),
}
LAYERED = {"attention": "attention-layer", "block": "block-layer"}  # tab -> elem_id of its layer slider


def captions(f: ModelFacts) -> dict[str, str]:
    """What the map says is in view, per tab, with this model's sizes; {layer} is the layer on the tab's slider."""
    return {
        "tokens": f"the prompt split into tokens, from a vocabulary of {f.n_vocab:,}",
        "embeddings": f"each token's vector plus its position's: {f.n_embd:,} numbers per token",
        "attention": f"attention in block {{layer}}: {f.n_head} heads, each {f.d_head} numbers wide",
        "block": f"inside block {{layer}}: LayerNorm, attention ({f.n_head} heads), LayerNorm, MLP "
                 f"({f.n_embd:,} → {f.d_mlp:,} → {f.n_embd:,})",
        "layers": f"the residual stream ({f.n_embd:,} numbers) after each of the {f.n_layer} blocks, read through "
                  "LN_f and the unembedding",
        "next_token": f"the unembedding and softmax: a probability for each of {f.n_vocab:,} tokens",
        "attribution": f"what each of the {f.n_layer * f.n_head} heads and {f.n_layer} MLPs wrote toward one "
                       "token's logit",
        "surprise": "the prediction at every position, against the token that came",
        "generate": "the next token, appended to the prompt, again and again",
        "training": "the whole model, as its training went",
        "compare": "the whole model, beside another",
    }


MANY_BLOCKS = 16  # above this many blocks a block's row is a thin bar; the block in view is labelled


def _here(kind: str) -> str:
    """The tabs that show a part of this kind, as the map's `data-here` lists them."""
    return " ".join(tab for tab, kinds in HERE.items() if kind in kinds)


def _part(kind: str, tab: str, label: str, sizes: str, layer: int | None = None, short: str | None = None) -> str:
    """One clickable part; `short` is its label where the map is a bar along a phone's screen."""
    here = f' data-here="{_here(kind)}"' if _here(kind) else ""
    layer_attr = f' data-layer="{layer}"' if layer is not None else ""
    title = html.escape(f"{label}: {sizes}. Click to open its tab.", quote=True)
    return (f'<button type="button" class="mm-part mm-{kind}" data-tab="{tab}" data-kind="{kind}"'
            f'{layer_attr}{here} title="{title}"><span class="mm-label">{html.escape(label)}</span>'
            f'<span class="mm-short">{html.escape(short or label)}</span>'
            f'<span class="mm-sizes">{html.escape(sizes)}</span>'
            '</button>')


def model_map_html(facts: ModelFacts) -> str:
    """The map of `facts`' model, as HTML the page's map component shows (see the module docstring)."""
    f = facts
    blocks = []
    for layer in range(f.n_layer):
        blocks.append(
            f'<div class="mm-block" data-layer="{layer}" data-kind="block" data-here="{_here("block")}">'
            f'<span class="mm-block-name">{layer}</span>'
            + _part("attention", "attention", "Attention", f"{f.n_head} heads × {f.d_head}", layer, "A")
            + _part("mlp", "block", "MLP", f"{f.n_embd:,} → {f.d_mlp:,} → {f.n_embd:,}", layer, "M")
            + "</div>")
    many = " mm-many" if f.n_layer > MANY_BLOCKS else ""
    return "".join([
        f'<nav class="model-map{many}" aria-label="Map of the model" data-blocks="{f.n_layer}" '
        f'data-layered="{html.escape(json.dumps(LAYERED), quote=True)}" '
        f'data-captions="{html.escape(json.dumps(captions(f)), quote=True)}">',
        f'<div class="mm-title">Map of the model <span class="mm-name">{html.escape(f.name)}, '
        f'{f.parameters_short} parameters</span></div>',
        '<div class="mm-caption" aria-live="polite">Click a part to open its tab.</div>',
        _part("tokens", "tokens", "Tokens", f"vocabulary {f.n_vocab:,} · up to {f.n_ctx:,} per prompt"),
        _part("embeddings", "embeddings", "Token + position embeddings",
              f"{f.n_vocab:,} × {f.n_embd:,} for tokens + {f.n_ctx:,} × {f.n_embd:,} for positions", short="Embed"),
        f'<div class="mm-stream" data-kind="stream" data-here="{_here("stream")}">',
        _part("stream-label", "layers", "Residual stream",
              f"{f.n_embd:,} numbers per token, through {f.n_layer} block{'s' if f.n_layer != 1 else ''}"),
        f'<div class="mm-blocks">{"".join(blocks)}</div>',
        '</div>',
        _part("ln_f", "layers", "LN_f", "the final LayerNorm", short="LN"),
        _part("unembed", "next_token", "Unembed", f"{f.n_embd:,} → {f.n_vocab:,} logits (the token embedding again)",
              short="Out"),
        _part("next", "next_token", "Next token", "softmax: a probability per token", short="Next"),
        '</nav>',
    ])
