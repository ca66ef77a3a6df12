"""Download OpenAI's released GPT-2 checkpoints into a local cache, safely.

What the files are
------------------
OpenAI published each size ("124M", "355M", "774M", "1558M") as a TensorFlow 1.x
checkpoint plus its tokenizer, at `BASE_URL/<size>/<file>`:

    hparams.json                    the model's shape: n_vocab, n_ctx, n_embd, n_head, n_layer
                                    (read by `GPTConfig.from_hparams`)
    model.ckpt.data-00000-of-00001  the weights: every variable's float32 numbers back to back
                                    (497,759,232 bytes for 124M = 124,439,808 parameters x 4 bytes)
    model.ckpt.index                a table from each variable's name ("model/h0/attn/c_attn/w")
                                    to its dtype, shape and byte offset in the .data file
    model.ckpt.meta                 the TensorFlow graph that used the weights; not needed to read them
    checkpoint                      a small text file naming the checkpoint's prefix ("model.ckpt")
    encoder.json, vocab.bpe         the BPE tokenizer: token string -> id, and the 50,000 merges in order

So reading one weight means looking its name up in .index, then reading its bytes from .data.

How the download stays safe
---------------------------
- A file gets its final name only when it is complete: bytes stream into `<name>.partial`,
  which is renamed with `os.replace` once its length is checked. The rename is atomic, so
  anything under a final name is a whole file, even after a crash or Ctrl-C.
- An interrupted file resumes: the next attempt (or the next run) asks for the missing tail
  with an HTTP `Range: bytes=N-` header. A server that ignores Range and sends the whole
  file again is handled too, by starting that file over.
- Dropped connections, timeouts and server hiccups (HTTP 5xx, 429) are retried with
  exponential backoff; a missing file (404, 403) is not, since asking again cannot help.
- A web page or XML error document is never saved as a model file, and every file's length
  is checked against what the server announced (and, where known, `EXPECTED_SIZES`).
- A lock file in the size's folder keeps two processes from writing the same files at once;
  the second one waits, then finds the files done.
- Every failure a user can meet becomes a `DownloadError` whose message says what went wrong
  and what to do about it.
"""

from __future__ import annotations

import errno
import http.client
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from filelock import FileLock, Timeout
from tqdm import tqdm

from .config import SIZES

BASE_URL = "https://openaipublic.blob.core.windows.net/gpt-2/models"
# A host may point downloads at a mirror (or, in tests, at a closed port to play "offline").
BASE_URL_ENV_VAR = "GPT2_EXPLORER_DOWNLOAD_URL"
FILES = (
    "checkpoint",
    "encoder.json",
    "hparams.json",
    "model.ckpt.data-00000-of-00001",
    "model.ckpt.index",
    "model.ckpt.meta",
    "vocab.bpe",
)
DATA_FILE = "model.ckpt.data-00000-of-00001"

# Exact sizes we know, checked in addition to what the server announces.
EXPECTED_SIZES = {("124M", DATA_FILE): 497_759_232}

# Roughly what each size takes on disk (the .data file is 4 bytes per parameter), for messages.
APPROX_MODEL_BYTES = {"124M": 0.5e9, "355M": 1.4e9, "774M": 3.1e9, "1558M": 6.2e9}

CACHE_ENV_VAR = "GPT2_EXPLORER_CACHE"
LOCK_FILE = ".download.lock"
# A download in another process has its own timeouts and retries, so it finishes or fails;
# this only bounds the wait if something is truly stuck.
LOCK_TIMEOUT = 12 * 60 * 60.0
CHUNK_BYTES = 1 << 20

# The text files open with "{", "#version" or "model_checkpoint_path", so "<" means an error
# page. The binary files may open with any byte, so for them only real markup counts.
TEXT_FILES = frozenset({"checkpoint", "encoder.json", "hparams.json", "vocab.bpe"})
MARKUP_OPENINGS = (b"<?xml", b"<!doctype", b"<html", b"<error")
ERROR_PAGE_TYPES = ("text/html", "application/xml", "text/xml")

ProgressCallback = Callable[[str, int, int | None], None]


class DownloadError(RuntimeError):
    """A download failed; the message says what happened and what to do about it."""


class _TryAgain(Exception):
    """A failure another attempt may fix (dropped connection, timeout, busy server)."""


# ---------------------------------------------------------------------------------------------
# Where models live


def default_cache_dir() -> Path:
    """$GPT2_EXPLORER_CACHE if set, else the platform's user cache folder for gpt2-explorer."""
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir("gpt2-explorer"))


def default_base_url() -> str:
    """$GPT2_EXPLORER_DOWNLOAD_URL if set, else OpenAI's public storage (BASE_URL)."""
    return os.environ.get(BASE_URL_ENV_VAR) or BASE_URL


