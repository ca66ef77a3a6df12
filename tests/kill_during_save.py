"""Kill `python -m gpt2 train` with SIGKILL at every point of a save, once per point, each run in its own folder.

    python tests/kill_during_save.py DATA ROOT SAVES TRAIN_ARGS...

SAVES names which saves of the run to cut (1 is the first, "1,2" the first two). For each of
them and each k = 1, 2, ... a fresh training run goes into ROOT/save-S-kill-k and kills itself
just before the k-th rename of save S, the moment each file of the save becomes visible;
the last run of each save kills itself just after the save returns. Between two renames only
temporary files change, which nothing reads, so these points are every state a kill can leave.

Each run is a child forked from this process after it imported torch and the trainer, so a
run costs its training, not Python's start-up. It prints one JSON list, one entry per kill:
{"folder", "save", "point", "signal"}, point being what the run was about to do when it died.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project, which is run from its folder uninstalled
import gpt2.train  # noqa: E402
from gpt2.__main__ import main  # noqa: E402
import torch._dynamo  # noqa: E402,F401  (the trainer's first model on the meta device imports it: 2 s, once here)

AFTER_THE_SAVE = "after the save"


def run_and_kill(save_to_cut: int, kill_at: int, folder: Path, train_args: list[str]) -> None:
    """In the child: train into `folder` and SIGKILL this process at rename `kill_at` of save `save_to_cut`."""
    report = folder.with_suffix(".point")
    saves, renames, cutting = 0, 0, False

    def die(point: str) -> None:
        report.write_text(point, encoding="utf-8")
        os.kill(os.getpid(), signal.SIGKILL)

    real_replace, real_save = os.replace, gpt2.train.Run.save

    def replace(source, target):
        nonlocal renames
        if cutting:
            renames += 1
            if renames == kill_at:
                die(f"before renaming {Path(source).name} to {Path(target).name}")
        real_replace(source, target)

    def save(run):
        nonlocal saves, cutting
        saves += 1
        cutting = saves == save_to_cut
        real_save(run)
        if cutting:
            die(AFTER_THE_SAVE)

    log = os.open(folder.with_suffix(".log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(log, 1)  # the run's own output goes beside its folder, not into the list this script prints
    os.dup2(log, 2)
    os.replace, gpt2.train.Run.save = replace, save
    main(["train", "--out", str(folder), *train_args])
    os._exit(3)  # the run ended without reaching the save it was to be cut in


def kill_every_point(root: Path, saves: list[int], train_args: list[str]) -> list[dict]:
    kills = []
    for save in saves:
        point, kill_at = None, 0
        while point != AFTER_THE_SAVE:
            kill_at += 1
            folder = root / f"save-{save}-kill-{kill_at}"
            pid = os.fork()
            if pid == 0:
                run_and_kill(save, kill_at, folder, train_args)
            _, status = os.waitpid(pid, 0)
            if not os.WIFSIGNALED(status):
                output = folder.with_suffix(".log").read_text(encoding="utf-8", errors="replace")
                raise SystemExit(f"the run into {folder} ended instead of being killed "
                                 f"(exit status {os.waitstatus_to_exitcode(status)}):\n{output[-2000:]}")
            point = folder.with_suffix(".point").read_text(encoding="utf-8")
            kills.append({"folder": str(folder), "save": save, "point": point, "signal": os.WTERMSIG(status)})
    return kills


if __name__ == "__main__":
    data, root, saves, *rest = sys.argv[1:]
    print(json.dumps(kill_every_point(Path(root), [int(s) for s in saves.split(",")], ["--data", data, *rest])))
