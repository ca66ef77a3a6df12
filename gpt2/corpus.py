"""The default training text: the Python standard library's own text.

Every Python install carries it, so a learner can train a model with no download:
the pydoc topics (the language reference's help pages), then every standard-library
source file (its code, comments and docstrings), skipping test folders and
site-packages. Documents are joined with GPT-2's separator `<|endoftext|>`, in a
fixed order (topics by name, files by path), so the same Python gives the same text.

Another Python version gives a different text: write it once with
`python -m gpt2 corpus --out FILE` and train anywhere with `--data FILE`.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Iterator
from pathlib import Path

SEPARATOR = "\n<|endoftext|>\n"
# Folders whose text is not the library: its tests, installed third-party packages, caches.
_SKIPPED_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


def pydoc_topics() -> Iterator[str]:
    """The help pages `help("FOR")` shows, in topic-name order (absent on some trimmed installs)."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        return
    for name in sorted(topics):
        yield topics[name].strip()


def stdlib_source_files(root: Path | None = None) -> list[Path]:
    """Every .py file of the standard library under `root`, sorted, without tests or third-party packages."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    files = []
    for path in root.rglob("*.py"):
        relative = path.relative_to(root).parts
        if any(part in _SKIPPED_DIRS or part.startswith("test_") for part in relative):
            continue
        files.append(path)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def stdlib_documents(root: Path | None = None) -> Iterator[str]:
    """The pydoc topics, then each source file's text (files that are not UTF-8 are skipped)."""
    yield from pydoc_topics()
    for path in stdlib_source_files(root):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if text.strip():
            yield text


def stdlib_corpus(root: Path | None = None) -> str:
    """The whole default corpus as one string, documents separated by `<|endoftext|>`."""
    return SEPARATOR.join(stdlib_documents(root))


def write_corpus(path: str | Path, text: str | None = None) -> int:
    """Write `text` (default: the stdlib corpus) to `path` as UTF-8; returns the number of characters."""
    text = stdlib_corpus() if text is None else text
    Path(path).write_text(text, encoding="utf-8")
    return len(text)
