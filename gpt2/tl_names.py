"""TransformerLens's names for this model's hook points, and back.

A TransformerLens tutorial reads `cache["blocks.3.attn.hook_pattern"]`; here the same tensor
is `h.3.attn.hook_pattern` (the blocks keep OpenAI's scope name `h`, see model.py). The table
below pairs each hook point with TransformerLens's name for the same tensor. "TransformerLens"
means its `HookedTransformer` as of release 2.18.0 (the class its tutorials use; release 4
removed it for `TransformerBridge`, which is not described here), read in its source:
`components/abstract_attention.py`, `components/transformer_block.py`, `components/layer_norm.py`,
`components/layer_norm_pre.py`, `components/pos_embed.py`, `HookedTransformer.py`.

    ours                     TransformerLens                     shape here / there
    hook_tok_embed           hook_embed                          (B, T, C) both
    hook_pos_embed           hook_pos_embed                      (1, T, C) / [batch, pos, d_model], a copy per sequence
    h.{l}.hook_resid_pre     blocks.{l}.hook_resid_pre           (B, T, C) both
    h.{l}.attn.hook_q/k/v    blocks.{l}.attn.hook_q/k/v          (B, n_head, T, d_head) / [batch, pos, head, d_head]
    h.{l}.attn.hook_scores   blocks.{l}.attn.hook_attn_scores    (B, n_head, T, T_k) both
    h.{l}.attn.hook_pattern  blocks.{l}.attn.hook_pattern        (B, n_head, T, T_k) both
    h.{l}.attn.hook_z        blocks.{l}.attn.hook_z              (B, T, n_head, d_head) both
    h.{l}.hook_attn_out      blocks.{l}.hook_attn_out            (B, T, C) both
    h.{l}.hook_resid_mid     blocks.{l}.hook_resid_mid           (B, T, C) both
    h.{l}.mlp.hook_pre       blocks.{l}.mlp.hook_pre             (B, T, d_mlp) both
    h.{l}.mlp.hook_post      blocks.{l}.mlp.hook_post            (B, T, d_mlp) both
    h.{l}.hook_mlp_out       blocks.{l}.hook_mlp_out             (B, T, C) both
    h.{l}.hook_resid_post    blocks.{l}.hook_resid_post          (B, T, C) both
    hook_final               ln_final.hook_normalized            (B, T, C) both, LN_f(x_L) with its g and b (see below)

Where the tensors differ:

    * q, k, v: the same numbers with two axes swapped. TL computes them as [batch, pos,
      head_index, d_head] (`simple_attn_linear`) and rearranges inside the score product; ours
      are already (B, n_head, T, d_head) for the matmul. `in_tl_layout` / `in_our_layout` swap
      the head and position axes (the third- and second-last, so it also works without a batch axis).
      hook_z is [pos, head, d_head] on both sides.
    * scores: both scale by 1/sqrt(d_head) (TL's `attn_scale` defaults to sqrt(d_head)) and fill
      the future with -inf (TL's `IGNORE` buffer is torch.tensor(-torch.inf) in 2.18.0, and in
      1.19.0) before the hook, so the masked entries agree too.
    * hook_final: TL's `LayerNorm.forward` calls hook_normalized on `x * self.w + self.b`, after
      the weight and bias, so it equals our LN_f(x_L) -- but only while ln_final is a `LayerNorm`.
      See the weight processing below.

Weight processing. The equalities above hold for a model loaded as
`HookedTransformer.from_pretrained_no_processing("gpt2")`. Plain `from_pretrained` defaults
to fold_ln, center_writing_weights, center_unembed and fold_value_biases, which keep the
logits' softmax but change some hooked tensors (checked in `load_and_process_state_dict`,
`fold_layer_norm`, `center_writing_weights`, `fold_value_biases`):

    * fold_ln turns every LayerNorm into `LayerNormPre`, whose hook_normalized is
      (x - mean) / scale with no weight or bias: there, ours = g * TL's + b for hook_final;
    * center_writing_weights centres W_E, W_pos, W_O, b_O, W_out and b_out over d_model, so
      hook_embed, hook_pos_embed, hook_resid_*, hook_attn_out and hook_mlp_out are ours minus
      their mean over the last axis;
    * fold_value_biases moves b_V (after fold_ln has added ln1's bias through W_V to it) into
      b_O, so TL's hook_v and hook_z are ours minus that per-head constant;
    * hook_q, hook_k, hook_attn_scores, hook_pattern, mlp.hook_pre and mlp.hook_post are
      unchanged (LayerNorm removes the mean that centring takes away), up to float rounding.

No counterpart on the other side (see `OURS_ONLY` and `TL_ONLY`): our hook_logits, because
TL's `Unembed` has no hook point; and TL's LayerNorm internals and optional hooks, because
this model hooks the residual stream around each LayerNorm, not inside it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class HookName:
    ours: str  # with {l} for the layer in per-block names
    tl: str
    swap_head_and_pos: bool = False  # TL's layout is ours with the head and position axes swapped


HOOK_NAMES = (
    HookName("hook_tok_embed", "hook_embed"),
    HookName("hook_pos_embed", "hook_pos_embed"),
    HookName("h.{l}.hook_resid_pre", "blocks.{l}.hook_resid_pre"),
    HookName("h.{l}.attn.hook_q", "blocks.{l}.attn.hook_q", swap_head_and_pos=True),
    HookName("h.{l}.attn.hook_k", "blocks.{l}.attn.hook_k", swap_head_and_pos=True),
    HookName("h.{l}.attn.hook_v", "blocks.{l}.attn.hook_v", swap_head_and_pos=True),
    HookName("h.{l}.attn.hook_scores", "blocks.{l}.attn.hook_attn_scores"),
    HookName("h.{l}.attn.hook_pattern", "blocks.{l}.attn.hook_pattern"),
    HookName("h.{l}.attn.hook_z", "blocks.{l}.attn.hook_z"),
    HookName("h.{l}.hook_attn_out", "blocks.{l}.hook_attn_out"),
    HookName("h.{l}.hook_resid_mid", "blocks.{l}.hook_resid_mid"),
    HookName("h.{l}.mlp.hook_pre", "blocks.{l}.mlp.hook_pre"),
    HookName("h.{l}.mlp.hook_post", "blocks.{l}.mlp.hook_post"),
    HookName("h.{l}.hook_mlp_out", "blocks.{l}.hook_mlp_out"),
    HookName("h.{l}.hook_resid_post", "blocks.{l}.hook_resid_post"),
    HookName("hook_final", "ln_final.hook_normalized"),
)

OURS_ONLY = {
    "hook_logits": "TransformerLens's Unembed has no hook point; its logits are the forward pass's return value",
}

_INSIDE_LN = "this model hooks no tensor inside its LayerNorms"
TL_ONLY = {
    "blocks.{l}.ln1.hook_scale": _INSIDE_LN,
    "blocks.{l}.ln1.hook_normalized": _INSIDE_LN + "; model.h[{l}].ln_1 applied to h.{l}.hook_resid_pre recomputes it",
    "blocks.{l}.ln2.hook_scale": _INSIDE_LN,
    "blocks.{l}.ln2.hook_normalized": _INSIDE_LN + "; model.h[{l}].ln_2 applied to h.{l}.hook_resid_mid recomputes it",
    "ln_final.hook_scale": _INSIDE_LN,
    "hook_tokens": "the token ids are the input, not an activation (TL hooks them only with use_hook_tokens)",
    "blocks.{l}.attn.hook_result": "each head's output after W_O is not hooked (TL has it only with use_attn_result)",
    "blocks.{l}.hook_attn_in": "TL hooks this only with use_attn_in; here it is h.{l}.hook_resid_pre",
    "blocks.{l}.hook_q_input": "TL hooks this only with use_split_qkv_input; here it is h.{l}.hook_resid_pre",
    "blocks.{l}.hook_k_input": "TL hooks this only with use_split_qkv_input; here it is h.{l}.hook_resid_pre",
    "blocks.{l}.hook_v_input": "TL hooks this only with use_split_qkv_input; here it is h.{l}.hook_resid_pre",
    "blocks.{l}.hook_mlp_in": "TL hooks this only with use_hook_mlp_in; here it is h.{l}.hook_resid_mid",
    "blocks.{l}.attn.hook_rot_q": "GPT-2 has no rotary embeddings",
    "blocks.{l}.attn.hook_rot_k": "GPT-2 has no rotary embeddings",
    "blocks.{l}.attn.hook_attn_input": "GPT-2 has no shortformer position embeddings",
    "blocks.{l}.mlp.hook_mid": "GPT-2's MLP has no SoLU LayerNorm",
}

_BY_OURS = {entry.ours: entry for entry in HOOK_NAMES}
_BY_TL = {entry.tl: entry for entry in HOOK_NAMES}
_LAYER = re.compile(r"^(h|blocks)\.(\d+)\.")


def _template(name: str) -> tuple[str, int | None]:
    """'blocks.3.attn.hook_q' -> ('blocks.{l}.attn.hook_q', 3); names outside the blocks keep layer None."""
    match = _LAYER.match(name)
    if match is None:
        return name, None
    return f"{match.group(1)}.{{l}}.{name[match.end():]}", int(match.group(2))


def _for_layer(template: str, layer: int | None) -> str:
    return template.replace("{l}", str(layer))


def name_table(n_layer: int) -> dict[str, str]:
    """Every hook point of an n_layer model that TransformerLens also has: ours -> TL's."""
    table = {}
    for entry in HOOK_NAMES:
        layers = range(n_layer) if "{l}" in entry.ours else [None]
        table.update({_for_layer(entry.ours, l): _for_layer(entry.tl, l) for l in layers})
    return table


