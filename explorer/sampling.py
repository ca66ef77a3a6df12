"""The anatomy of a sampling step, computed from stored logits (no forward pass).

Given the logits z at the last position, a sampler applies (see gpt2/sampling.py, the
one implementation both text generation and this panel use):

    temperature   p_T = softmax(z / T)
    top-k         keep the k most likely tokens
    top-p         keep the smallest most-likely set with mass >= p
    renormalise   q_i = p_T,i / sum of kept p_T   for kept i, else 0

This module exposes every intermediate so the live sliders can draw the
distribution before and after truncation, where the cutoff falls, how much
probability mass was thrown away, the entropy H = -sum q log2 q (in bits: the
"effective number of choices" is 2^H), and which token a given seed would draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gpt2.sampling import filter_stages, sample_token


@dataclass
class SamplingAnatomy:
    temperature: float
    top_k: int | None
    top_p: float | None
    probs: np.ndarray  # [n_vocab] softmax(z), temperature 1
    probs_tempered: np.ndarray  # [n_vocab] softmax(z / T)
    probs_after_top_k: np.ndarray  # [n_vocab] renormalised after top-k
    probs_final: np.ndarray  # [n_vocab] renormalised after top-p: what is sampled from
    kept: np.ndarray  # [n_vocab] bool
    n_kept: int
    kept_mass: float  # mass of the kept set under probs_tempered (1 - what truncation removed)
    cutoff_prob: float  # the smallest tempered probability still kept
    entropy_before: float  # bits, of probs_tempered
    entropy_after: float  # bits, of probs_final
    chosen: int | None  # the token the seed draws, if a seed was given


def _softmax(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.double(), dim=-1).numpy()


def entropy_bits(probs: np.ndarray) -> float:
    nonzero = probs[probs > 0]
    return float(-(nonzero * np.log2(nonzero)).sum())


def sampling_anatomy(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None, seed: int | None = None,
                     generator: torch.Generator | None = None) -> SamplingAnatomy:
    """Every stage of turning `logits` [n_vocab] into the distribution a token is drawn from.

    With a `seed` (or a `generator`, whose state advances) the token that draw would pick is
    returned too, drawn exactly as `gpt2.generate` draws.
    """
    z = torch.as_tensor(logits, dtype=torch.float32)
    tempered, after_k, after_p = filter_stages(z, temperature, top_k, top_p)  # raises ValueError on bad settings
    probs_tempered, probs_final = _softmax(tempered), _softmax(after_p)
    kept = torch.isfinite(after_p).numpy()
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(seed)
    chosen = None if generator is None else sample_token(after_p, generator)
    return SamplingAnatomy(
        temperature=temperature, top_k=top_k, top_p=top_p,
        probs=_softmax(z), probs_tempered=probs_tempered, probs_after_top_k=_softmax(after_k),
        probs_final=probs_final, kept=kept, n_kept=int(kept.sum()),
        kept_mass=float(probs_tempered[kept].sum()), cutoff_prob=float(probs_tempered[kept].min()),
        entropy_before=entropy_bits(probs_tempered), entropy_after=entropy_bits(probs_final),
        chosen=chosen,
    )
