"""Logit attribution and activation patching against the work they are compared with, on 124M's shape.

    .venv/bin/python benchmarks/attribution_speed.py
    .venv/bin/python benchmarks/attribution_speed.py --rounds 9

Random weights, made fast and prepacked as the app loads a model, float32, 2 threads:

    attribution   explorer.attribution.logit_attribution on a 64-token prompt (one forward pass with
                  hooks, the split in float64), against explorer.capture.capture of the same prompt,
                  the forward pass an Analyze runs. Target (issue 22): attribution <= 1.2 x capture.
    patching      explorer.attribution.patch of the IOI pair ("When Mary and John went to the store, John
                  gave a drink to" / "... Mary gave ...", 14 GPT-2 tokens), site resid_pre: 12 layers x 14
                  positions, batched as the app runs it, against one forward pass per site (the same
                  function with one row per batch). Sites before the first different token are not run
                  (they recover exactly 0), so the pair is timed again with its first token changed too,
                  where every site runs. Target: batched <= 10 s on the 2-core CPU.

The two sides of each pair alternate round after round, after a warm-up; medians and fastest
rounds are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpt2  # noqa: E402
from ablation_speed import alternate, loaded_124m, prompt_of  # noqa: E402
from explorer import attribution  # noqa: E402
from explorer.capture import capture  # noqa: E402

CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPTED = "When Mary and John went to the store, Mary gave a drink to"


def report(title: str, times: dict[str, list[float]], peer: str) -> None:
    print(title)
    for name, values in times.items():
        print(f"  {name:28s} median {statistics.median(values) * 1000:8.0f} ms   fastest {min(values) * 1000:8.0f} ms")
    (name, values), = [(n, v) for n, v in times.items() if n != peer]
    print(f"  {name} / {peer}: median {statistics.median(values) / statistics.median(times[peer]):.2f}, "
          f"fastest {min(values) / min(times[peer]):.2f}")


def one_site_per_pass(model, clean, corrupted, target, foil):
    saved = attribution.PATCH_BATCH_TOKENS
    attribution.PATCH_BATCH_TOKENS = len(clean)  # one row per batch
    try:
        return attribution.patch(model, clean, corrupted, target, foil, site="resid_pre")
    finally:
        attribution.PATCH_BATCH_TOKENS = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--patch-rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = loaded_124m().model
    enc = gpt2.get_tokenizer()

    ids = enc.encode(prompt_of(64))
    report("logit attribution, 64 tokens",
           alternate({"logit_attribution": lambda: attribution.logit_attribution(model, ids),
                      "capture": lambda: capture(model, ids)}, args.rounds), peer="capture")

    clean, corrupted = enc.encode(CLEAN), enc.encode(CORRUPTED)
    target, foil = enc.encode(" Mary")[0], enc.encode(" John")[0]
    result = attribution.patch(model, clean, corrupted, target, foil, site="resid_pre")
    print(f"\nresidual patching, {len(clean)} tokens x {model.config.n_layer} layers: {result.rows} sites differ "
          f"(from position {result.first_difference}), {result.passes} batched passes")
    report("residual patching of the IOI pair",
           alternate({"patch (batched)": lambda: attribution.patch(model, clean, corrupted, target, foil),
                      "one pass per site": lambda: one_site_per_pass(model, clean, corrupted, target, foil)},
                     args.patch_rounds), peer="one pass per site")
    # The worst case for the same length: the first token differs too, so no site can be skipped.
    everywhere = [enc.encode(" After")[0]] + corrupted[1:]
    result = attribution.patch(model, clean, everywhere, target, foil)
    print(f"\nthe same with the first token changed as well: {result.rows} sites, {result.passes} batched passes")
    report("residual patching, every site run",
           alternate({"patch (batched)": lambda: attribution.patch(model, clean, everywhere, target, foil),
                      "one pass per site": lambda: one_site_per_pass(model, clean, everywhere, target, foil)},
                     args.patch_rounds), peer="one pass per site")


if __name__ == "__main__":
    main()
