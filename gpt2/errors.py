"""The error a broken model folder raises: it names the file, by its name in the folder, and the problem.

A model folder belongs to whoever runs the code (a --model-dir, a training run, the shipped
model) and its path on their disk is nobody else's business: a public app shows `err.public`,
which names each file only by its name within the model's folder

    model.safetensors is truncated: it holds 4 bytes, and a safetensors file starts with 8 ...

and `str(err)` adds the folder, for a command line: "... (in /home/me/runs/tiny)".
"""

from __future__ import annotations

from pathlib import Path


class CheckpointError(ValueError):
    """A model folder that cannot be loaded or resumed: the message names the file and the problem.

    `public`: the message alone, with no path in it (safe to show to a stranger);
    `folder`: the model's folder, when the error is about one of its files (else None).
    """

    def __init__(self, public: str, folder: str | Path | None = None):
        self.public = public
        self.folder = None if folder is None else Path(folder)
        super().__init__(public if folder is None else f"{public} (in {folder})")

    def __reduce__(self):  # pickled (e.g. between processes) with both parts, not the joined message
        return type(self), (self.public, self.folder)


class MissingFile(CheckpointError, FileNotFoundError):
    """A file the folder's layout needs is not there (also a FileNotFoundError, as a missing file is)."""
