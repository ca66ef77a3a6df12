"""Command line: `python -m gpt2 download 124M [--source auto|hub|openai]`, `generate "prompt" ...`,
`train ...` and `corpus --out FILE`. Models are named as in every command line of the project (model_args.py).

Exit status: 0 done, 1 the command could not be carried out (the message says why),
2 the command line itself is wrong (argparse's usage errors), 130 interrupted.
"""

from __future__ import annotations

import argparse
import codecs
import math
import os
import sys

from dataclasses import fields

from .config import GPTConfig
from .device import add_device_arguments
from .hub import MODEL_NAMES, SOURCES
from .model_args import add_model_arguments
from .sampling import validate_sampling, validate_seed


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one: Linux; else the CPU count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _number(kind, text: str, finite: bool = True):
    """`text` as an int or a float (finite unless told), else a usage error (float() reads 'nan' and 'inf')."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}") from None
    if finite and kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _finite(kind):
    """An argparse type: an int, or a float that is neither NaN nor infinite."""
    def parse(text: str):
        return _number(kind, text)
    parse.__name__ = kind.__name__
    return parse


def _bounded(kind, low=None, high=None, low_open=False):
    """An argparse type: `kind` within [low, high] (or (low, high] with low_open), else a usage error."""
    def parse(text: str):
        value = _number(kind, text)
        if (low is not None and (value <= low if low_open else value < low)) or (high is not None and value > high):
            bracket = "(" if low_open else "["
            upper = high if high is not None else "∞"
            raise argparse.ArgumentTypeError(f"{value} is outside {bracket}{low}, {upper}]")
        return value
    parse.__name__ = kind.__name__
    return parse


def _checked(kind, check):
    """An argparse type: `kind`, then `check(value)` (one of gpt2.sampling's rules); its ValueError is a usage error."""
    def parse(text: str):
        value = _number(kind, text, finite=False)  # NaN and infinities are the check's to refuse, saying why
        try:
            check(value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return value
    parse.__name__ = kind.__name__
    return parse


# Defaults of `train` for the model's shape: small enough for a laptop CPU (see README, "Train your own").
TRAIN_CONFIG_DEFAULTS = {"n_vocab": 4096, "n_ctx": 128, "n_embd": 128, "n_head": 4, "n_layer": 2}


def _add_train(commands) -> None:
    from .train import TrainSettings

    train = commands.add_parser("train", help="train a small GPT-2 (and its tokenizer) on a text",
                                description="Train a GPT-2 from scratch. Every GPTConfig field is a flag of "
                                            "the same name. Without --data it trains on the Python standard "
                                            "library's own text.")
    train.add_argument("--data", nargs="+", metavar="FILE", help="UTF-8 text files (default: the stdlib corpus)")
    train.add_argument("--out", required=True, help="folder that receives the checkpoint")
    train.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    train.add_argument("--tokenizer", help="a .tiktoken ranks file to reuse, or 'gpt2' (default: train one)")
    shape = train.add_argument_group("model shape (GPTConfig)")
    for f in fields(GPTConfig):
        flag, default = "--" + f.name.replace("_", "-"), TRAIN_CONFIG_DEFAULTS.get(f.name, f.default)
        if f.type in ("bool", bool):
            shape.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default)
        else:
            kind = {"int": int, "float": float}[f.type]
            shape.add_argument(flag, dest=f.name, type=_finite(kind), default=default, help=f"default {default}")
    opt = train.add_argument_group("training")
    for f in fields(TrainSettings):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "snapshot_steps":
            opt.add_argument(flag, dest=f.name, type=_step_list, default=(), help="e.g. 0,200,1000")
        elif f.name == "device":
            opt.add_argument(flag, dest=f.name, default="cpu", help="cpu (default), cuda, cuda:N or mps")
        elif f.name == "seed":
            opt.add_argument(flag, dest=f.name, type=_checked(int, validate_seed), default=f.default,
                             help=f"default {f.default}; 0 to 2**64 - 1")
        else:
            kind = {"int": int, "float": float, "int | None": int, "float | None": float}[f.type]
            opt.add_argument(flag, dest=f.name, type=_finite(kind), default=f.default, help=f"default {f.default}")
    train.add_argument("--quiet", action="store_true", help="no progress bar")


def _step_list(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of step numbers") from None
    return steps


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gpt2", description="GPT-2 from scratch: download, generate, "
                                                                         "train.")
    commands = parser.add_subparsers(dest="command", required=True)

    download = commands.add_parser("download", help="fetch a released model's weights (unless a cache has them)")
    download.add_argument("size", choices=MODEL_NAMES, help="a released size; a shipped model needs no download")
    download.add_argument("--cache-dir", help="where models are kept (default: $GPT2_EXPLORER_CACHE or the user cache)")
    download.add_argument("--source", choices=SOURCES, default="auto",
                          help="auto (default): the caches, then the Hugging Face Hub, then OpenAI; hub: the "
                               "Hugging Face cache or Hub; openai: OpenAI's original files into --cache-dir")

    generate = commands.add_parser("generate", help="continue a prompt, printing tokens as they come")
    generate.add_argument("prompt")
    add_model_arguments(generate)
    generate.add_argument("--cache-dir", help="where downloaded models are kept")
    generate.add_argument("--max-new-tokens", type=_bounded(int, 0), default=50)
    # The sampling flags are checked by the rules generate() itself applies (gpt2.sampling), so they cannot drift.
    generate.add_argument("--temperature", type=_checked(float, lambda t: validate_sampling(temperature=t)),
                          default=1.0, help="0 means greedy")
    generate.add_argument("--top-k", type=_checked(int, lambda k: validate_sampling(top_k=k)), default=None)
    generate.add_argument("--top-p", type=_checked(float, lambda p: validate_sampling(top_p=p)), default=None,
                          help="in (0, 1]")
    generate.add_argument("--seed", type=_checked(int, validate_seed), default=None, help="0 to 2**64 - 1")
    generate.add_argument("--threads", type=_bounded(int, 1), default=None,
                          help="torch CPU threads (default: all available)")
    add_device_arguments(generate)

    _add_train(commands)
    corpus = commands.add_parser("corpus", help="write the default training text (the stdlib's own) to a file")
    corpus.add_argument("--out", required=True, help="file to write (UTF-8)")
    return parser


def _download(args) -> None:
    from .checkpoint import SHIPPED_MODELS
    from .download import download_model
    from .hub import check_obtainable, locate

    if args.size in SHIPPED_MODELS:
        # Not an error: like a size already cached it prints its folder, so `download NAME` then
        # `generate --size NAME` works for every name a --size takes.
        print(f"{args.size} ships with the project and needs no download; it is in:", file=sys.stderr)
        print(SHIPPED_MODELS[args.size])
        return
    check_obtainable(args.size, args.cache_dir, source=args.source)  # offline: at once, not after the retries
    if args.source == "openai":
        print(download_model(args.size, args.cache_dir))
    else:
        print(locate(args.size, args.cache_dir, source=args.source))


def _generate(args) -> None:
    import torch

    from .checkpoint import load_checkpoint
    from .device import place, resolve_device, resolve_dtype
    from .generate import generate
    from .model_args import find_model
    from .tokenizer import get_tokenizer

    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)  # a bad name fails before any load
    torch.set_num_threads(args.threads or available_cpus())
    folder = args.model_dir or find_model(args.size, args.cache_dir)
    model = load_checkpoint(folder)
    place(model, device, dtype)  # on the CPU also the fast GPT-2 (gpt2/fast.py): same outputs, faster
    enc = get_tokenizer(folder)  # the folder's own BPE (a model trained here), else GPT-2's
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


