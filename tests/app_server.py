"""Start `python app.py` as a real server on 127.0.0.1 for the app and browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    def __init__(self, model_dir: Path | None, log_path: Path, *extra_args: str, env: dict | None = None,
                 app_dir: Path = ROOT):
        """`app_dir` is the checkout whose app.py runs (this one by default; a benchmark may time another)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = open(log_path, "w")
        # Gradio's temp folder (where uploads would land) is the test's own, so a test can see it stay empty.
        self.temp_dir = log_path.parent / "gradio-temp"
        self.temp_dir.mkdir(exist_ok=True)
        env = {"GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", "CPU_CORES": "2",
               "GRADIO_TEMP_DIR": str(self.temp_dir), **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, str(Path(app_dir) / "app.py"), *(["--model-dir", str(model_dir)] if model_dir else []),
             "--port", str(self.port), *extra_args],
            cwd=app_dir, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **env})

    def wait_until_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.process.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"app.py did not answer on {self.url} within {timeout} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@contextmanager
def serving(model_dir: Path | None, log_path: Path, *extra_args: str, env: dict | None = None):
    """An AppServer that is ready inside the block and stopped after it, whatever happens."""
    server = AppServer(model_dir, log_path, *extra_args, env=env)
    try:
        server.wait_until_ready()
        yield server
    finally:
        server.stop()
