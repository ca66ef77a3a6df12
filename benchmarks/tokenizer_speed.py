"""Training a byte-level BPE on the standard library's text: time, and tokens per character against GPT-2's.

    .venv/bin/python benchmarks/tokenizer_speed.py                  # vocabulary 4096
    .venv/bin/python benchmarks/tokenizer_speed.py --vocab 1024 4096 16384

For each vocabulary size: the wall time of `gpt2.bpe.train_bpe_ranks` on the default
corpus (`gpt2.corpus`, this Python's standard library: pydoc topics and source files)
including the conversion to tiktoken ranks, then tokens per character of the trained
tokenizer and of GPT-2's (`gpt2.get_tokenizer()`, 50,257 tokens) on the same text. Fewer
tokens per character means each context window holds more text. The text a tokenizer
was trained on flatters it, so the figures are also given on held-out text: the merges are
learned on nine tenths of the documents and counted on every tenth.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gpt2  # noqa: E402
from gpt2.bpe import encoding_from_ranks, train_bpe_ranks  # noqa: E402
from gpt2.corpus import stdlib_documents  # noqa: E402


def tokens_per_char(enc, documents: list[str]) -> float:
    tokens = sum(len(ids) for ids in enc.encode_ordinary_batch(documents))
    return tokens / sum(len(d) for d in documents)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, nargs="+", default=[4096])
    args = parser.parse_args()
    documents = list(stdlib_documents())
    held_out = documents[9::10]
    learned_on = [d for i, d in enumerate(documents) if i % 10 != 9]
    chars = sum(len(d) for d in documents)
    print(f"corpus: Python {sys.version.split()[0]} standard library, {len(documents)} documents, {chars:,} characters")
    gpt2_enc = gpt2.get_tokenizer()
    gpt2_all, gpt2_held = tokens_per_char(gpt2_enc, documents), tokens_per_char(gpt2_enc, held_out)
    print(f"{'tokenizer':<16} {'train s':>8} {'tok/char':>9} {'held-out':>9} {'vs GPT-2':>9}")
    print(f"{'GPT-2 (50257)':<16} {'-':>8} {gpt2_all:>9.3f} {gpt2_held:>9.3f} {1:>9.2f}")
    for n_vocab in args.vocab:
        start = time.perf_counter()
        enc = encoding_from_ranks(train_bpe_ranks(documents, n_vocab))
        seconds = time.perf_counter() - start
        held_enc = encoding_from_ranks(train_bpe_ranks(learned_on, n_vocab))
        ours_all, ours_held = tokens_per_char(enc, documents), tokens_per_char(held_enc, held_out)
        print(f"{f'ours ({n_vocab})':<16} {seconds:>8.1f} {ours_all:>9.3f} {ours_held:>9.3f} "
              f"{ours_held / gpt2_held:>9.2f}")


if __name__ == "__main__":
    main()
