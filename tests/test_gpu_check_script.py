"""benchmarks/gpu_check.py, the script a lent GPU machine runs, works before it meets a GPU.

`--device cpu --quick` runs every step on tiny shapes; the targets are not the point here (on
tiny models and a shared CPU its ratios are noise), only that every section is measured, written
and summarised, and that the exit status follows the checks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
SIZES = ["124M", "355M", "774M", "1558M"]


@pytest.fixture(scope="module")
def gpu_check():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return gpu_check


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check") / "gpu_check.json"
    process = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out)],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    return process, json.loads(out.read_text(encoding="utf-8"))


def test_quick_run_writes_every_section(quick_run):
    _, report = quick_run
    assert {"environment", "test_suite", "hooks", "sizes", "skipped", "checks", "summary"} <= set(report)
    assert {"date", "gpu", "torch", "cuda", "python"} <= set(report["environment"])
    assert list(report["sizes"]) == SIZES and report["skipped"] == []
    for size in SIZES:
        measured = report["sizes"][size]
        assert {"16", "64"} == set(measured["capture"]["float32"])
        assert measured["capture"]["float32"]["64"]["ours_s"] > 0 and measured["capture"]["float32"]["64"]["hf_s"] > 0
        assert measured["analysis"]["median_s"] > 0 and measured["decode"]["ours_tok_s"] > 0


def test_quick_run_runs_the_tests_and_compares_every_hook(quick_run):
    _, report = quick_run
    assert report["test_suite"]["passed"] > 0 and report["test_suite"]["failed"] == 0
    assert "--ignore-glob=*browser*" in report["test_suite"]["command"]
    assert report["hooks"]["hook_points"] >= 30  # 2 layers: 4 model-level and 13 per block
    assert report["hooks"]["as placed"]["worst_relative"] <= 1e-3  # on the CPU: make_fast, as the app runs it


def test_exit_status_and_summary_follow_the_checks(quick_run):
    process, report = quick_run
    statuses = [check["status"] for check in report["checks"]]
    assert report["summary"]["pass"] == statuses.count("PASS") and report["summary"]["fail"] == statuses.count("FAIL")
    assert process.returncode == (1 if "FAIL" in statuses else 0)
    assert sum(line.startswith(("PASS ", "FAIL ")) for line in process.stdout.splitlines()) == len(statuses)
    assert "SUMMARY" in process.stdout.splitlines()[-1]


def test_pytest_summary_counts(gpu_check):
    output = "....F\nFAILED tests/test_x.py::test_y - assert 0\n1 failed, 812 passed, 3 skipped, 2 errors in 201.50s\n"
    assert gpu_check.pytest_counts(output) == {"passed": 812, "failed": 1, "errors": 2, "skipped": 3}
    assert gpu_check.pytest_counts("killed before any summary")["passed"] == 0


def test_sizes_that_would_overrun_the_budget_are_skipped_and_recorded(gpu_check, tmp_path):
    report = gpu_check.Report(tmp_path / "r.json")
    gpu_check.check_sizes(report, gpu_check.QUICK_SHAPES, None, None, deadline=time.perf_counter() - 1)
    assert [skip["size"] for skip in report.data["skipped"]] == SIZES
    assert [check["status"] for check in report.data["checks"]] == ["SKIP"] * 4


def test_a_step_that_raises_is_a_failed_check_and_the_run_goes_on(gpu_check, tmp_path):
    report = gpu_check.Report(tmp_path / "r.json")

    def broken():
        raise RuntimeError("CUDA out of memory")

    gpu_check.guarded(report, "774M (every measurement)", broken)
    gpu_check.guarded(report, "hooks", lambda: report.check("hooks", True, 0.0, "<= 0.001"))
    assert [check["status"] for check in report.data["checks"]] == ["FAIL", "PASS"]
    assert "CUDA out of memory" in report.data["checks"][0]["value"]
    assert json.loads((tmp_path / "r.json").read_text())["checks"][0]["status"] == "FAIL"
