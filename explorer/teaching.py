"""The teaching texts shown under each panel, filled with the current prompt's numbers.

The texts are markdown files in assets/teaching/, written with `{placeholders}`
(Python format syntax, e.g. `{top_prob:.1%}`). Keeping prose out of the code lets a
teacher edit the explanations without touching Python.
"""

from __future__ import annotations

import functools
from pathlib import Path

TEACHING_DIR = Path(__file__).resolve().parent.parent / "assets" / "teaching"
PANELS = ("tokens", "embeddings", "attention", "layers", "next_token", "generate")


@functools.cache
def template(panel: str) -> str:
    if panel not in PANELS:
        raise ValueError(f"no teaching text for {panel!r}")
    return (TEACHING_DIR / f"{panel}.md").read_text(encoding="utf-8")


def render(panel: str, **numbers) -> str:
    """The panel's text with its placeholders filled in."""
    return template(panel).format(**numbers)
