"""A training run killed (SIGKILL) at any point of a save resumes: `python -m gpt2 train --resume` finds the newest
weights and training state that go together, says which step it resumes from, and ends where a run never killed ends.

The runs are killed by tests/kill_during_save.py: one run per point of the first save and of the second
(at step 2), each in its own folder. The resumed runs go through the command line's `main` in this process.
"""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import gpt2
from gpt2.__main__ import main

KILLER = Path(__file__).with_name("kill_during_save.py")
# Saves at steps 0 (the first save), 2, 4 and once more at the end.
TRAIN_ARGS = ["--n-vocab", "300", "--n-ctx", "32", "--n-embd", "32", "--n-head", "2", "--n-layer", "2",
              "--batch-size", "4", "--max-steps", "4", "--eval-every", "2", "--eval-windows", "8",
              "--warmup-steps", "1", "--threads", "1", "--quiet"]  # a model this small runs no faster on two
WEIGHTS_IN_PLACE = "before renaming training_state.next.pt to training_state.pt"  # the first point after the weights


@pytest.fixture(scope="module", autouse=True)
def keep_torch_threads():
    """The command line sets torch's thread count for the whole process: give the other tests back theirs."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def kills(small_text, tmp_path_factory):
    """{save: [(what the run was about to do when it was killed, its folder)]}, in the order of the save."""
    root = tmp_path_factory.mktemp("kills")
    result = subprocess.run([sys.executable, str(KILLER), str(small_text), str(root), "1,2", *TRAIN_ARGS],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    by_save = {1: [], 2: []}
    for kill in json.loads(result.stdout):
        assert kill["signal"] == signal.SIGKILL
        by_save[kill["save"]].append((kill["point"], Path(kill["folder"])))
    return by_save


@pytest.fixture(scope="module")
def never_killed(small_text, tmp_path_factory):
    folder = tmp_path_factory.mktemp("straight") / "model"
    assert main(["train", "--out", str(folder), "--data", str(small_text), *TRAIN_ARGS]) == 0
    return gpt2.load_checkpoint(folder)


def train(folder: Path, small_text: Path, capsys, *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["train", "--out", str(folder), "--data", str(small_text), *TRAIN_ARGS, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def assert_same_weights(folder: Path, model: gpt2.GPT2, point: str) -> None:
    for (name, a), b in zip(gpt2.load_checkpoint(folder).named_parameters(), model.parameters()):
        torch.testing.assert_close(a, b, msg=lambda m: f"killed {point}: {name} differs from a run never killed")


def test_every_file_of_a_save_is_renamed_into_place_and_each_rename_was_a_kill_point(kills):
    for save, points in kills.items():
        names = [point for point, _ in points]
        assert names[-1] == "after the save"
        assert {"before renaming model.safetensors.partial to model.safetensors", WEIGHTS_IN_PLACE,
                "before renaming training_log.json.partial to training_log.json"} <= set(names), names


def test_a_kill_at_any_point_of_a_later_save_resumes_from_the_newest_complete_pair(kills, small_text, never_killed,
                                                                                  capsys):
    points = [point for point, _ in kills[2]]
    weights_written = points.index(WEIGHTS_IN_PLACE)
    for index, (point, folder) in enumerate(kills[2]):
        code, out, err = train(folder, small_text, capsys, "--resume")
        assert code == 0, f"killed {point}: {err}"
        step = 2 if index >= weights_written else 0
        assert f"resuming from step {step}" in out, f"killed {point}: {out}"
        # Killed with the new state written but not the weights, it falls back to the save before, and says so.
        fell_back = index == weights_written - 1
        assert ("the save of step 2 was cut off before its weights were written" in out) == fell_back, out
        assert_same_weights(folder, never_killed, point)


def test_a_kill_during_the_first_save_resumes_once_the_weights_are_in_place_else_says_to_start_again(
        kills, small_text, never_killed, capsys):
    points = [point for point, _ in kills[1]]
    weights_written = points.index(WEIGHTS_IN_PLACE)
    for index, (point, folder) in enumerate(kills[1]):
        code, out, err = train(folder, small_text, capsys, "--resume")
        if index >= weights_written:
            assert code == 0 and "resuming from step 0" in out, f"killed {point}: {err}"
        else:
            assert code == 1 and "without --resume" in err and "Traceback" not in err, f"killed {point}: {err}"
            code, _, err = train(folder, small_text, capsys)
            assert code == 0, f"killed {point}, then trained afresh: {err}"
        assert_same_weights(folder, never_killed, point)


def test_a_folder_whose_state_is_newer_than_its_weights_gets_both_steps_named(small_text, tmp_path, capsys):
    # What the save order before issue 18 left after a kill between its two renames.
    folder = tmp_path / "model"
    assert train(folder, small_text, capsys, "--max-steps", "2")[0] == 0
    state = torch.load(folder / "training_state.pt", weights_only=True)
    torch.save({**state, "step": 4}, folder / "training_state.pt")
    code, _, err = train(folder, small_text, capsys, "--resume")
    assert code == 1 and "model.safetensors is from step 2 but the training state (training_state.pt) is from step 4" \
        in err and "Traceback" not in err


def test_a_damaged_newer_state_is_skipped_for_the_pair_that_agrees_and_said(small_text, tmp_path, capsys):
    folder = tmp_path / "model"
    assert train(folder, small_text, capsys, "--max-steps", "2")[0] == 0
    (folder / "training_state.next.pt").write_bytes(b"not a torch file")
    code, out, err = train(folder, small_text, capsys, "--resume")
    assert code == 0, err
    assert "resuming from step 2, the last save (skipped: training_state.next.pt is damaged" in out
