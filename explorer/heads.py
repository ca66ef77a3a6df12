"""What each attention head does, in a few numbers, and a label for the UI.

For a head's pattern A (rows: queries i, columns: keys j, each row sums to 1) the
scores are averages over the query positions i >= 2, where "previous", "first" and
"self" are three different keys (at i = 1 the previous token is the first token):

    previous-token   mean_i A[i, i-1]   attends to the token just before
    first-token      mean_i A[i, 0]     parks attention on the first token, a "sink"
                                        (Xiao et al. 2023) when it has nothing better to do
    self             mean_i A[i, i]     attends to its own position
    entropy          mean_i H(A[i, :]) / log(i + 1)   0 = one key only, 1 = uniform over all keys

Induction heads (Olsson et al. 2022) complete patterns: having seen "A B ... A" they
attend from the second A to the B that followed the first one, and copy it. The test:
feed a random token sequence twice; in the second copy, a head's induction score is
its mean attention from each token to the token right after that token's first
occurrence. Random tokens make the pattern the only possible clue. It needs its own
forward pass, so it is computed once per model and cached.

Each head's own contribution to the residual stream is z_h W_O^h (its slice of the
output projection); its norm per position says how much the head writes.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch

from gpt2 import GPT2
from gpt2.device import to_model

from .capture import Recorder, Trace, capture, hooks_attached, hooks_lock

# A head earns a label when its score passes the threshold; the first match wins. Previous-token at 0.3:
# the small model trained here has such a head at ~0.34 on its own text, where attention spread evenly
# over the i + 1 keys would give 1 / (i + 1), under 0.3 for every query from position 3 on.
LABEL_RULES = (
    ("induction", "induction", 0.4),
    ("previous-token", "previous_token", 0.3),
    ("first-token sink", "first_token", 0.6),
    ("self", "self", 0.5),
)
BROAD_ENTROPY = 0.85
SCORE_CHUNK = 1 << 24  # numbers per step of pattern_scores: 64 MB in float32
QUERY_BLOCK = 128  # query rows pattern_scores reads at a time


@dataclass
class HeadScores:
    previous_token: np.ndarray  # [layer, head]
    first_token: np.ndarray  # [layer, head]
    self: np.ndarray  # [layer, head]
    entropy: np.ndarray  # [layer, head], normalised to [0, 1]
    induction: np.ndarray | None = None  # [layer, head], from the repeated-sequence test

    def label(self, layer: int, head: int) -> str:
        for name, field, threshold in LABEL_RULES:
            value = getattr(self, field)
            if value is not None and value[layer, head] >= threshold:
                return name
        return "broad" if self.entropy[layer, head] >= BROAD_ENTROPY else "mixed"

    def labels(self) -> list[list[str]]:
        layers, heads = self.entropy.shape
        return [[self.label(layer, head) for head in range(heads)] for layer in range(layers)]


SCORE_NAMES = ("previous_token", "first_token", "self", "entropy")


def pattern_scores(attention) -> dict[str, np.ndarray]:
    """Previous-token, first-token, self and normalised-entropy scores of patterns [..., query, key].

    `attention` is a numpy array or a torch tensor on any device: the capture scores the patterns
    where the model ran, before they travel to the host (on a GPU that is where it is fast).
    Patterns are scored a few at a time in float32 (the trace stores float16): a 1024-token
    prompt on 124M has 144 patterns of 1024 x 1024, and converting them all at once would
    take 0.6 GB for a moment, several times that for the entropy's temporaries.
    """
    a = torch.as_tensor(attention)
    lead, T = tuple(a.shape[:-2]), a.shape[-1]
    if T < 3:
        return {name: np.zeros(lead, dtype=np.float32) for name in SCORE_NAMES}
    flat = a.reshape(-1, T, T)
    sums = {name: torch.zeros(len(flat), dtype=torch.float32, device=a.device) for name in SCORE_NAMES}
    log_keys = torch.log(torch.arange(1, T + 1, dtype=torch.float32, device=a.device))  # ln(i + 1) for row i
    chunk = max(1, SCORE_CHUNK // (T * T))  # patterns per step
    for start in range(0, len(flat), chunk):
        part = slice(start, min(start + chunk, len(flat)))
        # Rows 2 .. T-1, a block of queries at a time: row i attends to keys 0..i only (the rest are masked
        # to exactly 0), so a block of rows ending at q1 needs only its first q1 keys. That skips about half
        # of the T x T weights.
        for q0 in range(2, T, QUERY_BLOCK):
            q1 = min(T, q0 + QUERY_BLOCK)
            x = flat[part, q0:q1, :q1].float()  # (n, rows q0..q1-1, keys 0..q1-1)
            sums["previous_token"][part] += torch.diagonal(x, offset=q0 - 1, dim1=1, dim2=2).sum(-1)
            sums["first_token"][part] += x[:, :, 0].sum(-1)
            sums["self"][part] += torch.diagonal(x, offset=q0, dim1=1, dim2=2).sum(-1)
            sums["entropy"][part] += (torch.special.entr(x).sum(-1) / log_keys[q0:q1]).sum(-1)  # -sum p ln p
    return {name: (values / (T - 2)).reshape(lead).cpu().numpy() for name, values in sums.items()}


def head_scores(trace: Trace, induction: np.ndarray | None = None) -> HeadScores:
    """Every head's scores on this prompt: the ones the capture made where the model ran, else from the trace."""
    scores = trace.pattern_scores if trace.pattern_scores is not None else pattern_scores(trace.attention)
    return HeadScores(**scores, induction=induction)


