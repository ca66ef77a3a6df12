"""Check a trained model (by default the one that ships) against issue 21's targets, snapshot by snapshot.

    .venv/bin/python benchmarks/shipped_probe.py                      # assets/models/tiny
    .venv/bin/python benchmarks/shipped_probe.py --model-dir runs/tiny --snapshots

Measured with tests/head_probe.py, which reads `h.{l}.attn.hook_pattern` and the logits through plain
forward hooks, never the explorer's own scores:

    validation loss      on the shipped validation tokens (the first 64 windows of the validation text)
    previous-token       the best head's mean attention to the previous token, 16 windows of that text
    induction, uniform   16 random sequences of 64 tokens drawn uniformly from every token but <|endoftext|>,
                         written twice: the best head's attention to the token after the earlier copy, and
                         the loss of the first and the second copy
    induction, frequent  the same with the 500 most frequent tokens of the validation text
    repeated English     a ~40-token English sentence written twice: the loss of each copy

Targets (issue 21): uniform induction >= 0.3 and second copy < half the first; English second copy <
half the first; previous-token >= 0.3 (0.4 the goal); validation loss <= 3.46.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import gpt2  # noqa: E402
from head_probe import (ENGLISH, every_token, frequent_tokens, induction_probe, previous_token_scores,  # noqa: E402
                        repeated_text_probe)

VALIDATION = gpt2.SHIPPED_MODELS["tiny"] / "validation_tokens.npy"


def validation_loss(model, ids: list[int]) -> float:
    n_ctx = model.config.n_ctx
    tokens = torch.tensor(ids[: (len(ids) - 1) // n_ctx * n_ctx + 1])
    x, y = tokens[:-1].view(-1, n_ctx)[:64], tokens[1:].view(-1, n_ctx)[:64]
    with torch.no_grad():
        return float(F.cross_entropy(model(x).flatten(0, 1), y.flatten()))


def probe(model, enc, validation: list[int]) -> dict:
    eot = enc.eot_token
    uniform = induction_probe(model, every_token(model, eot))
    frequent = induction_probe(model, frequent_tokens(validation))
    english = repeated_text_probe(model, enc.encode(ENGLISH))
    return {"validation_loss": validation_loss(model, validation),
            "previous_token": float(previous_token_scores(model, validation).max()),
            "induction_uniform": float(uniform["induction"].max()),
            "copy_uniform": (uniform["first_copy_loss"], uniform["second_copy_loss"]),
            "induction_frequent": float(frequent["induction"].max()),
            "copy_frequent": (frequent["first_copy_loss"], frequent["second_copy_loss"]),
            "copy_english": (english["first_copy_loss"], english["second_copy_loss"]), "english_tokens": english["tokens"]}


def verdict(r: dict) -> list[str]:
    missed = []
    if r["induction_uniform"] < 0.3 or r["copy_uniform"][1] >= 0.5 * r["copy_uniform"][0]:
        missed.append("uniform induction")
    if r["copy_english"][1] >= 0.5 * r["copy_english"][0]:
        missed.append("repeated English")
    if r["previous_token"] < 0.3:
        missed.append("previous-token")
    if r["validation_loss"] > 3.46:
        missed.append("validation loss")
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=gpt2.SHIPPED_MODELS["tiny"])
    parser.add_argument("--snapshots", action="store_true", help="also every snapshot in the folder")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    enc = gpt2.get_tokenizer(args.model_dir)
    validation = np.load(VALIDATION).astype(np.int64).tolist()
    folders = [("final", args.model_dir)]
    if args.snapshots:
        log = json.loads((args.model_dir / "training_log.json").read_text(encoding="utf-8"))
        folders = [(f"step {s['step']}", args.model_dir / s["path"]) for s in log["snapshots"]] + folders
    results = {}
    print(f"{'model':>12} {'val':>6} {'prev':>5} {'ind-u':>6} {'copy uniform':>14} {'ind-f':>6} "
          f"{'copy frequent':>14} {'copy English':>14}  missed")
    for name, folder in folders:
        model = gpt2.load_checkpoint(folder).float().eval()
        r = results[name] = probe(model, enc, validation)
        print(f"{name:>12} {r['validation_loss']:6.3f} {r['previous_token']:5.2f} {r['induction_uniform']:6.2f} "
              f"{r['copy_uniform'][0]:6.2f}→{r['copy_uniform'][1]:5.2f}  {r['induction_frequent']:6.2f} "
              f"{r['copy_frequent'][0]:6.2f}→{r['copy_frequent'][1]:5.2f}  {r['copy_english'][0]:6.2f}→"
              f"{r['copy_english'][1]:5.2f}  {', '.join(verdict(r)) or 'none'}")
    print(f"(English sentence: {results['final']['english_tokens']} tokens)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
