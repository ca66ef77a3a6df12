"""Which model a command runs, said the same way by every command line: `python -m gpt2 generate` and
`download`, `python -m explorer export` and the app (`app.py`, `gpt2-explorer`).

    --size NAME      one of OpenAI's released sizes or a model this project trained and ships
                     (gpt2.MODEL_NAMES: 124M, 355M, 774M, 1558M, tiny)
    --model-dir DIR  a checkpoint folder in any layout `load_checkpoint` reads, used with its own tokenizer

A released size in no cache needs a download. A command line asks each server once, quickly, before
it starts one (hub.check_obtainable), so that offline it fails at once with what to do, instead of
after the download's retries.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .checkpoint import SHIPPED_MODELS
from .download import DownloadError
from .hub import MODEL_NAMES, check_obtainable, locate

MODEL_DIR_HELP = ("a checkpoint folder, read with its own tokenizer: OpenAI's layout (hparams.json + model.ckpt.*), "
                  "a Hugging Face GPT-2 folder (config.json + model.safetensors) or one `python -m gpt2 train` wrote")
SIZE_HELP = (f"a released GPT-2 (downloaded on first use) or a small GPT-2 this project trained and ships "
             f"({', '.join(SHIPPED_MODELS)}: no download)")


def add_model_arguments(parser: argparse.ArgumentParser, default: str | None = "124M", size_help: str = "") -> None:
    """--size and --model-dir, one or the other."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--size", choices=MODEL_NAMES, default=default,
                        help=size_help or f"{SIZE_HELP} (default {default})")
    source.add_argument("--model-dir", help=MODEL_DIR_HELP)


def find_model(size: str, cache_dir: str | Path | None = None, *, source: str = "auto") -> Path:
    """The folder holding the model named `size`: a shipped model's, or a released size's, found in a cache or
    downloaded. Offline with nothing cached it raises DownloadError at once, naming the command that helps."""
    if size in SHIPPED_MODELS:
        return SHIPPED_MODELS[size]
    try:
        check_obtainable(size, cache_dir, source=source)
    except DownloadError as err:
        shipped = next(iter(SHIPPED_MODELS))
        raise DownloadError(f"{err} Or use --size {shipped}, the small GPT-2 that ships with the project.") from None
    return locate(size, cache_dir, source=source)
