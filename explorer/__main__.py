"""Command line: `python -m explorer export "prompt" --out run.html [--model-dir DIR | --size 124M|tiny|...]`.

Writes the analysis of the prompt as a self-contained page (run.html) and its numbers
next to it (run.json); see explorer/export.py. Errors exit with status 1 and a message,
wrong usage with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from gpt2 import SIZES
from gpt2.device import add_device_arguments
from gpt2.model_args import add_model_arguments


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m explorer", description="GPT-2 Explorer from the command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="one analysis as a self-contained HTML page plus its numbers (JSON)")
    export.add_argument("prompt")
    export.add_argument("--out", required=True, help="the page to write, e.g. run.html (run.json is written beside it)")
    add_model_arguments(export)
    export.add_argument("--cache-dir", help="where downloaded models are kept")
    export.add_argument("--layer", type=int, help="layer of the head to show (default: the strongest induction head)")
    export.add_argument("--head", type=int, help="head to show, with --layer")
    export.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all available)")
    add_device_arguments(export)
    return parser


def _export(args) -> None:
    import torch

    from .export import write_export
    from .store import ModelStore
    from .analysis import analyze

    from gpt2.device import resolve_device, resolve_dtype
    from gpt2.model_args import find_model

    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    if args.size in SIZES and not args.model_dir:
        find_model(args.size, args.cache_dir)  # fetched here, with a command line's messages; the store finds it cached
    store = ModelStore(args.model_dir, cache_dir=args.cache_dir, device=device, dtype=dtype)
    # The app's own rule from a --size to a menu name ("tiny" is "tiny (trained here)").
    loaded = store.get(store.local_name if args.model_dir else store.starting_model(args.size))
    page, numbers = write_export(loaded, analyze(loaded, args.prompt), args.out, args.layer, args.head)
    print(f"wrote {page} and {numbers}")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.layer is None) != (args.head is None):
        parser.error("--layer and --head go together")
    if not args.out.lower().endswith((".html", ".htm")):
        parser.error(f"--out must name an .html file, got {args.out!r}")
    from gpt2.download import DownloadError

    try:
        _export(args)
    except (ValueError, OSError, DownloadError) as err:  # bad prompt or head, unreadable checkpoint, failed download, full disk
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