def can_reach(size: str = "124M", *, base_url: str | None = None, timeout: float = 3.0) -> bool:
    """One quick request for `size`'s small hparams.json: can this machine download right now?

    No retries: it is asked once, at start-up, to decide whether to wait for a download or to
    start with a model that needs none.
    """
    model_dir(size)  # checks the size before it goes into a URL
    url = f"{(base_url or default_base_url()).rstrip('/')}/{size}/hparams.json"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (OSError, http.client.HTTPException, ValueError):  # offline, refused, timed out, HTTP error
        return False


def model_dir(size: str, cache_dir: str | Path | None = None) -> Path:
    """The folder holding one size's files: `<cache>/<size>/`.

    `size` must be one of `SIZES`; it is checked before it goes anywhere near a path or a
    URL, so text like "../../etc" can never choose where we read, write or connect.
    """
    if not isinstance(size, str) or size not in SIZES:
        raise ValueError(f"unknown GPT-2 size {size!r}; choose one of {', '.join(SIZES)}")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / size


def is_downloaded(size: str, cache_dir: str | Path | None = None) -> bool:
    """True when every file of `size` is in the cache and complete."""
    directory = model_dir(size, cache_dir)
    return all(_is_complete(directory / name, size) for name in FILES)


def _is_complete(path: Path, size: str) -> bool:
    # Only checked files are ever renamed to a final name, so existing is nearly enough;
    # the known size also catches a file damaged or swapped since.
    expected = EXPECTED_SIZES.get((size, path.name))
    return path.is_file() and (expected is None or path.stat().st_size == expected)


# ---------------------------------------------------------------------------------------------
# Downloading a whole size


@dataclass(frozen=True)
class _Options:
    """How to fetch: the caller's settings, passed down as one value."""

    retries: int
    timeout: float
    backoff: float
    on_progress: ProgressCallback | None
    progress_bar: bool


@dataclass(frozen=True)
class _Target:
    """One file to fetch: where it comes from and where it goes."""

    size: str
    name: str
    url: str
    path: Path

    @property
    def partial(self) -> Path:
        return self.path.with_name(self.path.name + ".partial")

    @property
    def label(self) -> str:
        return f"{self.size}/{self.name}"

    @property
    def expected_bytes(self) -> int | None:
        return EXPECTED_SIZES.get((self.size, self.name))


def download_model(
    size: str,
    cache_dir: str | Path | None = None,
    *,
    base_url: str | None = None,
    on_progress: ProgressCallback | None = None,
    progress_bar: bool = True,
    retries: int = 4,
    timeout: float = 30.0,
    backoff: float = 1.0,
) -> Path:
    """Download every missing or incomplete file of `size`; return the folder holding them.

    on_progress(file_name, done_bytes, total_bytes) is called as bytes arrive (total_bytes is
    None if the server does not say). `retries` extra attempts are made per file, waiting
    `backoff * 2**attempt` seconds before each; `timeout` bounds every network wait.
    `base_url` defaults to `default_base_url()`.
    Raises ValueError for an unknown size and DownloadError for anything that goes wrong.
    """
    base_url = base_url or default_base_url()
    directory = model_dir(size, cache_dir)
    if retries < 0 or timeout <= 0 or backoff < 0:
        raise ValueError(f"need retries >= 0, timeout > 0, backoff >= 0; got {retries}, {timeout}, {backoff}")
    if is_downloaded(size, cache_dir):
        return directory
    options = _Options(retries, timeout, backoff, on_progress, progress_bar)
    _make_directory(directory, size)
    with _download_lock(directory, size, announce=progress_bar):
        # Small files first: being offline or behind a login page shows up in a second,
        # not after 500 MB.
        for name in sorted(FILES, key=lambda name: name == DATA_FILE):
            target = _Target(size, name, f"{base_url.rstrip('/')}/{size}/{name}", directory / name)
            # Checked inside the lock: a process we waited for may have finished the file.
            if not _is_complete(target.path, size):
                _download_file(target, options)
    return directory


def _make_directory(directory: Path, size: str) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _disk_error(error, directory, size, needed=None) from error


