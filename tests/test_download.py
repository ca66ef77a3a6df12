"""Tests for gpt2.download against a real HTTP server on 127.0.0.1 that can misbehave on cue.

`FakeServer` serves small fake files for a "124M" model. A test queues faults per file
(`server.fail("hparams.json", "500")`): each request for that file takes the next fault, and
once the queue is empty the file is served properly (honouring Range unless told not to).
Every request is recorded as (file name, Range header) so tests can check what was asked.
"""

from __future__ import annotations

import errno
import os
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from filelock import FileLock

from gpt2 import download
from gpt2.download import DATA_FILE, FILES, DownloadError, download_model, is_downloaded, model_dir

SIZE = "124M"
FAKE_FILES = {
    "checkpoint": b'model_checkpoint_path: "model.ckpt"\nall_model_checkpoint_paths: "model.ckpt"\n',
    "encoder.json": b'{"!": 0, "\\"": 1, "#": 2}',
    "hparams.json": b'{"n_vocab": 50257, "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12}',
    DATA_FILE: random.Random(0).randbytes(40_000),
    "model.ckpt.index": random.Random(1).randbytes(300),
    "model.ckpt.meta": random.Random(2).randbytes(2_000),
    "vocab.bpe": b"#version: 0.2\n\xc4\xa0 t\n\xc4\xa0 a\n",
}
AZURE_404 = b'<?xml version="1.0" encoding="utf-8"?><Error><Code>BlobNotFound</Code></Error>'


class FakeServer:
    """What the handler serves, the faults it should inject, and the requests it saw."""

    def __init__(self) -> None:
        self.files = dict(FAKE_FILES)
        self.faults: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.supports_range = True
        self.lock = threading.Lock()
        self.url = ""

    def fail(self, name: str, *faults: str) -> None:
        self.faults.setdefault(name, []).extend(faults)

    def take(self, name: str, range_header: str | None) -> str | None:
        with self.lock:
            self.requests.append((name, range_header))
            queue = self.faults.get(name)
            return queue.pop(0) if queue else None

    def requests_for(self, name: str) -> list[str | None]:
        """The Range header of each request for `name`, in order (None: no Range)."""
        return [range_header for requested, range_header in self.requests if requested == name]


class FaultyHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        fake: FakeServer = self.server.fake
        prefix = f"/{SIZE}/"
        name = self.path[len(prefix):] if self.path.startswith(prefix) else self.path
        fault = fake.take(name, self.headers.get("Range"))
        body = fake.files.get(name)
        if body is None or fault in ("403", "404"):
            return self.reply(int(fault or 404), AZURE_404, "application/xml")
        if fault in ("429", "500", "503"):
            return self.reply(int(fault), b"busy", "text/plain")
        if fault == "stall":
            time.sleep(0.5)  # longer than the client's timeout
        if fault == "html":
            return self.reply(200, b"<!DOCTYPE html><html><body>Log in to Wi-Fi</body></html>", "text/html")
        if fault == "xml_body":
            return self.reply(200, AZURE_404, "application/octet-stream")
        self.send_file(body, fault)

    def send_file(self, body: bytes, fault: str | None) -> None:
        start = self.requested_start()
        if start >= len(body):
            return self.reply(416, b"", "text/plain")
        payload = body[start:]
        self.send_response(206 if start else 200)
        if start or fault == "bad_range":
            shown = start + 1 if fault == "bad_range" else start
            self.send_header("Content-Range", f"bytes {shown}-{len(body) - 1}/{len(body)}")
        announced = len(payload) + 100 if fault == "overlong" else len(payload)
        self.send_header("Content-Length", str(announced))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        # "drop": the headers promise the whole file, then the connection closes halfway.
        self.wfile.write(payload[: len(payload) // 2] if fault == "drop" else payload)

    def requested_start(self) -> int:
        header = self.headers.get("Range")
        if not header or not self.server.fake.supports_range:
            return 0
        return int(header.removeprefix("bytes=").split("-")[0])

    def reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass  # keep pytest's output clean


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # a client that timed out and hung up is expected here, not a failure


@pytest.fixture
def server():
    fake = FakeServer()
    httpd = QuietServer(("127.0.0.1", 0), FaultyHandler)
    httpd.fake = fake
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield fake
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def fake_expected_sizes(monkeypatch):
    monkeypatch.setattr(download, "EXPECTED_SIZES", {(SIZE, DATA_FILE): len(FAKE_FILES[DATA_FILE])})


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def fetch(server: FakeServer, cache: Path, size: str = SIZE, **kwargs) -> Path:
    """download_model against the fake server, fast and quiet unless a test says otherwise."""
    settings = {"base_url": server.url, "progress_bar": False, "backoff": 0.0, "timeout": 5.0, **kwargs}
    return download_model(size, cache, **settings)


def partial_files(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.partial"))


# --- the happy path -------------------------------------------------------------------------


def test_downloads_every_file_byte_for_byte(server, cache):
    directory = fetch(server, cache)
    assert directory == cache / SIZE
    assert {name: (directory / name).read_bytes() for name in FILES} == FAKE_FILES


def test_leaves_no_partial_files_after_success(server, cache):
    server.fail(DATA_FILE, "drop")
    fetch(server, cache)
    assert partial_files(cache) == []


def test_complete_directory_makes_no_requests(server, cache):
    fetch(server, cache)
    server.requests.clear()
    fetch(server, cache)
    assert server.requests == []


def test_is_downloaded_is_false_until_every_file_is_complete(server, cache):
    assert not is_downloaded(SIZE, cache)
    fetch(server, cache)
    assert is_downloaded(SIZE, cache)
    (cache / SIZE / DATA_FILE).write_bytes(b"truncated")
    assert not is_downloaded(SIZE, cache)


def test_reports_progress_increasing_up_to_the_total(server, cache, monkeypatch):
    monkeypatch.setattr(download, "CHUNK_BYTES", 4096)
    calls = []
    fetch(server, cache, on_progress=lambda name, done, total: calls.append((name, done, total)))
    size = len(FAKE_FILES[DATA_FILE])
    data_calls = [(done, total) for name, done, total in calls if name == DATA_FILE]
    done = [done for done, _ in data_calls]
    assert {total for _, total in data_calls} == {size}
    assert len(done) > 2 and done == sorted(set(done))  # strictly increasing
    assert done[-1] == size


def test_shows_a_progress_bar_on_stderr_when_asked(server, cache, capsys):
    fetch(server, cache, progress_bar=True)
    assert f"{SIZE}/{DATA_FILE}" in capsys.readouterr().err


# --- resuming -------------------------------------------------------------------------------


def test_resumes_a_dropped_download_with_a_range_request(server, cache):
    server.fail(DATA_FILE, "drop")
    fetch(server, cache)
    half = len(FAKE_FILES[DATA_FILE]) // 2
    assert server.requests_for(DATA_FILE) == [None, f"bytes={half}-"]
    assert (cache / SIZE / DATA_FILE).read_bytes() == FAKE_FILES[DATA_FILE]


def test_resumes_a_partial_file_left_by_an_earlier_run(server, cache):
    (cache / SIZE).mkdir(parents=True)
    (cache / SIZE / f"{DATA_FILE}.partial").write_bytes(FAKE_FILES[DATA_FILE][:1234])
    fetch(server, cache)
    assert server.requests_for(DATA_FILE) == ["bytes=1234-"]
    assert (cache / SIZE / DATA_FILE).read_bytes() == FAKE_FILES[DATA_FILE]


def test_starts_over_when_the_server_ignores_range(server, cache):
    server.supports_range = False
    server.fail(DATA_FILE, "drop")
    fetch(server, cache)
    ranges = server.requests_for(DATA_FILE)
    assert len(ranges) == 2 and ranges[1] is not None  # Range asked for, ignored, and no third try needed
    assert (cache / SIZE / DATA_FILE).read_bytes() == FAKE_FILES[DATA_FILE]


def test_starts_over_when_the_server_resumes_at_the_wrong_byte(server, cache):
    (cache / SIZE).mkdir(parents=True)
    (cache / SIZE / f"{DATA_FILE}.partial").write_bytes(FAKE_FILES[DATA_FILE][:1234])
    server.fail(DATA_FILE, "bad_range")
    fetch(server, cache)
    assert server.requests_for(DATA_FILE) == ["bytes=1234-", None]
    assert (cache / SIZE / DATA_FILE).read_bytes() == FAKE_FILES[DATA_FILE]


def test_starts_over_when_the_partial_file_is_already_full_length(server, cache):
    (cache / SIZE).mkdir(parents=True)
    (cache / SIZE / "hparams.json.partial").write_bytes(b"x" * len(FAKE_FILES["hparams.json"]))
    fetch(server, cache)  # the server answers 416 Range Not Satisfiable to the first request
    assert server.requests_for("hparams.json") == [f"bytes={len(FAKE_FILES['hparams.json'])}-", None]
    assert (cache / SIZE / "hparams.json").read_bytes() == FAKE_FILES["hparams.json"]


# --- retries --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["500", "503", "429"])
def test_retries_after_a_transient_server_error(server, cache, status):
    server.fail("hparams.json", status)
    fetch(server, cache)
    assert len(server.requests_for("hparams.json")) == 2
    assert (cache / SIZE / "hparams.json").read_bytes() == FAKE_FILES["hparams.json"]


def test_retries_a_request_that_times_out(server, cache):
    server.fail("hparams.json", "stall")
    fetch(server, cache, timeout=0.1)
    assert len(server.requests_for("hparams.json")) == 2
    assert (cache / SIZE / "hparams.json").read_bytes() == FAKE_FILES["hparams.json"]


def test_gives_up_after_the_last_retry(server, cache):
    server.fail("hparams.json", "500", "500", "500")
    with pytest.raises(DownloadError, match=r"hparams\.json \(3 attempts\).*HTTP 500.*[Rr]un again"):
        fetch(server, cache, retries=2)
    assert len(server.requests_for("hparams.json")) == 3


def test_waits_longer_before_each_retry(server, cache, monkeypatch):
    sleeps = []
    monkeypatch.setattr(download.time, "sleep", sleeps.append)
    server.fail("hparams.json", "500", "500", "500")
    fetch(server, cache, retries=3, backoff=0.5)
    assert sleeps == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("status", ["404", "403"])
def test_does_not_retry_a_missing_file(server, cache, status):
    server.fail("hparams.json", *[status] * 5)
    with pytest.raises(DownloadError, match=rf"124M/hparams\.json.*HTTP {status}"):
        fetch(server, cache)
    assert len(server.requests_for("hparams.json")) == 1


# --- refusing bad bodies --------------------------------------------------------------------


def test_rejects_an_html_page_sent_with_200(server, cache):
    server.fail("hparams.json", "html")
    with pytest.raises(DownloadError, match="text/html page instead of 124M/hparams.json"):
        fetch(server, cache)
    assert not (cache / SIZE / "hparams.json").exists()


def test_rejects_an_error_page_by_its_first_bytes(server, cache):
    server.fail("model.ckpt.meta", "xml_body")  # binary, no known size: only the sniff can catch it
    with pytest.raises(DownloadError, match="error page instead of 124M/model.ckpt.meta"):
        fetch(server, cache)
    assert not (cache / SIZE / "model.ckpt.meta").exists()
    assert partial_files(cache) == []


def test_rejects_a_body_shorter_than_its_content_length(server, cache):
    server.fail("hparams.json", "overlong")
    with pytest.raises(DownloadError, match="dropped after"):
        fetch(server, cache, retries=0)
    assert not (cache / SIZE / "hparams.json").exists()


def test_rejects_a_file_whose_size_differs_from_the_known_size(server, cache, monkeypatch):
    real_size = len(FAKE_FILES[DATA_FILE])
    monkeypatch.setitem(download.EXPECTED_SIZES, (SIZE, DATA_FILE), real_size + 1)
    with pytest.raises(DownloadError, match=f"{real_size:,} bytes but .* is {real_size + 1:,} bytes"):
        fetch(server, cache, retries=1)
    assert not (cache / SIZE / DATA_FILE).exists()
    assert partial_files(cache) == []


# --- refusing bad requests ------------------------------------------------------------------


@pytest.mark.parametrize("size", ["../../etc", "125M", "", "124M/../355M", "https://evil.example/"])
def test_unknown_size_raises_value_error_before_any_request(server, cache, size):
    for call in (model_dir, is_downloaded, lambda size, cache: fetch(server, cache, size)):
        with pytest.raises(ValueError, match="unknown GPT-2 size"):
            call(size, cache)
    assert server.requests == []
    assert not cache.exists()


# --- the machine around the download ---------------------------------------------------------


def test_offline_raises_a_helpful_error_quickly(cache):
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens there
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(DownloadError, match="could not connect to 127.0.0.1.*Check your internet connection"):
        download_model(SIZE, cache, base_url=f"http://127.0.0.1:{closed_port}", progress_bar=False,
                       retries=1, backoff=0.0)
    assert time.monotonic() - started < 2.0


def test_waits_for_another_process_holding_the_lock(server, cache):
    directory = cache / SIZE
    directory.mkdir(parents=True)
    other = FileLock(directory / ".download.lock", thread_local=False)
    other.acquire()

    def other_process_finishes():
        for name, body in FAKE_FILES.items():
            (directory / name).write_bytes(body)
        other.release()

    finisher = threading.Timer(0.3, other_process_finishes)
    finisher.start()
    try:
        fetch(server, cache)
    finally:
        finisher.join()
    assert server.requests == []  # it waited, then found every file done


def test_gives_up_waiting_for_a_lock_held_too_long(server, cache, monkeypatch):
    monkeypatch.setattr(download, "LOCK_TIMEOUT", 0.1)
    (cache / SIZE).mkdir(parents=True)
    with FileLock(cache / SIZE / ".download.lock"):
        with pytest.raises(DownloadError, match="Another download of GPT-2 124M"):
            fetch(server, cache)
    assert server.requests == []


def test_explains_a_full_disk_before_downloading(server, cache, monkeypatch):
    nearly_full = SimpleNamespace(total=10**12, used=10**12 - 10, free=10)
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: nearly_full)
    with pytest.raises(DownloadError, match=r"Out of disk space in .*124M.*about 500\.0 MB.*GPT2_EXPLORER_CACHE"):
        fetch(server, cache)
    assert list((cache / SIZE).iterdir()) == [cache / SIZE / ".download.lock"]  # not a byte written


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's always-full /dev/full")
def test_explains_a_disk_that_fills_up_while_writing(server, cache):
    (cache / SIZE).mkdir(parents=True)
    (cache / SIZE / f"{DATA_FILE}.partial").symlink_to("/dev/full")  # every write: ENOSPC
    with pytest.raises(DownloadError, match=r"Out of disk space in .*this file needs 40\.0 kB more") as caught:
        fetch(server, cache)
    assert caught.value.__cause__.errno == errno.ENOSPC


def test_default_cache_dir_follows_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT2_EXPLORER_CACHE", str(tmp_path / "models"))
    assert download.default_cache_dir() == tmp_path / "models"
    assert model_dir(SIZE) == tmp_path / "models" / SIZE


# --- one quick look before deciding what to start with ------------------------------------------


def test_can_reach_asks_once_for_the_small_hparams_file(server):
    assert download.can_reach(SIZE, base_url=server.url)
    assert [name for name, _ in server.requests] == ["hparams.json"]


def test_can_reach_is_false_at_a_closed_port_without_retrying():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    assert not download.can_reach(SIZE, base_url=closed)


def test_the_download_server_can_be_set_by_the_environment(server, cache, monkeypatch):
    monkeypatch.setenv(download.BASE_URL_ENV_VAR, server.url)
    assert download.can_reach(SIZE)
    assert download_model(SIZE, cache, progress_bar=False) == cache / SIZE
