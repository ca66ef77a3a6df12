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
        # The host's temp folder is the test's own: the app makes its private workspace in it (its
        # Gradio temp folder and its handouts, explorer/workspace.py), so a test can look inside.
        self.temp_dir = log_path.parent / "gradio-temp"
        self.temp_dir.mkdir(exist_ok=True)
        env = {"GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", "CPU_CORES": "2",
               "GRADIO_TEMP_DIR": str(self.temp_dir), **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, str(Path(app_dir) / "app.py"), *(["--model-dir", str(model_dir)] if model_dir else []),
             "--port", str(self.port), *extra_args],
            cwd=app_dir, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **env})

    @property
    def workspace(self) -> Path:
        """The app's private folder (made at start, removed at exit), inside `temp_dir`."""
        return self.temp_dir / "gpt2-explorer" / next(p.name for p in (self.temp_dir / "gpt2-explorer").iterdir()
                                                       if p.name.startswith(f"{self.process.pid}-"))

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


# ---- what the page's events send, read through gradio_client ----

TAB_IDS = ("tokens", "embeddings", "attention", "block", "layers", "next_token", "attribution", "surprise", "generate",
           "training", "compare", "about")
UNCHANGED = {"__type__": "update"}  # what Gradio sends for an output the handler left as it was


def unchanged(value) -> bool:
    """Whether an output value says "left as it was" (gr.HTML wraps that in its props)."""
    return value == UNCHANGED or value == {"props": UNCHANGED, **UNCHANGED}


def _event(client, api_name: str) -> tuple[dict, dict]:
    components = {c["id"]: c for c in client.config["components"]}
    return components, next(d for d in client.config["dependencies"] if d.get("api_name") == api_name.lstrip("/"))


def event_labels(client, api_name: str) -> list[str]:
    """An event's outputs by their components' labels, from the app's config (undocumented events too).
    gradio_client returns no value for what the API skips (states, layout blocks, buttons): they are left out."""
    components, event = _event(client, api_name)
    return [components[i].get("props", {}).get("label") for i in event["outputs"] if not components[i]["skip_api"]]


def sent(client, api_name: str, values) -> dict:
    """The outputs an event actually sent, by label (outputs it left unchanged are not listed)."""
    values = values if isinstance(values, (list, tuple)) else [values]
    return {label: value for label, value in zip(event_labels(client, api_name), values) if not unchanged(value)}


def page_call(client, api_name: str, **by_label):
    """Call an event with every control's value as the page would send it: the control's value in the
    app's config unless `by_label` gives another (`Layer=2`)."""
    components, event = _event(client, api_name)
    args = []
    for i in event["inputs"]:
        props = components[i].get("props", {})
        if not components[i]["skip_api"]:
            args.append(by_label.get(props.get("label"), props.get("value")))
    return client.predict(*args, api_name=api_name)


def open_tab(client, tab_id: str, **by_label) -> dict:
    """Open one tab as the page does (its panels for the visitor's analysis, or nothing if already shown)."""
    api_name = f"/open_tab_{tab_id}"
    return sent(client, api_name, page_call(client, api_name, **by_label))


def analyze_every_tab(client, prompt: str, tabs=TAB_IDS, **values) -> dict:
    """Analyze, then open every tab (or those in `tabs`): the page's panels for this prompt, by label."""
    out = sent(client, "/analyze", client.predict(prompt, api_name="/analyze", **values))
    for tab_id in tabs:
        out |= open_tab(client, tab_id)
    return out
