"""Replacing a file so that a kill or a power cut at any moment leaves the old file or the new one, never a mix.

A file is written under a temporary name beside its target, then renamed over it: on one
file system a rename is atomic, so a reader (or a process started after a crash) sees the
whole old file or the whole new one. A rename alone is not enough after a power cut: the
rename may reach the disk before the data it points to, leaving an empty file under the
target's name. So the data is flushed to the disk (fsync) before the rename, and the folder,
which holds the name, after it.
"""

from __future__ import annotations

import os
from pathlib import Path


def flush_to_disk(path: Path) -> None:
    """Wait until the file's bytes are on the disk, not only in the operating system's cache."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def flush_folder(folder: Path) -> None:
    """Wait until the folder's list of names (a rename in it) is on the disk.

    Only POSIX systems can open a folder to flush it; elsewhere the rename is left to the OS.
    """
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def replace_durably(written: Path, target: Path) -> None:
    """Rename the complete file `written` over `target` (same folder), flushing both to the disk."""
    flush_to_disk(written)
    os.replace(written, target)
    flush_folder(target.parent)


def write_text_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`."""
    tmp = path.with_name(path.name + ".partial")
    try:
        tmp.write_text(text, encoding="utf-8")
        replace_durably(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
