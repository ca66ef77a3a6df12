"""Command line: `python -m gpt2 download 124M` and `python -m gpt2 generate "prompt" ...`."""

from __future__ import annotations

import argparse
import codecs
import os
import sys

from .config import SIZES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gpt2", description="GPT-2 from scratch: download and generate.")
    commands = parser.add_subparsers(dest="command", required=True)

    download = commands.add_parser("download", help="fetch OpenAI's released weights into the cache")
    download.add_argument("size", choices=SIZES)
    download.add_argument("--cache-dir", help="where models are kept (default: $GPT2_EXPLORER_CACHE or the user cache)")

    generate = commands.add_parser("generate", help="continue a prompt, printing tokens as they come")
    generate.add_argument("prompt")
    source = generate.add_mutually_exclusive_group()
    source.add_argument("--size", choices=SIZES, default="124M", help="released model to use (downloaded if needed)")
    source.add_argument("--model-dir", help="a directory in OpenAI's checkpoint layout")
    generate.add_argument("--cache-dir", help="where downloaded models are kept")
    generate.add_argument("--max-new-tokens", type=int, default=50)
    generate.add_argument("--temperature", type=float, default=1.0, help="0 means greedy")
    generate.add_argument("--top-k", type=int, default=None)
    generate.add_argument("--top-p", type=float, default=None)
    generate.add_argument("--seed", type=int, default=None)
    generate.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all available)")
    return parser


def _download(args) -> None:
    from .download import download_model

    print(download_model(args.size, args.cache_dir))


def _generate(args) -> None:
    import torch

    from .checkpoint import load_openai_checkpoint, load_pretrained
    from .generate import generate
    from .fast import make_fast
    from .tokenizer import get_tokenizer

    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    model = load_openai_checkpoint(args.model_dir) if args.model_dir else load_pretrained(args.size, args.cache_dir)
    make_fast(model)  # same outputs, faster on the CPU (gpt2/fast.py)
    enc = get_tokenizer()
    prompt_ids = enc.encode(args.prompt)
    tokens = generate(model, prompt_ids, args.max_new_tokens, temperature=args.temperature,
                      top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    # A token can end in the middle of a UTF-8 character: decode bytes incrementally.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    sys.stdout.write(args.prompt)
    for token in tokens:
        sys.stdout.write(decoder.decode(enc.decode_single_token_bytes(token)))
        sys.stdout.flush()
    sys.stdout.write(decoder.decode(b"", final=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _download(args) if args.command == "download" else _generate(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:  # DownloadError is a RuntimeError
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
