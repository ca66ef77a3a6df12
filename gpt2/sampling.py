"""From logits to the next token: temperature, top-k, top-p (nucleus) and the draw.

Given the logits z of the next token, the sampler builds a distribution in three steps,
each optional, in this order (the order Hugging Face and most tools use):

    1. temperature T:  p_i = softmax(z / T)_i            T < 1 sharpens, T > 1 flattens;
                                                         T = 0 means greedy (all mass on the argmax)
    2. top-k:          keep the k largest logits, drop the rest (exactly k, see below)
    3. top-p:          keep the smallest set of most-likely tokens whose probability,
                       after step 2 and renormalising, adds up to at least p
                       (Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration")

and renormalises what is kept. Dropped tokens get logit -inf, probability 0.

Ties: tokens are ranked by logit, and equal logits by token id (the lower id first),
so top-k always keeps exactly k tokens and every step is deterministic.

These functions are pure (tensor in, tensor out). `gpt2.generate` uses them for text,
and the explorer's live sliders use the same ones on stored logits.
"""

from __future__ import annotations

import math

import torch

# torch.Generator.manual_seed takes a seed of 64 bits; the project's seeds are the whole numbers it keeps as they are.
MAX_SEED = 2**64 - 1


def validate_sampling(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None) -> None:
    """Raise a ValueError that says what is wrong with a sampling setting.

    These are the rules of every caller: `generate`, the command line's flags and the explorer's sliders.
    """
    if (not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not temperature >= 0
            or not math.isfinite(temperature)):
        raise ValueError(f"temperature must be a finite number >= 0 (0 means greedy), got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise ValueError(f"top_k must be a whole number >= 1, or None to keep every token; got {top_k!r}")
    if top_p is not None and (not isinstance(top_p, (int, float)) or isinstance(top_p, bool) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1], or None to keep every token; got {top_p!r}")


def validate_seed(seed: int | None) -> None:
    """Raise a ValueError unless `seed` is None (a fresh draw) or a whole number from 0 to MAX_SEED."""
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED):
        raise ValueError(f"seed must be a whole number from 0 to 2**64 - 1 ({MAX_SEED}), got {seed!r}")


def rank_order(logits: torch.Tensor) -> torch.Tensor:
    """Token ids from most to least likely; equal logits keep id order (stable sort)."""
    return torch.sort(logits, dim=-1, descending=True, stable=True).indices


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """z / T. At T = 0 the limit is a one-hot at the argmax: keep it, drop the rest."""
    logits = logits.float()
    if temperature == 0:
        winner = logits.argmax(dim=-1, keepdim=True)  # torch returns the first maximum: ties go to the lowest id
        keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, winner, True)
        return logits.masked_fill(~keep, float("-inf"))
    return logits / temperature


def top_k_mask(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """True for the k highest logits (exactly k, ties broken by lower id)."""
    if k is None or k >= logits.shape[-1]:
        return torch.ones_like(logits, dtype=torch.bool)
    kept = rank_order(logits)[..., :k]
    return torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, kept, True)


def top_p_mask(logits: torch.Tensor, p: float | None) -> torch.Tensor:
    """True for the smallest most-likely set whose softmax mass is >= p."""
    if p is None or p >= 1.0:
        return torch.ones_like(logits, dtype=torch.bool)
    order = rank_order(logits)
    sorted_probs = torch.softmax(logits, dim=-1).gather(-1, order)
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    keep_sorted = mass_before < p  # a token is needed while the mass before it is still short of p
    keep_sorted[..., 0] = True  # the most likely token is always kept
    return torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)


def filter_stages(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The logits after each step: (after temperature, after top-k, after top-p); dropped = -inf."""
    validate_sampling(temperature, top_k, top_p)
    tempered = apply_temperature(logits, temperature)
    after_k = tempered.masked_fill(~top_k_mask(tempered, top_k), float("-inf"))
    after_p = after_k.masked_fill(~top_p_mask(after_k, top_p), float("-inf"))
    return tempered, after_k, after_p


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    """Logits after temperature, top-k and top-p; dropped tokens are -inf. Softmax gives the distribution."""
    return filter_stages(logits, temperature, top_k, top_p)[-1]


def sample_token(logits: torch.Tensor, generator: torch.Generator | None = None) -> int:
    """Draw one token id from softmax(logits) (1-D). An all-but-one -inf row is a sure pick."""
    probs = torch.softmax(logits.float(), dim=-1)
    return int(torch.multinomial(probs, num_samples=1, generator=generator))
