"""Peak memory of loading a checkpoint: `gpt2.load_checkpoint` against the usual way.

    .venv/bin/python benchmarks/load_memory.py                # 124M's shape, random weights
    .venv/bin/python benchmarks/load_memory.py --size 355M

Writes a random checkpoint of the size's shape in the project's folder format, then in a
fresh process for each way of loading, measures the process's peak resident memory
(`VmHWM` in /proc/self/status, so Linux only) above its peak just before loading (torch
imported, nothing else):

    gpt2.load_checkpoint      the model built on the meta device, each tensor read from the
                              file straight into its parameter
    usual                     GPT2(config), then safetensors.torch.load_file (a full state
                              dict) and model.load_state_dict: two copies at the peak

Both figures are also given in copies of the float32 weights (their size on disk).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MEASURE = """
import json, sys
sys.path.insert(0, {root!r})
import torch, gpt2, safetensors.torch
def peak():  # VmHWM: this process's peak resident set (ru_maxrss would carry the parent's over exec)
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024
before = peak()
if {way!r} == "gpt2.load_checkpoint":
    model = gpt2.load_checkpoint({folder!r})
else:
    model = gpt2.GPT2(gpt2.GPTConfig.from_hparams({folder!r} + "/hparams.json"))
    model.load_state_dict(safetensors.torch.load_file({folder!r} + "/model.safetensors"))
print(json.dumps({{"before": before, "after": peak(), "sum": float(model.wte.weight.sum())}}))
"""


def measure(way: str, folder: Path) -> dict:
    code = MEASURE.format(root=str(ROOT), way=way, folder=str(folder))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="124M", choices=("124M", "355M", "774M", "1558M"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    import gpt2

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        torch.manual_seed(0)
        gpt2.save_checkpoint(folder, gpt2.GPT2(gpt2.GPTConfig.preset(args.size)))
        weights_mb = (folder / "model.safetensors").stat().st_size / 1e6
        print(f"{args.size}: float32 weights {weights_mb:.0f} MB")
        results = {way: measure(way, folder) for way in ("gpt2.load_checkpoint", "usual")}
    sums = {r["sum"] for r in results.values()}
    assert len(sums) == 1, "the two ways loaded different weights"
    print(f"{'way':<22} {'peak above start MB':>20} {'copies of the weights':>22}")
    for way, r in results.items():
        grown = (r["after"] - r["before"]) / 1e6
        print(f"{way:<22} {grown:>20.0f} {grown / weights_mb:>22.2f}")


if __name__ == "__main__":
    main()
