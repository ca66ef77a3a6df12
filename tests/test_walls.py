"""The walls between the project's layers, read from every module's imports (as text: nothing is run).

- gpt2/ is the model library: it knows nothing of the explorer, of Gradio or of ZeroGPU's `spaces`.
- explorer/'s analysis modules know nothing of Gradio or `spaces`: only ui.py, tabs/ and app.py (which starts
  the web server, after importing `spaces` first as ZeroGPU requires) import them,
  so every forward pass the app makes is a plain function that could run anywhere (model_runs.py).
- plots.py builds Plotly figures and nothing else of the UI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UI_PACKAGES = {"gradio", "gradio_client", "spaces", "starlette", "fastapi"}


def imported_packages(path: Path) -> set[str]:
    """The top-level names of everything a module imports, anywhere in it (also inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", modules("gpt2"), ids=lambda p: p.name)
def test_the_model_library_imports_neither_the_explorer_nor_the_ui(path):
    assert not imported_packages(path) & ({"explorer"} | UI_PACKAGES)


ANALYSIS = [p for p in modules("explorer")
            if "tabs" not in p.relative_to(ROOT / "explorer").parts and p.name not in ("ui.py", "app.py")]


@pytest.mark.parametrize("path", ANALYSIS, ids=lambda p: p.name)
def test_only_the_ui_modules_import_gradio_or_spaces(path):
    assert not imported_packages(path) & UI_PACKAGES


def test_the_walls_are_checked_on_real_modules():
    assert len(ANALYSIS) > 20 and (ROOT / "explorer" / "model_runs.py") in ANALYSIS
    assert "gradio" in imported_packages(ROOT / "explorer" / "ui.py")  # the reader sees imports at all
    assert "spaces" in imported_packages(ROOT / "explorer" / "tabs" / "parts" / "shared.py")


def test_plots_builds_figures_from_data_only():
    assert imported_packages(ROOT / "explorer" / "plots.py") <= {"__future__", "numpy", "plotly", "html", "math",
                                                                 "textwrap", "dataclasses", "collections"}


def test_the_package_index_names_every_module():
    index = (ROOT / "explorer" / "__init__.py").read_text(encoding="utf-8")
    for path in modules("explorer"):
        relative = path.relative_to(ROOT / "explorer")
        if relative.parts[0] == "tabs" or path.name in ("__init__.py", "__main__.py"):
            continue
        assert f"    {path.name} " in index, f"explorer/__init__.py does not say what {path.name} holds"


def test_tabs_holds_tab_modules_only():
    from explorer import ui

    tab_files = {p.stem for p in (ROOT / "explorer" / "tabs").glob("*.py")} - {"__init__"}
    assert tab_files == {module.__name__.rsplit(".", 1)[-1] for module in ui.TABS}
