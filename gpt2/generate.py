"""Autoregressive generation: sample a token, append it, repeat.

    p(t_{n+1} | t_1..t_n) = softmax(filter(logits_n))      see gpt2.sampling for filter

The prompt goes through the model once (the "prefill"), filling a KV cache; after that
each new token costs one forward pass of a single position against the cached keys and
values. `generate` is an iterator, so a caller (the CLI, the explorer) can show each
token as soon as it exists.

Sliding window (`window_length`, the one rule every caller uses): GPT-2 has n_ctx = 1024
learned positions and cannot see further back. When the text outgrows n_ctx tokens,
the model is given only the most recent `n_ctx - n_ctx // 4` of them (768 for GPT-2),
re-encoded at positions 0..767 (cached keys carry their old positions, so the cache
must be rebuilt); the window then grows again token by token up to n_ctx, and slides
once more. Rebuilding every quarter-context instead of on every token keeps the cost
of long generations near that of the cached case, at the price of the model seeing
between 3/4 and all of the context.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from .model import GPT2
from .sampling import filter_logits, sample_token, validate_sampling, validate_seed
from .tokenizer import EOT_ID


def slide_keep(n_ctx: int) -> int:
    """How many of the most recent tokens the window keeps when it slides."""
    return n_ctx - n_ctx // 4


def window_length(n_tokens: int, n_ctx: int) -> int:
    """How many of the last `n_tokens` tokens the model sees when it predicts the next one.

    All of them while they fit; past n_ctx the window restarts at `slide_keep(n_ctx)` and
    grows by one per token until it is full again:
    n_ctx + 1 tokens -> keep, n_ctx + 2 -> keep + 1, ..., then keep again after n_ctx.
    """
    if n_tokens <= n_ctx:
        return n_tokens
    keep = slide_keep(n_ctx)
    return keep + (n_tokens - n_ctx - 1) % (n_ctx - keep + 1)


def check_prompt(model: GPT2, prompt_ids: Sequence[int] | torch.Tensor) -> list[int]:
    """The prompt as a list of ids, or a ValueError saying why the model cannot take it."""
    ids = prompt_ids.tolist() if isinstance(prompt_ids, torch.Tensor) else list(prompt_ids)
    n_vocab, n_ctx = model.config.n_vocab, model.config.n_ctx
    if not ids:
        raise ValueError("the prompt is empty: give at least one token")
    if len(ids) > n_ctx:
        raise ValueError(f"the prompt has {len(ids)} tokens; this model reads at most {n_ctx}")
    bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < n_vocab]
    if bad:
        raise ValueError(f"token ids must be integers in [0, {n_vocab}); got {bad[:5]}")
    return ids


@torch.inference_mode()
def _forward_last(model: GPT2, ids: list[int], cache) -> torch.Tensor:
    device = model.wte.weight.device
    logits = model(torch.tensor([ids], dtype=torch.long, device=device), kv_cache=cache, last_only=True)
    return logits[0, -1]  # (n_vocab,)


def generate(model: GPT2, prompt_ids: Sequence[int] | torch.Tensor, max_new_tokens: int,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             seed: int | None = None, stop_at_eos: bool = True) -> Iterator[int]:
    """Yield up to `max_new_tokens` new token ids after `prompt_ids`.

    temperature=0 picks the most likely token every time (greedy). A `seed` makes the
    draw repeatable; it seeds a private torch.Generator, so the global RNG is untouched.
    With `stop_at_eos`, generation stops after yielding <|endoftext|> (id 50256).
    Settings are checked before anything runs: a bad one raises ValueError at the call.
    """
    validate_sampling(temperature, top_k, top_p)
    validate_seed(seed)
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a whole number >= 0, got {max_new_tokens!r}")
    ids = check_prompt(model, prompt_ids)
    generator = torch.Generator()
    if seed is None:
        generator.seed()  # fresh entropy, still not the global generator
    else:
        generator.manual_seed(seed)
    return _decode(model, ids, max_new_tokens, temperature, top_k, top_p, generator, stop_at_eos)


def _decode(model, ids, max_new_tokens, temperature, top_k, top_p, generator, stop_at_eos) -> Iterator[int]:
    n_ctx = model.config.n_ctx
    cache = model.new_kv_cache(max_len=n_ctx)
    logits = _forward_last(model, ids, cache)
    for step in range(max_new_tokens):
        if temperature == 0:
            token = int(logits.argmax())  # greedy needs no sort and no draw
        else:
            token = sample_token(filter_logits(logits, temperature, top_k, top_p), generator)
        ids.append(token)
        yield token
        if (stop_at_eos and token == EOT_ID) or step == max_new_tokens - 1:
            return
        window = window_length(len(ids), n_ctx)
        if window == cache.length + 1:  # the window grew by the new token: the cache holds the rest
            logits = _forward_last(model, [token], cache)
        else:  # the window slid: its tokens sit at new positions, so they are encoded afresh
            cache.reset()
            logits = _forward_last(model, ids[-window:], cache)
