"""What a story card costs next to an Analyze, in this process (no server, no browser).

    .venv/bin/python benchmarks/story_speed.py

GPT-2 124M's shape with random weights (nothing is downloaded here) and the shipped small
model (assets/models/tiny), a 32-token prompt. Median seconds over rounds of:

    analyze   what the Analyze button runs: one captured forward pass, head scores, the logit
              lens, and every tab's panels and code boxes (build_app's tabs, called directly)
    card i    the story's card i shown from that analysis: its tab's controls set, its panels
              redrawn (the Surprise card measures the prompt's surprise the first time)

The cards should stay a small fraction of an Analyze: Back and Next never run the model again.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from app_latency import prompt_of, write_random_124m  # noqa: E402
from explorer import story  # noqa: E402
from explorer.analysis import analyze as analyze_prompt
from explorer.budget import AnalysisBudget  # noqa: E402
from explorer.store import ModelStore  # noqa: E402
from explorer.tabs import View  # noqa: E402
from explorer.ui import build_app  # noqa: E402

ROUNDS = 5
VALUES = {"layer": 0, "head": 0, "mean_heads": False, "block_layer": 0, "lens_positions": 8,
          "temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 0, "open_tab": "tokens"}


def median(call) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(model_dir: Path, prompt: str) -> None:
    store = ModelStore(model_dir, sizes=[])
    loaded = store.get(store.default)
    app = build_app(store, budget=AnalysisBudget(2**30))
    tabs, strip = app.explorer_tabs, app.explorer_story

    def analyze():
        analysis = analyze_prompt(loaded, prompt)
        view = View(analysis, loaded, VALUES)
        for tab in tabs.values():
            tab.show(view)
            if tab.code is not None:
                tab.code.show(view)
        return analysis

    analyze_s = median(analyze)
    analysis = analyze()
    print(f"{loaded.name}, {analysis.trace.n_tokens} tokens: analyze {analyze_s * 1000:.0f} ms")
    for index, card in enumerate(story.CARDS):
        seconds = median(lambda: strip.show_card(analysis, loaded, index))
        print(f"  card {index + 1:2d} {card.id:15s} {seconds * 1000:6.1f} ms  {seconds / analyze_s:.2f}x analyze")


def main() -> None:
    prompt = prompt_of(32)
    with tempfile.TemporaryDirectory() as tmp:
        write_random_124m(Path(tmp))
        measure(Path(tmp), prompt)
    measure(ROOT / "assets" / "models" / "tiny", prompt)


if __name__ == "__main__":
    main()