@contextmanager
def _download_lock(directory: Path, size: str, *, announce: bool) -> Iterator[None]:
    """Hold `<model_dir>/.download.lock`, so only one process downloads a size at a time."""
    lock = FileLock(directory / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if announce:
            print(f"Another download of GPT-2 {size} into {directory} is running; waiting...", file=sys.stderr)
        _wait_for(lock, directory, size)
    try:
        yield
    finally:
        lock.release()


def _wait_for(lock: FileLock, directory: Path, size: str) -> None:
    # filelock refuses an endless wait for a lock held elsewhere in this same process (it
    # could be a deadlock), and Gradio runs requests in threads: so long, but finite.
    try:
        lock.acquire(timeout=LOCK_TIMEOUT)
    except Timeout:
        raise DownloadError(
            f"Another download of GPT-2 {size} into {directory} has been running for over "
            f"{LOCK_TIMEOUT / 3600:g} hours. Stop it (or let it finish), then run again."
        ) from None


# ---------------------------------------------------------------------------------------------
# Downloading one file, with retries


def _download_file(target: _Target, options: _Options) -> None:
    """Fetch `target` into its .partial file, retrying what may pass, then give it its name."""
    progress = _Progress(target, options)
    try:
        for attempt in range(options.retries + 1):
            try:
                _fetch_once(target, options.timeout, progress)
                break
            except _TryAgain as problem:
                if attempt == options.retries:
                    raise _gave_up(target, attempt + 1, problem) from problem
                time.sleep(options.backoff * 2**attempt)
        os.replace(target.partial, target.path)
    finally:
        progress.close()


def _gave_up(target: _Target, attempts: int, problem: _TryAgain) -> DownloadError:
    tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
    return DownloadError(
        f"Could not download {target.label} ({tries}): {problem}. Run again to resume: "
        "finished files are kept and a partial file continues where it stopped."
    )


def _fetch_once(target: _Target, timeout: float, progress: _Progress) -> None:
    """One request for the rest of `target`; returns only when its .partial file is whole.

    Raises _TryAgain for what another attempt may fix, DownloadError for what it cannot.
    """
    start = _bytes_on_disk(target)
    with _open(target, start, timeout) as response:
        start, total = _resume_point(response, target, start)
        _check_announced_size(target, total)
        _reject_error_page_type(response, target)
        try:
            _check_room(target, None if total is None else total - start)
            done = _stream(response, target, start, total, progress)
        except OSError as error:
            needed = None if total is None else total - _bytes_on_disk(target)
            raise _disk_error(error, target.path.parent, target.size, needed) from error
    _check_length(target, done, total)


def _bytes_on_disk(target: _Target) -> int:
    return target.partial.stat().st_size if target.partial.exists() else 0


def _open(target: _Target, start: int, timeout: float) -> http.client.HTTPResponse:
    # Asking for the tail only when we hold a head: "bytes=N-" means "from byte N to the end".
    headers = {"Range": f"bytes={start}-"} if start else {}
    request = urllib.request.Request(target.url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        error.close()
        raise _http_error(error.code, target, start) from error
    except (OSError, http.client.HTTPException) as error:  # URLError, refused, reset, timed out
        raise _TryAgain(_connection_problem(target.url, error, timeout)) from error


def _http_error(status: int, target: _Target, start: int) -> Exception:
    """The exception for an HTTP error status: _TryAgain if asking again may help."""
    if status == 416 and start:
        # "Range not satisfiable": our partial file is at least as long as the real one, so
        # it cannot be a prefix of it. Throw it away and start the file again.
        target.partial.unlink(missing_ok=True)
        return _TryAgain(f"the server could not resume at byte {start:,}, so the file starts over")
    if status in (408, 429) or status >= 500:
        return _TryAgain(f"the server answered HTTP {status} (busy or failing)")
    if status in (403, 404):
        return DownloadError(
            f"{target.label} is not available (HTTP {status} for {target.url}). "
            "The files may have moved; running again will not help."
        )
    return DownloadError(f"The server refused {target.label} with HTTP {status} ({target.url}).")


def _connection_problem(url: str, error: BaseException, timeout: float) -> str:
    host = urllib.parse.urlsplit(url).hostname
    reason = getattr(error, "reason", error)  # URLError wraps the socket's own error
    if isinstance(reason, TimeoutError):
        return f"{host} did not answer within {timeout:g} s"
    return f"could not connect to {host} ({reason}): are you offline? Check your internet connection"


# ---------------------------------------------------------------------------------------------
# Checking and saving one response


def _resume_point(response: http.client.HTTPResponse, target: _Target, start: int) -> tuple[int, int | None]:
    """Where this response's body starts in the file, and the file's total length if known."""
    if response.status == 206:
        header = response.headers.get("Content-Range")
        first, total = _content_range(header)
        if first != start:
            # Appending anything but the exact next byte would corrupt the file silently.
            target.partial.unlink(missing_ok=True)
            raise _TryAgain(f"asked to resume at byte {start:,} but the server sent Content-Range {header!r}")
        return start, total
    if response.status == 200:
        # A server that ignores Range sends the whole file: start over rather than append it.
        length = _content_length(response)
        return 0, length
    raise DownloadError(f"Unexpected answer HTTP {response.status} for {target.url}: expected the file itself.")


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, total length) from a header like "bytes 100-499/500"."""
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", (header or "").strip())
    if match is None:
        return None, None
    first, total = match.groups()
    return int(first), None if total == "*" else int(total)


def _content_length(response: http.client.HTTPResponse) -> int | None:
    try:
        return int(response.headers["Content-Length"])
    except (TypeError, ValueError):  # absent (chunked) or garbled
        return None


def _check_announced_size(target: _Target, total: int | None) -> None:
    # Refuse a wrong size before spending the bandwidth on it.
    expected = target.expected_bytes
    if expected is not None and total is not None and total != expected:
        target.partial.unlink(missing_ok=True)
        raise _TryAgain(f"the server offers {total:,} bytes but {target.label} is {expected:,} bytes")


def _reject_error_page_type(response: http.client.HTTPResponse, target: _Target) -> None:
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type in ERROR_PAGE_TYPES:
        raise _error_page(target, f"a {content_type} page")


def _looks_like_markup(name: str, head: bytes) -> bool:
    head = head.lstrip().lower()
    return head.startswith(b"<") if name in TEXT_FILES else head.startswith(MARKUP_OPENINGS)


def _error_page(target: _Target, what: str) -> DownloadError:
    # Not retried: a page sent with "200 OK" is usually a Wi-Fi login page or a proxy,
    # which asking again will not get past.
    return DownloadError(
        f"The server sent {what} instead of {target.label} ({target.url}). If you are on a network "
        "with a login page or a proxy, open a web browser and get past it, then run again."
    )


def _check_room(target: _Target, remaining: int | None) -> None:
    # Failing early beats filling the disk to the last byte and failing anyway.
    if remaining is not None and shutil.disk_usage(target.path.parent).free < remaining:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target.path.parent))


def _stream(
    response: http.client.HTTPResponse, target: _Target, start: int, total: int | None, progress: _Progress
) -> int:
    """Write the body to the .partial file from byte `start`; return the file's length after."""
    done = start
    progress(done, total)
    with open(target.partial, "ab" if start else "wb") as file:
        for chunk in _chunks(response):
            if done == 0 and _looks_like_markup(target.name, chunk):
                file.close()
                target.partial.unlink()
                raise _error_page(target, "what looks like an error page")
            file.write(chunk)
            done += len(chunk)
            progress(done, total)
        # On disk before the rename, so a power cut cannot leave a named but empty file.
        file.flush()
        os.fsync(file.fileno())
    return done


def _chunks(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """The body in pieces. A broken connection becomes _TryAgain, so only disk errors stay OSError."""
    while True:
        try:
            chunk = response.read(CHUNK_BYTES)
        except (OSError, http.client.HTTPException) as error:  # reset, timed out, IncompleteRead
            raise _TryAgain(f"the connection broke mid-file ({error!r})") from error
        if not chunk:
            return
        yield chunk


def _check_length(target: _Target, done: int, total: int | None) -> None:
    """The .partial file must be exactly as long as the file; a short one is kept to resume."""
    wanted = total if total is not None else target.expected_bytes
    if wanted is None or done == wanted:
        return
    if done < wanted:
        raise _TryAgain(f"the connection dropped after {done:,} of {wanted:,} bytes")
    target.partial.unlink()
    raise _TryAgain(f"received {done:,} bytes but {target.label} is {wanted:,} bytes")


def _disk_error(error: OSError, directory: Path, size: str, needed: int | None) -> DownloadError:
    if error.errno != errno.ENOSPC:
        return DownloadError(
            f"Could not write to {directory}: {error.strerror or error}. Set {CACHE_ENV_VAR} to a "
            "folder you can write to, then run again."
        )
    this_file = f"this file needs {_human(needed)} more; " if needed else ""
    return DownloadError(
        f"Out of disk space in {directory}: {this_file}the whole GPT-2 {size} takes about "
        f"{_human(APPROX_MODEL_BYTES[size])}. Free some space, or set {CACHE_ENV_VAR} to a folder "
        "on a disk with room, then run again to resume."
    )


def _human(n_bytes: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{int(n_bytes)} bytes"


class _Progress:
    """Reports one file's progress to the caller's callback and, if wanted, a tqdm bar on stderr."""

    def __init__(self, target: _Target, options: _Options) -> None:
        self.name = target.name
        self.on_progress = options.on_progress
        self.bar = None
        if options.progress_bar:
            self.bar = tqdm(desc=target.label, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr)

    def __call__(self, done: int, total: int | None) -> None:
        if self.on_progress is not None:
            self.on_progress(self.name, done, total)
        if self.bar is not None:
            if done < self.bar.n:  # the file started over
                self.bar.reset()
            self.bar.total = total
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