def _train(args) -> None:
    from .train import TrainSettings, prepare, train

    config = GPTConfig(**{f.name: getattr(args, f.name) for f in fields(GPTConfig)})
    settings = TrainSettings(**{f.name: getattr(args, f.name) for f in fields(TrainSettings)})
    if settings.threads is None:
        settings = TrainSettings(**{**settings.__dict__, "threads": available_cpus()})
    run = prepare(config, settings, args.out, args.data, args.tokenizer, args.resume,
                  command=["python", "-m", "gpt2", *sys.argv[1:]])
    if run.resumed:
        print(run.resumed)
    log = train(run, progress=not args.quiet)
    last = log["evals"][-1]
    print(f"saved step {log['step']} ({log['stopped']}) to {args.out}: validation loss {last['val_loss']:.3f}")


def _corpus(args) -> None:
    import hashlib

    from .corpus import write_corpus

    characters = write_corpus(args.out)
    with open(args.out, "rb") as written:
        digest = hashlib.sha256(written.read()).hexdigest()
    print(f"wrote {characters:,} characters to {args.out} (sha256 {digest}: a model trained on this text "
          "records the same in its training_log.json, data.text_sha256)")


COMMANDS = {"download": _download, "generate": _generate, "train": _train, "corpus": _corpus}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # a usage error exits with 2 here
    try:
        COMMANDS[args.command](args)
    except (ValueError, OSError, RuntimeError) as err:  # DownloadError is a RuntimeError
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
