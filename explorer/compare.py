"""Two models side by side on the same prompt: what each predicts, how surprised each is, what its heads do.

For each model: its top next tokens, its surprise at every token of the prompt
(-ln p, the loss; see capture.token_surprise) and its map of head types (heads.py).

Surprise can be lined up token by token only when both models read the same tokens. Two
models with different tokenizers (the small model the app ships, with its own BPE, and
GPT-2) split the same text differently, so their i-th tokens are different pieces of text.
Then the comparison is made per byte of text instead: bits per byte = each model's total
surprise in bits divided by the UTF-8 bytes it predicted. Total surprise is -log2 of the
probability the model gave the whole text, which does not depend on how the text was
split; dividing by bytes, not tokens, makes the two numbers comparable. (The first token
of each is never predicted, so each counts the bytes after its own first token; for
prompts of more than a few tokens the difference is small, and the note says so.)

Only small results are kept (top tokens, surprise, labels): the traces of both models are
dropped once these are read, so a comparison holds no more memory than one Analyze.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import gpt2

from .capture import capture
from .heads import head_scores, pattern_scores
from .store import LoadedModel
from .panels import most_likely
from .tokens import display_token

TOP_TOKENS = 10


@dataclass
class Side:
    """One model's view of the prompt."""

    name: str
    token_bytes: list[bytes]
    tokens: list[str]  # display strings
    top_tokens: list[str]  # next token, most likely first
    top_probs: np.ndarray
    token_surprise: np.ndarray  # [n_tokens - 1] nats
    head_labels: list[list[str]]  # [layer][head]
    notice: str = ""  # the prompt was cut to this model's context

    @property
    def predicted_bytes(self) -> int:
        """UTF-8 bytes of the tokens after the first: the text this model predicted."""
        return sum(len(piece) for piece in self.token_bytes[1:])

    @property
    def bits_per_byte(self) -> float:
        if not self.predicted_bytes:
            return float("nan")
        return float(self.token_surprise.sum()) / math.log(2) / self.predicted_bytes


@dataclass
class Comparison:
    prompt: str
    a: Side
    b: Side
    same_tokens: bool  # both read the same pieces of text: surprise lines up token by token
    note: str  # how surprise is compared, in a sentence for the panel


def _side(loaded: LoadedModel, prompt: str, tokenizer, top: int) -> Side:
    ids = tokenizer.encode(prompt)
    n_ctx, notice = loaded.model.config.n_ctx, ""
    if len(ids) > n_ctx:
        ids, notice = ids[-n_ctx:], f"{loaded.name} reads at most {n_ctx} tokens: only the last {n_ctx} are compared."
    trace = capture(loaded.model, ids, score_patterns=pattern_scores)
    pieces = [tokenizer.decode_single_token_bytes(i) for i in ids]  # this model's own tokenizer
    order = most_likely(trace.next_token_probs, top)
    return Side(
        name=loaded.name, token_bytes=pieces, tokens=[display_token(p) for p in pieces],
        top_tokens=[display_token(tokenizer.decode_single_token_bytes(int(i))) for i in order],
        top_probs=trace.next_token_probs[order], token_surprise=trace.token_surprise,
        head_labels=head_scores(trace, loaded.induction).labels(), notice=notice)


def _note(a: Side, b: Side, same: bool) -> str:
    if not a.token_surprise.size or not b.token_surprise.size:  # one token: nothing was predicted yet
        short = a.name if not a.token_surprise.size else b.name
        return (f"{short} reads this prompt as a single token, and surprise is measured from the second token "
                f"on (how unexpected each token was given those before it). Add a few words to compare the two.")
    if same:
        return (f"Both models read the same {len(a.tokens)} tokens, so their surprise lines up token by token: "
                f"mean {a.token_surprise.mean():.2f} nats for {a.name}, {b.token_surprise.mean():.2f} for {b.name}.")
    return (f"The two models split the text differently ({len(a.tokens)} tokens for {a.name}, {len(b.tokens)} for "
            f"{b.name}), so their i-th tokens are different pieces of text. Compare bits per byte instead: "
            f"{a.bits_per_byte:.2f} for {a.name} over {a.predicted_bytes} bytes, {b.bits_per_byte:.2f} for {b.name} "
            f"over {b.predicted_bytes} bytes (each counts the text after its own first token).")


def compare(loaded_a: LoadedModel, loaded_b: LoadedModel, prompt: str, tokenizer_a=None, tokenizer_b=None,
            top: int = TOP_TOKENS) -> Comparison:
    """Run the prompt through both models and collect what a side-by-side panel shows.

    Each tokenizer defaults to the model's own (`LoadedModel.tokenizer`), else GPT-2's.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("The prompt is empty: type some text first.")
    if not 1 <= top <= 100:
        raise ValueError(f"top must be 1 to 100 tokens, got {top}")
    a = _side(loaded_a, prompt, tokenizer_a or loaded_a.tokenizer or gpt2.get_tokenizer(), top)
    b = _side(loaded_b, prompt, tokenizer_b or loaded_b.tokenizer or gpt2.get_tokenizer(), top)
    same = a.token_bytes == b.token_bytes
    return Comparison(prompt, a, b, same, _note(a, b, same))
