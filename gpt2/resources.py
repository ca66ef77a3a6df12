"""Where the files that ship with the project are: GPT-2's BPE table, the shipped model, the teaching texts.

In a checkout they sit in the repository's `assets/` folder, beside this package. An installed wheel
carries the same folder inside the package, as `gpt2/assets/` (pyproject.toml maps it there), because
a wheel installs packages, not the folders around them. `ASSETS` is whichever of the two exists, so
code that reads a shipped file works the same from a checkout and from `pip install .`.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def find_assets() -> Path:
    """The assets folder: inside the package when installed from a wheel, else the checkout's."""
    installed = _PACKAGE / "assets"
    return installed if installed.is_dir() else _PACKAGE.parent / "assets"


ASSETS = find_assets()
