"""GPT-2 Explorer: start the app. The repository's app.py runs this (it is the file Hugging Face Spaces start),
and so does the `gpt2-explorer` command of an installed package.

    python app.py                       # GPT-2 124M, downloaded on first use; offline: the small model trained here
    python app.py --size 355M
    python app.py --size tiny           # the small GPT-2 this project trained and ships (no network)
    python app.py --model-dir DIR       # a checkpoint folder: OpenAI's, Hugging Face's or one `gpt2 train` wrote
    python app.py --host 0.0.0.0 --port 7860
    python app.py --memory-budget 4GB --sizes 124M,355M

Gradio's own environment variables (GRADIO_SERVER_NAME, GRADIO_SERVER_PORT, ...) are
honoured when no flag is given, so the same file runs unchanged on Hugging Face Spaces.
Torch uses as many threads as this process may use CPUs (Spaces sets CPU_CORES).

The host decides what visitors can cost: every visitor's analysis together stays within
--memory-budget (EXPLORER_MEMORY_BUDGET; default a quarter of the machine's memory), and
only the --sizes (EXPLORER_SIZES; default 124M) are offered, each checked at start against
the device's memory. The server answers only the routes the page uses (explorer/routes.py), and
keeps its temporary files in a private folder removed at exit (explorer/workspace.py).

Models run on --device (EXPLORER_DEVICE; auto: CUDA when present) in --dtype (EXPLORER_DTYPE;
float32). On a ZeroGPU Space (SPACES_ZERO_GPU set by Hugging Face) auto finds "cuda" (the
`spaces` package's stand-in), every model is loaded and placed there before launch, and each
forward pass is a spaces.GPU call.
"""

from __future__ import annotations

import os

# On a ZeroGPU Space, Hugging Face's `spaces` package must be imported before anything touches CUDA:
# it replaces torch's CUDA with a stand-in that hands out a real GPU only inside @spaces.GPU calls.
# Elsewhere importing it changes nothing (its GPU decorator returns the function as it is).
try:
    import spaces  # noqa: F401
except ImportError:  # the library and the app still work without it, just never on ZeroGPU
    spaces = None

# numpy's BLAS (OpenBLAS) keeps its own worker threads spinning for a while after each call.
# The explorer's numpy work is small (a PCA, cosine similarities), but those spinning threads
# then compete with torch's for the same cores: on 2 cores the next forward pass took ~60 %
# longer. One BLAS thread is plenty; it must be set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

import torch  # noqa: E402

import gpt2  # noqa: E402
from gpt2.device import add_device_arguments, resolve_device, resolve_dtype  # noqa: E402
from gpt2.model_args import SIZE_HELP, add_model_arguments  # noqa: E402
from explorer.budget import AnalysisBudget, default_budget, machine_memory, parse_bytes  # noqa: E402
from explorer.store import ModelStore, check_sizes_fit, offered_sizes  # noqa: E402
from explorer.workspace import Workspace  # noqa: E402


def return_freed_memory_to_the_system() -> None:
    """Make glibc give large freed blocks back to the system at once.

    glibc serves blocks above a threshold (128 KiB) with their own mmap and unmaps them on free,
    but raises that threshold to the size of each such block freed, up to 32 MiB: after the first
    analyses are dropped, the next ones' arrays land in the heap, whose freed space the process
    keeps. RSS then no longer falls when the budget drops analyses. Fixing the threshold keeps
    every analysis' arrays in their own mappings.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
        except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
            pass


def cpu_threads() -> int:
    """CPUs this process may really use: CPU_CORES (Spaces) or the scheduler's affinity mask."""
    try:
        return max(1, int(os.environ["CPU_CORES"]))
    except (KeyError, ValueError):
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="GPT-2 Explorer: look inside GPT-2.")
    add_model_arguments(parser, default=None,
                        size_help=f"model to start with: {SIZE_HELP} (default 124M, or the shipped model when 124M "
                                  "is not cached and cannot be downloaded now)")
    parser.add_argument("--cache-dir", help="where downloaded models are kept")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="make a public gradio.live link (off by default)")
    parser.add_argument("--max-queue", type=int, default=32, help="requests waiting at most; more are turned away")
    parser.add_argument("--memory-budget", type=parse_bytes, default=None,
                        help="bytes all visitors' analyses may hold together, e.g. 4GB "
                             "(default: EXPLORER_MEMORY_BUDGET, else a quarter of the machine's memory)")
    parser.add_argument("--sizes", default=None,
                        help="released sizes visitors may choose, e.g. 124M,355M (default: EXPLORER_SIZES, else "
                             "124M); each must fit the device's memory; empty with --model-dir: none")
    add_device_arguments(parser)
    return parser.parse_args(argv)


