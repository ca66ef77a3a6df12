"""The logit lens: read the residual stream of every layer as if it were the last.

The model turns its final residual x_L into a prediction with
    p = softmax(LN_f(x_L) W_te^T).
Applying the same readout to an earlier x_l (nostalgebraist, 2020) shows what the
model "would say" after l blocks, and how the prediction forms layer by layer.

LN_f normalises each vector by its own mean and standard deviation, so the statistics
are recomputed for every layer's x_l; reusing those of x_L (a mistake some tools make)
would scale early layers wrongly. Layer 0 is the embeddings x_0, layer L is the
model's real output, where the lens equals the final distribution.

Each call projects n_layers x n_positions vectors onto all 50,257 tokens, the most
expensive matrix product in the explorer, so it runs only for what a panel shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gpt2 import GPT2
from gpt2.device import to_host, to_model

from .capture import Trace


@dataclass
class LensResult:
    layers: np.ndarray  # [L'] which residual layers (0 = embeddings)
    positions: np.ndarray  # [P]
    top_ids: np.ndarray  # [L', P, k] most likely next tokens
    top_probs: np.ndarray  # [L', P, k]
    entropy: np.ndarray  # [L', P] entropy of each layer's distribution, in bits


@torch.inference_mode()
def lens_logits(model: GPT2, residual: np.ndarray) -> torch.Tensor:
    """LN_f(x) W_te^T for residual vectors [..., d_model], returned in float32.

    The model's own final LayerNorm and head (`GPT2.unembed`), in the model's dtype.
    """
    return model.unembed(model.ln_f(to_model(model, residual))).float()


def logit_lens(model: GPT2, trace: Trace, layers=None, positions=None, k: int = 5) -> LensResult:
    """Top-k next tokens and their probabilities at the given layers and positions."""
    layers = np.arange(trace.config.n_layer + 1) if layers is None else np.asarray(layers)
    positions = np.arange(trace.n_tokens) if positions is None else np.asarray(positions)
    return lens_of_rows(model, trace.residual[np.ix_(layers, positions)], layers, positions, k)


def lens_of_rows(model: GPT2, rows: np.ndarray, layers: np.ndarray, positions: np.ndarray, k: int = 5) -> LensResult:
    """The lens of residual vectors already picked out, rows[i, j] = x_{layers[i]} at positions[j]."""
    logits = lens_logits(model, rows)  # [L', P, n_vocab]
    probs = torch.softmax(logits, dim=-1)
    top = probs.topk(k, dim=-1)
    # Entropy H = -sum p ln p = ln Z - sum p z, where ln Z (the log of softmax's normaliser) is
    # z_i - ln p_i for any token i; the top token gives it most accurately. Cheaper than
    # taking a log of all 50,257 probabilities (accurate to ~1e-3 nats in float32).
    log_z = logits.gather(-1, top.indices[..., :1]).squeeze(-1) - top.values[..., 0].log()
    entropy = (log_z - torch.linalg.vecdot(probs, logits)) / np.log(2)
    host = to_host({"top_ids": top.indices, "top_probs": top.values, "entropy": entropy})
    return LensResult(layers=layers, positions=positions, **host)
