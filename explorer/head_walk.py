"""One attention head, end to end, for one query position.

For head h of block l and query position i (u = LN_1(x_l), the block's normalised input):

    q_i = u_i W_Q + b_Q,   k_j = u_j W_K + b_K,   v_j = u_j W_V + b_V     each d_head numbers
    s_j = q_i · k_j                         how well key j matches the query
    s_j / sqrt(d_head)                      scaled, so the softmax is not too sharp in high dimensions
    w_j = softmax_j(s_j / sqrt(d_head))     over the visible keys j <= i; they add up to 1
    z   = sum_j w_j v_j                     the head's output, d_head numbers
    z W_O[h]                                its d_model-sized contribution to the residual stream
                                            (W_O[h]: the head's d_head rows of c_proj)

One head for one query needs only the projections of the positions up to it, so they are
computed here once; the tests check every step against heads.attention_scores_row,
heads.head_z and heads.head_outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gpt2 import GPT2
from gpt2.device import to_model

from . import teaching
from .capture import Trace


@dataclass
class HeadWalk:
    layer: int
    head: int
    query: int
    d_head: int
    dot: np.ndarray  # [query + 1] q_i · k_j
    scaled: np.ndarray  # [query + 1] q_i · k_j / sqrt(d_head)
    weights: np.ndarray  # [query + 1] softmax of scaled
    values: np.ndarray  # [query + 1, d_head] v_j
    z: np.ndarray  # [d_head] sum_j w_j v_j
    output: np.ndarray  # [d_model] z W_O[h]

    @property
    def value_norms(self) -> np.ndarray:
        return np.linalg.norm(self.values, axis=-1)


@torch.inference_mode()
def head_qkv(model: GPT2, trace: Trace, layer: int, head: int, last: int) -> tuple[np.ndarray, ...]:
    """q, k, v of one head for positions 0..last, each [last + 1, d_head]: c_attn(LN_1(x)) split as [q | k | v]."""
    block, c = model.h[layer], trace.config
    u = block.ln_1(to_model(model, trace.residual[layer, : last + 1]))
    qkv = block.attn.c_attn(u).float().view(last + 1, 3, c.n_head, c.d_head)[:, :, head].cpu()  # (pos, 3, d_head)
    return tuple(qkv[:, part].numpy() for part in range(3))


def walk_head(model: GPT2, trace: Trace, layer: int, head: int, query: int) -> HeadWalk:
    """Every step for one query, from one projection of the positions up to it (no forward pass).

    The tests check each step against heads.attention_scores_row, head_z and head_outputs,
    which recompute whole rows or layers; one query of one head needs only this.
    """
    d_head = trace.config.d_head
    q, k, v = head_qkv(model, trace, layer, head, query)
    dot = k.astype(np.float64) @ q[query].astype(np.float64)  # q_i . k_j for j <= i
    scaled = dot / np.sqrt(d_head)
    weights = np.exp(scaled - scaled.max())
    weights /= weights.sum()
    z = weights @ v.astype(np.float64)  # (d_head,)
    w_o = model.h[layer].attn.c_proj.weight.detach()[:, head * d_head:(head + 1) * d_head]  # the head's columns
    output = w_o.float().cpu().numpy() @ z  # the head's columns of c_proj: z W_O[h]
    return HeadWalk(layer=layer, head=head, query=query, d_head=d_head, dot=dot, scaled=scaled, weights=weights,
                    values=v, z=z, output=output)


def walk_table(walk: HeadWalk, tokens: list[str], rows: int = 6) -> str:
    """The keys with the largest weights, each step of the computation a column."""
    order = np.argsort(-walk.weights, kind="stable")[:rows]
    norms = walk.value_norms
    root = f"√{walk.d_head}"
    lines = [f"| key j | token | qᵢ·kⱼ | ÷ {root} | softmax wⱼ | ‖vⱼ‖ | wⱼ‖vⱼ‖ |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {j} | {tokens[j]} | {walk.dot[j]:.2f} | {walk.scaled[j]:.2f} | {walk.weights[j]:.3f} | "
              f"{norms[j]:.2f} | {walk.weights[j] * norms[j]:.2f} |" for j in order]
    rest = len(walk.weights) - len(order)
    if rest > 0:
        lines.append(f"| … | {rest} more keys | | | {max(0.0, 1 - walk.weights[order].sum()):.3f} | | |")
    return "\n".join(lines)


def walk_text(walk: HeadWalk, tokens: list[str]) -> str:
    """The head walk's teaching text: each step with this query's numbers, then the table."""
    best = int(np.argmax(walk.weights))
    return teaching.render(
        "head_walk", layer=walk.layer, head=walk.head, query_token=tokens[walk.query], query_pos=walk.query,
        d_head=walk.d_head, sqrt_d=float(np.sqrt(walk.d_head)), best_token=tokens[best], best_key=best,
        best_dot=float(walk.dot[best]), best_scaled=float(walk.scaled[best]), best_weight=float(walk.weights[best]),
        n_keys=len(walk.weights), keys_plural="" if len(walk.weights) == 1 else "s",
        z_norm=float(np.linalg.norm(walk.z)), n_embd=len(walk.output), out_norm=float(np.linalg.norm(walk.output)),
        walk_table=walk_table(walk, tokens))