def on_zero_gpu() -> bool:
    """Whether this is a ZeroGPU Space: Hugging Face sets SPACES_ZERO_GPU there (read by `spaces` too)."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")


def preload_everything(store: ModelStore) -> None:
    """Load every model the menu offers before launch: on ZeroGPU, weights placed on "cuda" after launch
    are not handed to its GPU workers. A released size that cannot be loaded now leaves the menu, with a
    message in the log; the app serves the others."""
    for name in list(store.choices):
        try:
            store.get(name)
        except Exception as err:  # e.g. a size not in the Hugging Face cache, and no network
            print(f"Could not load {name} before launch, so it is not offered: {err}", file=sys.stderr)
            if name in store.sizes:
                store.sizes.remove(name)


class BackgroundLoad:
    """`store.get(name)` in a thread of its own; `result()` waits for it and raises what it raised."""

    def __init__(self, store: ModelStore, name: str):
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._load, args=(store, name), name=f"load {name}", daemon=True)
        self.thread.start()

    def _load(self, store: ModelStore, name: str) -> None:
        try:
            store.get(name)
        except BaseException as err:  # handed to the main thread, which decides what to serve instead
            self.error = err

    def result(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    return_freed_memory_to_the_system()
    torch.set_num_threads(cpu_threads())
    zero_gpu = on_zero_gpu()
    budget = AnalysisBudget(args.memory_budget or default_budget())
    try:  # a wrong setting stops the app before it loads anything, with what is wrong
        device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
        sizes = offered_sizes(args.sizes)
        if args.size in gpt2.SIZES and args.size not in sizes:
            sizes.append(args.size)  # the size the host asked to start with is always offered
        check_sizes_fit(sizes, device, dtype, host_memory=machine_memory(), reserved=budget.max_bytes)
    except ValueError as err:
        sys.exit(f"error: {err}")
    # On ZeroGPU every model is placed before launch (its docs require it), so all stay loaded.
    max_loaded = len(sizes) + 2 if zero_gpu else 2
    store = ModelStore(args.model_dir, args.cache_dir, sizes=sizes, device=device, dtype=dtype, zero_gpu=zero_gpu,
                       max_loaded=max_loaded)
    print(f"Models run on {device} in {str(dtype).removeprefix('torch.')}"
          f"{' (ZeroGPU: a GPU inside each spaces.GPU call)' if zero_gpu else ''}; analyses' memory budget: "
          f"{budget.max_bytes / 2**30:.1f} GiB; sizes offered: {', '.join(sizes) or 'none'}", file=sys.stderr)
    first = store.starting_model(args.size)
    if store.notice:
        print(store.notice.replace("**", ""), file=sys.stderr)
    print(f"Loading {first} ...", file=sys.stderr)
    # Gradio's temp files and the handouts go to a private folder, removed at exit. A folder the host
    # names in GRADIO_TEMP_DIR holds it; it must be set before Gradio is imported.
    workspace = Workspace(os.environ.get("GRADIO_TEMP_DIR")).install()
    # Load (and download) before serving, so the first visitor doesn't wait; meanwhile this thread imports
    # Gradio and the page's modules. Reading weights and torch's work mostly run outside Python's lock,
    # so on two cores the two overlap.
    loading = BackgroundLoad(store, first)
    from explorer.ui import build_app, launch_options  # after argument errors: Gradio takes a moment to import

    try:
        loading.result()
    except Exception as err:  # the app still starts; the status line and errors tell the user
        print(f"Could not load {first}: {err}", file=sys.stderr)
        if args.size is None and first in gpt2.SIZES:  # GPT-2 was only the default: serve what needs no network
            first = store.shipped_instead(first, f"could not be loaded ({err})")
            store.get(first)
    if zero_gpu:
        preload_everything(store)
    app = build_app(store, default=first, budget=budget, shelf_folder=workspace.handouts)
    app.queue(max_size=args.max_queue, default_concurrency_limit=4)
    app.launch(server_name=args.host, server_port=args.port, share=args.share,
               **launch_options(shelf_folder=workspace.handouts))


if __name__ == "__main__":
    main()