def _all_names(n_layer: int | None) -> list[str]:
    """Every name either side knows, for suggesting near ones (templates when n_layer is not given)."""
    templates = list(dict.fromkeys([*_BY_OURS, *_BY_TL, *OURS_ONLY, *TL_ONLY]))  # hook_pos_embed is on both sides
    if n_layer is None:
        return templates
    layers = range(n_layer)
    return [_for_layer(t, l) for t in templates for l in (layers if "{l}" in t else [None])]


def _entry(name: str, n_layer: int | None) -> tuple[HookName, int | None]:
    """The table row for a name in either naming, and its layer; ValueError saying why there is none."""
    template, layer = _template(name)
    if layer is not None and n_layer is not None and layer >= n_layer:
        raise ValueError(f"{name!r}: layer {layer} does not exist, the model has layers 0..{n_layer - 1}")
    entry = _BY_OURS.get(template) or _BY_TL.get(template)
    if entry is not None:
        return entry, layer
    if template in OURS_ONLY:
        raise ValueError(f"{name!r} has no TransformerLens counterpart: {OURS_ONLY[template]}")
    if template in TL_ONLY:
        reason = _for_layer(TL_ONLY[template], layer)
        raise ValueError(f"TransformerLens's {name!r} has no counterpart in this model: {reason}")
    near = difflib.get_close_matches(name, _all_names(n_layer), n=4, cutoff=0.6)
    hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
    raise ValueError(f"unknown hook point {name!r}{hint}")


