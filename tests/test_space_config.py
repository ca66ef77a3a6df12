"""The repository is a ZeroGPU Space as it stands: front matter, requirements and what a Space installs first."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ZeroGPU's supported torch versions (its docs, August 2026) end at 2.11.0; 2.8.0 is the first this project can use.
ZEROGPU_TORCH = ("2.8.0", "2.9.0", "2.9.1", "2.10.0", "2.11.0")


def front_matter() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must open with the Space's front matter"
    return match.group(1)


def requirement_lines() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_the_front_matter_targets_zerogpu_on_python_3_12_with_gpt2_baked_in():
    matter = front_matter()
    assert re.search(r'^python_version: "3\.12"$', matter, re.M)
    assert re.search(r"^sdk: gradio$", matter, re.M)
    assert re.search(r"^\s+- openai-community/gpt2 config\.json,model\.safetensors$", matter, re.M)


def test_the_space_gets_a_cuda_torch_from_zerogpus_list_and_the_spaces_package():
    lines = requirement_lines()
    for_312 = [line for line in lines if line.startswith("torch==") and 'python_version != "3.11"' in line]
    assert len(for_312) == 1
    assert for_312[0].split(";")[0].removeprefix("torch==") in ZEROGPU_TORCH
    assert any(line.startswith("spaces==") for line in lines)
    assert "+cpu" not in " ".join(lines)


def test_no_root_pre_requirements_forces_the_cpu_build_on_a_gpu_space():
    # Spaces install a root pre-requirements.txt before everything: a CPU torch there would stay on ZeroGPU.
    assert not (ROOT / "pre-requirements.txt").exists()
    recipe = (ROOT / "deploy" / "cpu-space" / "pre-requirements.txt").read_text(encoding="utf-8")
    assert "torch==2.11.0+cpu" in recipe and "download.pytorch.org/whl/cpu" in recipe


def test_the_gradio_version_of_the_front_matter_is_the_one_pinned():
    pinned = next(line for line in requirement_lines() if line.startswith("gradio=="))
    assert f"sdk_version: {pinned.removeprefix('gradio==')}" in front_matter()
