"""An ablation answer against one Analyze of the same prompt, on GPT-2 124M's shape.

    .venv/bin/python benchmarks/ablation_speed.py
    .venv/bin/python benchmarks/ablation_speed.py --rounds 9

Random weights, prepacked as the app loads the model, float32, 2 threads, a 64-token prompt:

    ablation   explorer.interventions.run_ablation(model, ids, heads=[(5, 1), (9, 6)], mlps=[3]):
               one forward pass with the replacements hooked in, the next-token distribution and
               the per-token surprise (what the experiments panel needs)
    analyze    explorer.analyze(loaded, prompt): the capture, head scores and logit lens
               that pressing Analyze runs

Target from issue 11: ablation <= analyze. The two alternate round after round, after a
warm-up of each; medians and fastest rounds are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gpt2  # noqa: E402
from gpt2.fast import make_fast  # noqa: E402
from explorer import interventions  # noqa: E402
from explorer.analysis import analyze
from explorer.embeddings import pca_2d  # noqa: E402
from explorer.heads import induction_scores  # noqa: E402
from explorer.store import LoadedModel  # noqa: E402

ABLATION = dict(heads=[(5, 1), (9, 6)], mlps=[3], mode="zero")


def loaded_124m(seed: int = 0) -> LoadedModel:
    torch.manual_seed(seed)
    model = gpt2.GPT2(gpt2.GPTConfig()).eval()
    make_fast(model)
    # What ModelStore._prepare fills in: the tokenizer and W_pe, which LoadedModel no longer finds by itself.
    loaded = LoadedModel("124M (random weights)", model, induction_scores(model), 0.0,
                         tokenizer=gpt2.get_tokenizer(), wpe=model.wpe.weight.detach().float().numpy().copy())
    loaded.position_pca = pca_2d(loaded.wpe)
    return loaded


def prompt_of(n_tokens: int, seed: int = 0) -> str:
    """A text of exactly n_tokens GPT-2 tokens (ordinary word pieces, decoded and re-encoded to check)."""
    enc = gpt2.get_tokenizer()
    rng = np.random.default_rng(seed)
    words = [" the", " cat", " sat", " on", " mat", " and", " looked", " at", " dog", "."]
    text = "Once upon a time" + "".join(rng.choice(words, size=4 * n_tokens))
    ids = enc.encode(text)[:n_tokens]
    text = enc.decode(ids)
    assert len(enc.encode(text)) == n_tokens
    return text


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def alternate(sides: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each side, the sides taking turns round after round after one warm-up call each."""
    times = {name: [] for name in sides}
    for function in sides.values():
        function()  # warm-up
    for _ in range(rounds):
        for name, function in sides.items():
            times[name].append(timed(function))
    return times


def ablation_against_analyze(loaded: LoadedModel, rounds: int) -> None:
    prompt = prompt_of(64)
    ids = gpt2.get_tokenizer().encode(prompt)
    times = alternate({"ablation": lambda: interventions.run_ablation(loaded.model, ids, **ABLATION),
                       "analyze": lambda: analyze(loaded, prompt)}, rounds)
    print(f"64-token prompt, {rounds} rounds (median / fastest):")
    for name, values in times.items():
        print(f"  {name:9s} {statistics.median(values) * 1e3:7.1f} ms / {min(values) * 1e3:7.1f} ms")
    ratio = statistics.median(times["ablation"]) / statistics.median(times["analyze"])
    best = min(times["ablation"]) / min(times["analyze"])
    print(f"  ablation / analyze: {ratio:.2f} (median), {best:.2f} (fastest)  target <= 1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = loaded_124m()
    ablation_against_analyze(loaded, args.rounds)


if __name__ == "__main__":
    main()
