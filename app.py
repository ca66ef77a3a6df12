"""GPT-2 Explorer: start the app.

    python app.py                       # GPT-2 124M, downloaded on first use
    python app.py --size 355M
    python app.py --model-dir DIR       # a checkpoint directory in OpenAI's layout
    python app.py --host 0.0.0.0 --port 7860

Gradio's own environment variables (GRADIO_SERVER_NAME, GRADIO_SERVER_PORT, ...) are
honoured when no flag is given, so the same file runs unchanged on Hugging Face Spaces.
Torch uses as many threads as this process may use CPUs (Spaces sets CPU_CORES).
"""

from __future__ import annotations

import os

# numpy's BLAS (OpenBLAS) keeps its own worker threads spinning for a while after each call.
# The explorer's numpy work is small (a PCA, cosine similarities), but those spinning threads
# then compete with torch's for the same cores: on 2 cores the next forward pass took ~60 %
# longer. One BLAS thread is plenty; it must be set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402

import gpt2  # noqa: E402
from explorer.models import ModelStore  # noqa: E402


def cpu_threads() -> int:
    """CPUs this process may really use: CPU_CORES (Spaces) or the scheduler's affinity mask."""
    try:
        return max(1, int(os.environ["CPU_CORES"]))
    except (KeyError, ValueError):
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="GPT-2 Explorer: look inside GPT-2.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--size", choices=gpt2.SIZES, default=None, help="released model to start with (default 124M)")
    source.add_argument("--model-dir", help="a checkpoint directory in OpenAI's layout")
    parser.add_argument("--cache-dir", help="where downloaded models are kept")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="make a public gradio.live link (off by default)")
    parser.add_argument("--max-queue", type=int, default=32, help="requests waiting at most; more are turned away")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    torch.set_num_threads(cpu_threads())

    from explorer.ui import build_app, launch_options  # Gradio imports take a moment: after argument errors

    store = ModelStore(args.model_dir, args.cache_dir)
    first = store.local_name or args.size or "124M"
    try:
        print(f"Loading {first} ...", file=sys.stderr)
        store.get(first)  # load (and download) before serving, so the first visitor doesn't wait
    except Exception as err:  # the app still starts; the status line and errors tell the user
        print(f"Could not load {first}: {err}", file=sys.stderr)
    app = build_app(store, default=first)
    app.queue(max_size=args.max_queue, default_concurrency_limit=4)
    app.launch(server_name=args.host, server_port=args.port, share=args.share, **launch_options())


if __name__ == "__main__":
    main()
