"""Cold start: from `python app.py` to the first Analyze answered, with GPT-2 124M in the Hugging Face cache.

    .venv/bin/python benchmarks/cold_start.py [--rounds 3]

This is a Hugging Face Space that lists openai-community/gpt2 in `preload_from_hub`: the Hub's
files are in the HF cache before the app starts, and the project's own cache is empty. Here the
files are a random 124M-shaped model in the Hub's exact layout (config.json + model.safetensors
with the `h.N.attn.bias` masks, 548 MB like the real one), put into a temporary HF cache as
openai-community/gpt2; nothing can be downloaded (HF_HUB_OFFLINE=1, OpenAI's address a closed port).

Each round starts a fresh `python app.py --cache-dir <empty>` and times, from just before the
process starts:

    serving    the page answers (Python and torch imported, the model found, loaded and prepared,
               Gradio's Blocks built and launched)
    analyze    gradio_client's /analyze of a short prompt answered (the first visitor's first click)

and reads /proc/<pid>/maps to see whether TensorFlow was loaded. Target: analyze <= 5 s.
Then, in one more fresh process, where the time goes: the same steps app.py takes before
serving, timed one by one (`--stages`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import gpt2  # noqa: E402
from app_server import free_port  # noqa: E402
from test_hub_weights import closed_port_url, put_in_hf_cache  # noqa: E402

PROMPT = "The cat sat on the mat because it was tired"
CONV1D = re.compile(r"h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight")


def write_hub_style_124m(folder: Path) -> None:
    """A random GPT-2 124M as the Hub's openai-community/gpt2 stores it: HF names, Conv1D (in, out), masks."""
    torch.manual_seed(0)
    model = gpt2.GPT2(gpt2.GPTConfig()).eval()
    config = model.config
    tensors = {name: (p.detach().T if CONV1D.fullmatch(name) else p.detach()).contiguous()
               for name, p in model.named_parameters()}
    mask = torch.tril(torch.ones(config.n_ctx, config.n_ctx)).view(1, 1, config.n_ctx, config.n_ctx)
    for layer in range(config.n_layer):
        tensors[f"h.{layer}.attn.bias"] = mask.clone()
    save_file(tensors, str(folder / "model.safetensors"), {"format": "pt"})
    (folder / "config.json").write_text(json.dumps({
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "activation_function": "gelu_new",
        "vocab_size": config.n_vocab, "n_positions": config.n_ctx, "n_ctx": config.n_ctx, "n_embd": config.n_embd,
        "n_head": config.n_head, "n_layer": config.n_layer, "layer_norm_epsilon": 1e-5}))


def wait_for_page(url: str, process: subprocess.Popen, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"app.py did not answer on {url} within {timeout} s")


def tensorflow_loaded(pid: int) -> bool:
    return "tensorflow" in Path(f"/proc/{pid}/maps").read_text()


def one_cold_start(hf_cache: Path, work: Path) -> dict:
    from gradio_client import Client  # imported before the clock starts: the visitor's client is not the app

    empty = Path(tempfile.mkdtemp(dir=work, prefix="project-cache-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log_path = work / f"app-{port}.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
           "HF_HUB_CACHE": str(hf_cache), "GPT2_EXPLORER_CACHE": str(empty),
           "GPT2_EXPLORER_DOWNLOAD_URL": closed_port_url(), "GRADIO_TEMP_DIR": str(work / "gradio-temp")}
    with open(log_path, "w") as log:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--cache-dir",
                                    str(empty)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for_page(url, process)
            serving = time.perf_counter() - start
            Client(url, verbose=False).predict(PROMPT, api_name="/analyze")
            analyze = time.perf_counter() - start
            tensorflow = tensorflow_loaded(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
    text = log_path.read_text()
    if "Loading 124M" not in text:
        raise RuntimeError(f"the app did not start with 124M; see {log_path}")
    return {"serving": serving, "analyze": analyze, "tensorflow": tensorflow}


def time_stages(hf_cache: Path) -> None:
    """Run in a fresh process: app.py's steps before serving, one by one, with the seconds each took."""
    clock = [time.perf_counter()]

    def lap(what: str) -> None:
        clock.append(time.perf_counter())
        print(f"  {what:<44} {clock[-1] - clock[-2]:>6.2f} s")

    from huggingface_hub import constants
    constants.HF_HUB_CACHE = str(hf_cache)
    from explorer.ui import build_app
    lap("import gradio and the explorer's UI")
    from explorer.heads import induction_scores
    from explorer.embeddings import pca_2d
    from gpt2.fast import make_fast
    from gpt2.hub import locate
    torch.set_num_threads(min(2, os.cpu_count()))
    folder = locate("124M", tempfile.mkdtemp())
    lap("find 124M in the HF cache (gpt2.hub.locate)")
    model = gpt2.load_checkpoint(folder)
    lap("read the weights (gpt2.load_checkpoint)")
    make_fast(model)
    lap("make_fast (gpt2/fast.py)")
    induction_scores(model)
    lap("induction scores (explorer/heads.py)")
    pca_2d(model.wpe.weight.detach().numpy())
    lap("PCA of the position embeddings")
    from explorer.store import ModelStore
    store = ModelStore(cache_dir=tempfile.mkdtemp(), sizes=["124M"])
    store.get("124M")
    lap("ModelStore.get('124M') again, all of the above")
    from explorer.budget import AnalysisBudget
    build_app(store, default="124M", budget=AnalysisBudget(2**30))
    lap("build_app (Gradio Blocks)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stages", type=Path, metavar="HF_CACHE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stages:
        return time_stages(args.stages)
    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        work = Path(tmp)
        model_files = work / "model"
        model_files.mkdir()
        write_hub_style_124m(model_files)
        hf_cache = work / "hf-cache"
        put_in_hf_cache(hf_cache, "124M", model_files)
        print(f"{'round':<6} {'serving':>9} {'analyze':>9}  tensorflow loaded")
        results = []
        for round_number in range(1, args.rounds + 1):
            result = one_cold_start(hf_cache, work)
            results.append(result)
            print(f"{round_number:<6} {result['serving']:>8.2f}s {result['analyze']:>8.2f}s  {result['tensorflow']}")
        median = statistics.median(r["analyze"] for r in results)
        print(f"median first Analyze {median:.2f} s (target <= 5 s); load average {os.getloadavg()}")
        print("where the time goes (a fresh process, after `import torch, gpt2`):")
        subprocess.run([sys.executable, __file__, "--stages", str(hf_cache)], check=True,
                       env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})


if __name__ == "__main__":
    main()