def to_ours(name: str, n_layer: int | None = None) -> str:
    """Our name for a hook point named either way, e.g. 'blocks.3.attn.hook_pattern' -> 'h.3.attn.hook_pattern'.

    With `n_layer`, a layer the model lacks is an error too. Our hook_logits, which
    TransformerLens lacks, is still one of ours, so it comes back unchanged.
    """
    if _template(name)[0] in OURS_ONLY:
        return name
    entry, layer = _entry(name, n_layer)
    return _for_layer(entry.ours, layer)


def to_tl(name: str, n_layer: int | None = None) -> str:
    """TransformerLens's name for a hook point named either way, e.g. 'hook_tok_embed' -> 'hook_embed'."""
    entry, layer = _entry(name, n_layer)
    return _for_layer(entry.tl, layer)


def is_tl_name(name: str) -> bool:
    """Whether a name is TransformerLens's spelling of one of the table's hook points."""
    return _template(name)[0] in _BY_TL


def _swaps(name: str) -> bool:
    entry = _BY_OURS.get(_template(name)[0]) or _BY_TL.get(_template(name)[0])
    return entry is not None and entry.swap_head_and_pos


def in_tl_layout(name: str, x):
    """A tensor or array read at hook point `name`, in our layout, rearranged as TransformerLens lays it out.

    Only q, k and v differ: (..., n_head, T, d_head) -> (..., T, n_head, d_head). A view, not a copy.
    """
    return x.swapaxes(-3, -2) if _swaps(name) else x


def in_our_layout(name: str, x):
    """The inverse of `in_tl_layout` (swapping two axes is its own inverse)."""
    return in_tl_layout(name, x)
