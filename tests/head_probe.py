"""An independent measurement of previous-token and induction heads, for checking trained models.

It reads only `h.{l}.attn.hook_pattern` through plain forward hooks and the model's logits, never
the explorer's own head scores, so it can check them. Used by tests/test_shipped_model.py and by
the command that picks and checks the model the app ships.

- Previous-token score of a head: over windows of natural text, the mean attention from position i
  to position i - 1 (i >= 1).
- Induction score: on a random sequence s of L frequent tokens followed by the same L tokens again,
  the mean attention from position L + j (the second occurrence of s[j]) to position j + 1 (the
  token that followed s[j] the first time), for j = 0 .. L - 2.
- Copying: the mean loss of predicting s[j + 1] in the second copy against the first.
"""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F


def _patterns_and_logits(model, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every layer's attention pattern stacked as [layer, batch, head, query, key], and the logits."""
    patterns = {}
    handles = []
    for name, module in model.named_modules():
        if name.endswith("attn.hook_pattern"):
            layer = int(name.split(".")[1])
            handles.append(module.register_forward_hook(
                lambda _m, _i, out, layer=layer: patterns.__setitem__(layer, out.detach().float())))
    try:
        with torch.no_grad():
            logits = model(ids)
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack([patterns[layer] for layer in sorted(patterns)]), logits.float()


def previous_token_scores(model, token_ids: list[int], windows: int = 16) -> torch.Tensor:
    """[layer, head] mean attention to the previous token over `windows` windows of natural text."""
    n_ctx = model.config.n_ctx
    starts = torch.linspace(0, len(token_ids) - n_ctx - 1, windows).long().tolist()
    batch = torch.tensor([token_ids[s:s + n_ctx] for s in starts])
    patterns, _ = _patterns_and_logits(model, batch)
    previous = patterns.diagonal(offset=-1, dim1=-2, dim2=-1)  # [layer, batch, head, T - 1]: (i, i - 1)
    return previous.mean(dim=(1, 3))


def frequent_tokens(token_ids: list[int], count: int = 500) -> list[int]:
    return [token for token, _ in Counter(token_ids).most_common(count)]


def induction_probe(model, frequent: list[int], length: int | None = None, sequences: int = 16,
                    seed: int = 0) -> dict:
    """Induction attention per head and the loss on the first and second copy of a repeated sequence."""
    length = length or model.config.n_ctx // 2
    generator = torch.Generator().manual_seed(seed)
    pool = torch.tensor(frequent)
    first = pool[torch.randint(len(pool), (sequences, length), generator=generator)]
    ids = torch.cat([first, first], dim=1)  # (sequences, 2L)
    patterns, logits = _patterns_and_logits(model, ids)
    j = torch.arange(length - 1)
    induction = patterns[:, :, :, length + j, j + 1].mean(dim=(1, 3))  # [layer, head]
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")  # (sequences, 2L - 1)
    return {
        "induction": induction,
        "first_copy_loss": float(losses[:, :length - 1].mean()),  # predicting s[1..L-1] the first time
        "second_copy_loss": float(losses[:, length:].mean()),  # predicting s[1..L-1] again
    }


def every_token(model, eot: int) -> list[int]:
    """Every token id of the model's vocabulary but <|endoftext|>: the pool of a uniform random sequence."""
    return [token for token in range(model.config.n_vocab) if token != eot]


# About forty tokens of plain English for the model trained on Python's standard library (whose docstrings
# and comments are English), with no repeat inside it.
ENGLISH = ("The committee met on a cold morning to decide where the new library should be built, and most of "
           "them agreed on the old market square.")


def repeated_text_probe(model, token_ids: list[int]) -> dict:
    """The loss on a text's tokens the first time and when the same text follows again."""
    ids = torch.tensor([token_ids + token_ids])
    _, logits = _patterns_and_logits(model, ids)
    losses = F.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="none")
    n = len(token_ids)
    return {"first_copy_loss": float(losses[:n - 1].mean()), "second_copy_loss": float(losses[n:].mean()),
            "tokens": n}
