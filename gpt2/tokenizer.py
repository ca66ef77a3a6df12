"""GPT-2's byte-level BPE tokenizer, loaded from the copy shipped in assets/.

Text is first split by a regular expression into word-like pieces (a leading space
stays with the word: " moves"), each piece is turned into UTF-8 bytes, and the bytes
are merged pairwise by rank until no learned merge applies (Sennrich et al. 2016,
applied to bytes as in the GPT-2 paper, section 2.2). The vocabulary is 256 single
bytes + 50,000 merges + one special token, <|endoftext|> = 50256.

The merge table is tiktoken's `r50k_base` file: one line per token, the token's bytes
in base64 and its rank (= its id). Its sha256 is checked on load, so a damaged or
swapped file fails loudly instead of producing wrong ids.

On `<|endoftext|>` in user text: `encode` turns it into the single special token
50256, the separator GPT-2 saw between documents in training, so a learner can type
it and see the model react to it. Nothing raises for it. Use `encode_ordinary` to
treat it as plain characters instead.

A model trained here has its own, smaller BPE (see bpe.py) in its folder as
`tokenizer.tiktoken`, in the same format; `get_tokenizer(folder)` returns it, so
every model, GPT-2's or a trained one, is used through a `tiktoken.Encoding`.
Its `<|endoftext|>` is the last id.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from pathlib import Path

import tiktoken

from .errors import CheckpointError, MissingFile
from .resources import ASSETS
from .weights import is_project_checkpoint

BPE_FILE = ASSETS / "gpt2.tiktoken"
BPE_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
EOT_TOKEN = "<|endoftext|>"
EOT_ID = 50256
TOKENIZER_NAME = "tokenizer.tiktoken"  # a trained model's own ranks file, beside its weights
# GPT-2's pre-tokenisation pattern: contractions, letters, digits, other symbols, spaces.
SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


class GPT2Encoding(tiktoken.Encoding):
    """tiktoken's Encoding, with `<|endoftext|>` in text encoded as the special token."""

    def encode(self, text: str, *, allowed_special="all", disallowed_special=()) -> list[int]:
        return super().encode(text, allowed_special=allowed_special, disallowed_special=disallowed_special)


def read_bpe_ranks(path: Path = BPE_FILE, expected_sha256: str | None = BPE_SHA256) -> dict[bytes, int]:
    """Parse a .tiktoken file into {token bytes: rank}, after checking its sha256 (if one is expected).

    A CheckpointError names the file by its name in its folder and says what is wrong with it.
    """
    path = Path(path)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise CheckpointError(f"{path.name} has sha256 {digest}, expected {expected_sha256}: the BPE table is "
                              "damaged", path.parent)
    ranks = {}
    for number, line in enumerate(data.splitlines(), start=1):
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except ValueError:  # too few or many fields, bad base64 (binascii.Error), a rank that is not a number
            raise CheckpointError(f"{path.name} is not a BPE ranks file: line {number} is not "
                                  "'<token bytes in base64> <rank>'", path.parent) from None
    return ranks


def get_tokenizer(directory: str | Path | None = None) -> GPT2Encoding:
    """The tokenizer of the model in `directory`: its own `tokenizer.tiktoken`, else GPT-2's.

    With no directory this is GPT-2's tokenizer, read once from assets/ and shared; so it is for a
    folder in OpenAI's or Hugging Face's layout, which speak GPT-2's. A model trained here keeps its
    own beside its weights: without it, MissingFile says so (GPT-2's ids would not be its ids).
    """
    if directory is not None:
        path = Path(directory) / TOKENIZER_NAME
        if path.is_file():
            stat = path.stat()
            return _trained_tokenizer(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        if is_project_checkpoint(directory):
            raise MissingFile(f"{TOKENIZER_NAME} is missing: a model trained here is read with its own tokenizer, "
                              "kept beside its weights (a training snapshot's is its run's, two folders up)",
                              directory)
    return _gpt2_tokenizer()


@functools.lru_cache(maxsize=8)
def _trained_tokenizer(path: str, mtime_ns: int, size: int) -> GPT2Encoding:
    """A trained ranks file as an Encoding; cached by path and file version (a retrained file is re-read)."""
    ranks = read_bpe_ranks(Path(path), expected_sha256=None)
    if sorted(ranks.values()) != list(range(len(ranks))) or len(ranks) < 256:
        raise CheckpointError(f"{Path(path).name} is not a BPE ranks file: its ranks must be 0..n-1, one per token, "
                              "and cover the 256 bytes", Path(path).parent)
    eot_id = len(ranks)
    return GPT2Encoding(name=f"{Path(path).parent.name}-bpe-{eot_id + 1}", pat_str=SPLIT_PATTERN,
                        mergeable_ranks=ranks, special_tokens={EOT_TOKEN: eot_id}, explicit_n_vocab=eot_id + 1)


@functools.cache
def _gpt2_tokenizer() -> GPT2Encoding:
    return GPT2Encoding(
        name="gpt2",
        pat_str=SPLIT_PATTERN,
        mergeable_ranks=read_bpe_ranks(),
        special_tokens={EOT_TOKEN: EOT_ID},
        explicit_n_vocab=50257,
    )