def induction_pattern_score(attention: np.ndarray, half: int, offset: int = 1) -> np.ndarray:
    """Mean attention from position offset+half+j to offset+j+1 (the token after the first copy)."""
    j = np.arange(half - 1)
    query, key = offset + half + j, offset + j + 1
    return np.asarray(attention, dtype=np.float32)[..., query, key].mean(-1)


# model -> {the token pool (None: any ordinary token) -> scores}
_induction_cache: "weakref.WeakKeyDictionary[GPT2, dict]" = weakref.WeakKeyDictionary()


def ordinary_token_range(config) -> tuple[int, int]:
    """The ids the induction test draws from when no pool is given, [low, high): past the bytes and the
    first merges, short of GPT-2's rarest tokens and of the last id (the special token in GPT-2's layout)."""
    return min(1000, config.n_vocab // 4), min(20000, config.n_vocab - 1)


def induction_scores(model: GPT2, half: int = 50, seed: int = 0, tokens: list[int] | None = None) -> np.ndarray:
    """Induction score of every head, [layer, head]; computed once per model.

    The random sequence draws from `tokens` when given: a model trained here with repeated
    windows learned to copy its most frequent tokens, and its training log lists them.
    """
    pool_key = tuple(tokens) if tokens else None
    cached = _induction_cache.setdefault(model, {})
    if pool_key not in cached:
        config = model.config
        half = min(half, (config.n_ctx - 1) // 2)
        generator = torch.Generator().manual_seed(seed)
        if tokens:
            pool = torch.as_tensor(tokens)
            random_ids = pool[torch.randint(len(pool), (half,), generator=generator)].tolist()
        else:  # ordinary word-piece ids (not bytes, not rare tokens), preceded by <|endoftext|> as GPT-2's start
            low, high = ordinary_token_range(config)
            random_ids = torch.randint(low, high, (half,), generator=generator).tolist()
        start = [min(50256, config.n_vocab - 1)]
        trace = capture(model, start + random_ids + random_ids)
        cached[pool_key] = induction_pattern_score(trace.attention, half, offset=1)
    return cached[pool_key]


@torch.inference_mode()
def head_z(model: GPT2, trace: Trace, layer: int) -> np.ndarray:
    """Each head's output z_h = softmax(q_h k_h^T / sqrt(d_head) + M) v_h, [pos, head, d_head].

    The Trace does not keep it (see capture.py): this runs the block's attention again on
    its stored input x_{layer} and reads h.{layer}.attn.hook_z.
    """
    block = model.h[layer]
    x = to_model(model, trace.residual[layer]).unsqueeze(0)  # (1, pos, d_model)
    recorder = Recorder()  # capture's own recorder: same thread check, same float32 copy
    with hooks_lock, hooks_attached([(block.attn.hook_z, recorder.hook("z", 1))]):
        block.attn(block.ln_1(x))
    return recorder.result()["z"][0]  # (pos, head, d_head)


def head_outputs(model: GPT2, trace: Trace, layer: int) -> np.ndarray:
    """Each head's contribution z_h W_O^h to the residual stream, [pos, head, d_model].

    Summed over heads, plus the bias of c_proj, they give the layer's attention output.
    """
    d_head, n_head = trace.config.d_head, trace.config.n_head
    w_o = model.h[layer].attn.c_proj.weight.detach().float().cpu()  # (d_model, d_model): out x in
    w_o = w_o.T.reshape(n_head, d_head, -1)  # rows of W_O belong to heads: (head, d_head, d_model)
    z = torch.as_tensor(head_z(model, trace, layer))  # (pos, head, d_head)
    return torch.einsum("phd,hdm->phm", z, w_o).numpy()  # (pos, head, d_model)


def head_output_norms(model: GPT2, trace: Trace, layer: int) -> np.ndarray:
    """||z_h W_O^h|| for each position and head of one layer, [pos, head]: how much each head writes."""
    return np.linalg.norm(head_outputs(model, trace, layer), axis=-1)


@torch.inference_mode()
def attention_scores_row(model: GPT2, trace: Trace, layer: int, head: int, query: int) -> np.ndarray:
    """The pre-softmax scores q_i . k_j / sqrt(d_head) of one query row, keys 0..query, [query + 1].

    Recomputed from the stored residual stream x_{layer} (the block's input): LN_1, then the
    head's slice of c_attn. softmax of this row is the row of the attention pattern.
    """
    block, d_head = model.h[layer], trace.config.d_head
    x = block.ln_1(to_model(model, trace.residual[layer, : query + 1]))
    q_all, k_all, _ = block.attn.c_attn(x).float().split(trace.config.n_embd, dim=-1)  # (T, d_model) each
    q = q_all[query, head * d_head:(head + 1) * d_head]  # (d_head,)
    k = k_all[:, head * d_head:(head + 1) * d_head]  # (query + 1, d_head)
    return (k @ q / np.sqrt(d_head)).cpu().numpy()
