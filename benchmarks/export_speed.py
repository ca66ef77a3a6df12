"""Export of a 256-token analysis to a page and its numbers, on GPT-2 124M's shape.

    .venv/bin/python benchmarks/export_speed.py
    .venv/bin/python benchmarks/export_speed.py --rounds 9

Random weights, prepacked as the app loads the model, float32, 2 threads. Times
explorer.export.write_export (the page with plotly.js embedded once, and the JSON numbers,
written to a temporary folder) of one analysis, and reports both files' sizes.
Target from issue 11: <= 2 s and <= 10 MB. For scale it also times the Analyze that made
the analysis (explorer.analyze), once.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ablation_speed import loaded_124m, prompt_of, timed  # noqa: E402
from explorer import export  # noqa: E402
from explorer.analysis import analyze
from explorer.store import LoadedModel  # noqa: E402


def export_speed(loaded: LoadedModel, rounds: int) -> None:
    prompt = prompt_of(256)
    analyze(loaded, prompt)  # warm-up
    analysis_time = timed(lambda: analyze(loaded, prompt))
    analysis = analyze(loaded, prompt)
    times, sizes = [], []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds + 1):
            out = Path(folder) / "run.html"
            times.append(timed(lambda: export.write_export(loaded, analysis, out)))
            sizes = [out.stat().st_size, out.with_suffix(".json").stat().st_size]
    times = times[1:]  # the first round reads plotly.js from disk
    print(f"export of a 256-token analysis, {rounds} rounds: {statistics.median(times):.2f} s median, "
          f"{min(times):.2f} s fastest (target <= 2 s)")
    print(f"  page {sizes[0] / 1e6:.2f} MB + numbers {sizes[1] / 1e6:.2f} MB = {sum(sizes) / 1e6:.2f} MB "
          f"(target <= 10 MB)")
    print(f"  for scale: the Analyze of that prompt took {analysis_time:.2f} s; export / analyze "
          f"{statistics.median(times) / analysis_time:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    export_speed(loaded_124m(), args.rounds)


if __name__ == "__main__":
    main()
