"""The app's private folder for temporary files: made at start, removed at exit (signals included).

Gradio writes its temporary files under GRADIO_TEMP_DIR, and the app writes its handouts; both go
into one folder of this process's own, readable by its user only:

    <system temp>/gpt2-explorer/<pid>-<random>/gradio     Gradio's temp dir (GRADIO_TEMP_DIR)
    <system temp>/gpt2-explorer/<pid>-<random>/handouts   the handout shelf (export.HandoutShelf)

It is removed when the app exits: normally, on Ctrl-C, or on SIGTERM/SIGHUP (what a Space or a
terminal sends). A process killed outright (SIGKILL, a power cut) cannot clean up, so each start
first removes the folders of app processes that no longer run.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import tempfile
from pathlib import Path

PARENT_NAME = "gpt2-explorer"


def process_is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: running
        return True
    return True


def remove_abandoned(parent: Path) -> list[Path]:
    """Remove the folders left by app processes that have ended; returns what it removed."""
    removed = []
    for folder in parent.glob("*-*"):
        pid = folder.name.split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not process_is_running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class Workspace:
    """One app process's private folder. `install()` points Gradio at it and arranges its removal."""

    def __init__(self, parent: str | Path | None = None):
        self.parent = Path(parent or tempfile.gettempdir()) / PARENT_NAME
        self.parent.mkdir(mode=0o700, exist_ok=True)
        remove_abandoned(self.parent)
        self.folder = self.parent / f"{os.getpid()}-{secrets.token_hex(4)}"
        self.folder.mkdir(mode=0o700)
        self.gradio = self.folder / "gradio"
        self.handouts = self.folder / "handouts"
        for folder in (self.gradio, self.handouts):
            folder.mkdir(mode=0o700)

    def install(self) -> "Workspace":
        """Make Gradio write here (call before Gradio is imported), and remove the folder at exit."""
        os.environ["GRADIO_TEMP_DIR"] = str(self.gradio)
        atexit.register(self.remove)
        for signum in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if signum is not None and signal.getsignal(signum) in (signal.SIG_DFL, None):
                signal.signal(signum, stop_as_if_interrupted)
        return self

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def stop_as_if_interrupted(signum, frame) -> None:
    """A polite stop (SIGTERM, SIGHUP) takes the Ctrl-C path: Gradio closes its server, and the exit
    handlers (the workspace's removal among them) run."""
    raise KeyboardInterrupt(f"signal {signum}")
