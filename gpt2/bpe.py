"""Train a byte-level BPE tokenizer and write it as a tiktoken ranks file.

Byte-level BPE (Sennrich et al. 2016, on bytes as in the GPT-2 paper, section 2.2):
the text is cut into pieces by GPT-2's pre-tokenising pattern (a word keeps its
leading space: " moves"), each piece becomes its UTF-8 bytes, and training repeats
one step: count every adjacent pair of tokens inside the pieces, and merge the most
frequent pair into a new token. The vocabulary is the 256 bytes, then one token per
merge, then `<|endoftext|>`, so `n_vocab = 256 + merges + 1`.

HF `tokenizers` does the counting (it is fast); this module turns its result into
tiktoken's format, the one `assets/gpt2.tiktoken` uses: one line per token, its bytes
in base64 and its rank. tiktoken encodes a piece by repeatedly merging the adjacent
pair whose joined bytes have the lowest rank, so a token's rank is the step at which
training first made it. Bytes keep their own value as rank (0-255).
"""

from __future__ import annotations

import base64
import functools
import json
import os
from collections.abc import Iterable
from pathlib import Path

from .tokenizer import EOT_TOKEN, SPLIT_PATTERN, GPT2Encoding

MIN_VOCAB = 258  # 256 bytes + at least one merge + <|endoftext|>
MAX_VOCAB = 100_000


@functools.cache
def _unicode_to_byte() -> dict[str, int]:
    """Invert GPT-2's byte -> printable character table, which HF's ByteLevel uses to spell bytes."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    chars = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + shift)
            shift += 1
    return {char: b for b, char in chars.items()}


def _spelled_bytes(token: str) -> bytes:
    table = _unicode_to_byte()
    return bytes(table[char] for char in token)


def train_bpe_ranks(texts: Iterable[str], n_vocab: int) -> dict[bytes, int]:
    """Learn `n_vocab - 257` merges from `texts`; returns {token bytes: rank} for all but <|endoftext|>.

    Raises ValueError if the text is too small to learn that many merges.
    """
    return ranks_from_trained(train_hf_bpe(texts, n_vocab), n_vocab)


def train_hf_bpe(texts: Iterable[str], n_vocab: int):
    """HF `tokenizers`' byte-level BPE trained on `texts` with GPT-2's pre-tokenising pattern."""
    if not MIN_VOCAB <= n_vocab <= MAX_VOCAB:
        raise ValueError(f"n_vocab must be between {MIN_VOCAB} and {MAX_VOCAB}, got {n_vocab}")
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    # Split by GPT-2's own pattern (not HF's built-in copy) and then spell each byte as a character.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=n_vocab - 1, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def ranks_from_trained(tokenizer, n_vocab: int) -> dict[bytes, int]:
    """{token bytes: rank} from a trained HF BPE: the bytes, then each merge's result in merge order."""
    merges = _merges(tokenizer)
    ranks = {bytes([b]): b for b in range(256)}
    for left, right in merges:
        ranks.setdefault(_spelled_bytes(left) + _spelled_bytes(right), len(ranks))
    if len(ranks) < n_vocab - 1:
        raise ValueError(f"the text is too small for a vocabulary of {n_vocab}: it only supports "
                         f"{len(ranks) + 1} (pairs seen at least twice); give more text or a smaller n_vocab")
    return ranks


def _merges(tokenizer) -> list[tuple[str, str]]:
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]


def write_ranks(ranks: dict[bytes, int], path: str | Path) -> None:
    """Write {token bytes: rank} in tiktoken's format, ordered by rank, atomically."""
    path = Path(path)
    lines = [f"{base64.b64encode(token).decode('ascii')} {rank}\n" for token, rank in
             sorted(ranks.items(), key=lambda item: item[1])]
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text("".join(lines), encoding="ascii")
    os.replace(tmp, path)


def encoding_from_ranks(ranks: dict[bytes, int], name: str = "trained-bpe") -> GPT2Encoding:
    """A tiktoken Encoding for these ranks, with `<|endoftext|>` as the last id."""
    eot_id = len(ranks)
    return GPT2Encoding(name=name, pat_str=SPLIT_PATTERN, mergeable_ranks=ranks,
                        special_tokens={EOT_TOKEN: eot_id}, explicit_n_vocab=eot_id + 1)


def train_tokenizer(texts: Iterable[str], n_vocab: int, name: str | None = None) -> GPT2Encoding:
    """Train a byte-level BPE of `n_vocab` tokens on `texts` and return it as a tiktoken Encoding."""
    return encoding_from_ranks(train_bpe_ranks(texts, n_vocab), name or f"bpe-{n_vocab}")
