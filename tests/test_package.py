"""`pip install .`: a wheel holds both packages, their files and two commands, and runs from any folder.

The wheel is built from a copy of the sources without the network (`--no-build-isolation`: this
environment's setuptools) and installed with `--no-deps` into a fresh virtual environment, which
borrows this one's installed requirements through a .pth file: nothing is downloaded.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "requirements.txt", "README.md", "LICENSE", "gpt2", "explorer", "assets")


def run(*command, cwd=None):
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    source = tmp_path_factory.mktemp("source")  # a copy: the build's own build/ folder stays out of the checkout
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", str(source),
        "-w", str(out))
    return next(out.glob("gpt2_explorer-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """The bin/ folder of a fresh venv with the wheel installed, its requirements borrowed from this environment."""
    venv = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = venv / "bin" / "python"
    site = Path(run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (site / "borrowed-requirements.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel))
    return venv / "bin"


def test_the_wheel_carries_the_shipped_files_but_not_the_screenshots(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("gpt2.tiktoken", "models/tiny/model.safetensors", "models/tiny/tokenizer.tiktoken",
                 "models/tiny/snapshots/step-0/model.safetensors", "teaching/attention.md", "style.css",
                 "examples.json"):
        assert f"gpt2/assets/{name}" in names
    assert not [name for name in names if "screenshots" in name]


def test_the_packages_dependencies_are_the_pinned_requirements(wheel):
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    required = {line.removeprefix("Requires-Dist: ") for line in metadata.splitlines()
                if line.startswith("Requires-Dist: ")}
    pinned = {line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.split("#")[0].strip()}
    assert required == pinned
    assert "Requires-Python: >=3.10" in metadata


def test_the_gpt2_command_generates_with_the_shipped_model_from_any_folder(installed, tmp_path):
    result = run(str(installed / "gpt2"), "generate", "--size", "tiny", "--max-new-tokens", "8", "--temperature",
                 "0", "def main(", cwd=tmp_path)
    assert result.stdout.startswith("def main(") and len(result.stdout.strip()) > len("def main(")


def test_the_installed_packages_read_their_files_from_the_wheel(installed, tmp_path):
    check = ("import gpt2, explorer.export, explorer.story, explorer.teaching; "
             "print(gpt2.SHIPPED_MODELS['tiny']); print(len(explorer.story.load_examples())); "
             "print(explorer.export.STYLE_FILE.is_file(), len(explorer.teaching.template('attention')) > 0)")
    lines = run(str(installed / "python"), "-c", check, cwd=tmp_path).stdout.split()
    assert Path(lines[0]).is_relative_to(installed.parent) and "site-packages" in lines[0]
    assert int(lines[1]) > 0 and lines[2:] == ["True", "True"]


def test_the_gpt2_explorer_command_starts_the_app(installed, tmp_path):
    usage = run(str(installed / "gpt2-explorer"), "--help", cwd=tmp_path).stdout
    assert usage.startswith("usage: gpt2-explorer") and "--size" in usage and "--memory-budget" in usage


def test_every_module_of_the_installed_packages_imports_and_the_page_builds(installed, tmp_path):
    check = ("import importlib, pkgutil, gpt2, explorer\n"
             "names = [m.name for p in (gpt2, explorer) for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.')]\n"
             "for name in names: importlib.import_module(name)\n"
             "from explorer.store import ModelStore\n"
             "from explorer.ui import build_app\n"
             "app = build_app(ModelStore(sizes=[]))\n"
             "print('explorer.tabs.parts.shared' in names, len(app.explorer_tabs))")
    out = run(str(installed / "python"), "-c", check, cwd=tmp_path).stdout.split()
    from explorer import ui

    assert out[-2:] == ["True", str(len(ui.TABS))]
