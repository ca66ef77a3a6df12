"""The app serves only the routes its page uses (explorer/routes.py), and keeps its files in its own folder.

Unit tests read the allow-list's decisions from ASGI scopes; the server tests send the attacks a
stranger would, over HTTP on 127.0.0.1, to a real `python app.py`.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import uuid

import pytest

from explorer import routes
from explorer.routes import GRADIO_ROUTES, SERVED, refusal
from explorer.workspace import Workspace, remove_abandoned


def gradio_route_table() -> dict[str, set[str]]:
    """Every route of the installed Gradio's server, with its methods (the included API router too)."""
    import gradio as gr
    from gradio.routes import App

    with gr.Blocks() as blocks:
        gr.Textbox()
    app = App.create_app(blocks)
    table: dict[str, set[str]] = {}

    def walk(found):
        for r in found:
            if hasattr(r, "original_router"):
                walk(r.original_router.routes)
            elif getattr(r, "path", None) is not None:
                table.setdefault(r.path, set()).update(getattr(r, "methods", None) or {"GET"})
    walk(app.routes)
    return table


def example_path(declared: str) -> str:
    """A concrete path for a declared one: each parameter filled in (`{path:path}` with two segments)."""
    return re.sub(r"\{(\w+)(:path)?\}", lambda m: "a/b" if m.group(2) else "x", declared)


def scope(method: str, path: str, query: bytes = b"", headers=(), kind: str = "http") -> dict:
    return {"type": kind, "method": method, "path": path, "root_path": "", "query_string": query,
            "headers": list(headers)}


@pytest.fixture(scope="module")
def table():
    return gradio_route_table()


def test_every_route_of_the_installed_gradio_is_classified(table):
    unclassified = sorted(set(table) - set(GRADIO_ROUTES))
    assert not unclassified, f"classify these new Gradio routes in explorer/routes.py GRADIO_ROUTES: {unclassified}"
    gone = sorted(set(GRADIO_ROUTES) - set(table))
    assert not gone, f"Gradio no longer has these routes; take them out of GRADIO_ROUTES: {gone}"


def test_the_routes_classified_as_served_are_served_and_all_others_refused(table, tmp_path):
    handout = tmp_path / "page.html"
    handout.write_text("<p>a handout</p>")
    for declared, methods in table.items():
        path = example_path(declared)
        if declared.startswith("/gradio_api/file="):
            path = f"/gradio_api/file={handout}"
        if declared == "/gradio_api/run/{api_name}":
            path = "/gradio_api/run/predict"  # the one name the page's unqueued events use
        answers = {method: refusal(scope(method, path), tmp_path) for method in methods}
        if GRADIO_ROUTES[declared] == SERVED:
            assert None in answers.values(), f"{declared} is classified as served but refused: {answers}"
        else:
            assert None not in answers.values(), f"{declared} is refused in the table but served"


@pytest.mark.parametrize("path", [
    "/monitoring", "/monitoring/", "/Monitoring", "//monitoring", "/monitoring/summary", "/gradio_api/deep_link",
    "/gradio_api//deep_link", "/gradio_api/deep_link/", "/GRADIO_API/deep_link", "/gradio_api/process_recording",
    "/gradio_api/upload", "/upload", "/gradio_api/file/tmp/x", "/file=/etc/passwd", "/gradio_api/proxy=http://x",
    "/config/", "/docs", "/openapi.json", "/gradio_api/openapi.json", "/gradio_api/run/analyze", "/gradio_api/call/analyze",
    "/gradio_api/queue/status", "/gradio_api/vibe-code", "/gradio_api/info/extra", "/", "/assets",
])
def test_every_spelling_of_a_route_outside_the_list_is_refused(path):
    method = "POST" if path in ("/", "/assets") else "GET"  # "/" answers GET only; "/assets" is no asset
    assert refusal(scope(method, path), None) is not None


def test_the_page_and_its_queue_are_served():
    for method, path, query in [("GET", "/", b""), ("GET", "/", b"__theme=dark"), ("GET", "/config", b""),
                                ("GET", "/assets/index-abc.js", b""), ("POST", "/gradio_api/queue/join", b""),
                                ("GET", "/gradio_api/queue/data", b"session_hash=abc"),
                                ("GET", "/gradio_api/heartbeat/abc", b""), ("POST", "/gradio_api/run/predict", b"")]:
        assert refusal(scope(method, path, query), None) is None, (method, path)


def test_deep_links_are_refused_in_the_pages_address_too():
    assert "deep_link" in refusal(scope("GET", "/", b"deep_link=abc"), None)


def test_files_are_served_only_from_the_shelf_whatever_the_spelling(tmp_path):
    shelf, outside = tmp_path / "shelf", tmp_path / "secret.txt"
    shelf.mkdir()
    (shelf / "page.html").write_text("ok")
    outside.write_text("secret")
    (shelf / "link.txt").symlink_to(outside)
    assert refusal(scope("GET", f"/gradio_api/file={shelf / 'page.html'}"), shelf) is None
    for path in [outside, shelf / ".." / "secret.txt", shelf / "link.txt", "/etc/passwd", "page.html",
                 f"{shelf}/../secret.txt", str(shelf) + "x/page.html"]:
        assert refusal(scope("GET", f"/gradio_api/file={path}"), shelf) is not None, path
    assert refusal(scope("GET", f"/gradio_api/file={shelf / 'page.html'}"), None) is not None  # no shelf: no files


def test_multipart_bodies_and_websockets_are_refused_anywhere():
    multipart = [(b"content-type", b"multipart/form-data; boundary=x")]
    assert "upload" in refusal(scope("POST", "/gradio_api/queue/join", headers=multipart), None)
    assert "upload" in refusal(scope("POST", "/gradio_api/queue/join", headers=[(b"content-type", b"Multipart/Mixed")]),
                               None)
    assert refusal(scope("GET", "/gradio_api/queue/data", kind="websocket"), None) is not None


# ---- the app's own folder ----

def test_a_workspace_is_private_and_removed_and_abandoned_ones_are_cleaned(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    abandoned = tmp_path / "gpt2-explorer" / f"{dead.pid}-0000"
    abandoned.mkdir(parents=True)
    (abandoned / "left.html").write_text("from a killed app")
    alive = tmp_path / "gpt2-explorer" / f"{os.getppid()}-0000"  # a running process's folder stays
    alive.mkdir()
    workspace = Workspace(tmp_path)
    assert not abandoned.exists() and alive.exists()
    assert workspace.folder.stat().st_mode & 0o077 == 0  # the app's user only
    assert workspace.gradio.is_dir() and workspace.handouts.is_dir()
    workspace.remove()
    assert not workspace.folder.exists()
    assert remove_abandoned(tmp_path / "gpt2-explorer") == []


# ---- against the running app ----

def request(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """Send `path` exactly as written (no client-side normalising); returns (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def files_in(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file())


ATTACKS = [
    ("GET", "/gradio_api/deep_link?session_hash=abc"), ("GET", "/gradio_api/deep%5Flink?session_hash=abc"),
    ("GET", "/gradio_api//deep_link?session_hash=abc"), ("GET", "/gradio_api/deep_link/?session_hash=abc"),
    ("GET", "/?deep_link=abc"), ("GET", "/monitoring"), ("GET", "/monitoring/summary"), ("GET", "/%6Donitoring"),
    ("GET", "/MONITORING/summary"), ("GET", "//monitoring/summary"), ("GET", "/gradio_api/file=/etc/passwd"),
    ("GET", "/gradio_api/file=%2Fetc%2Fpasswd"), ("GET", "/gradio_api/file/etc/passwd"), ("GET", "/file=/etc/passwd"),
    ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/gradio_api/queue/status"), ("GET", "/gradio_api/app_id"),
    ("GET", "/gradio_api/proxy=http://127.0.0.1:1/"), ("GET", "/gradio_api/vibe-code"), ("GET", "/foo"),
    ("OPTIONS", "/monitoring/summary"), ("POST", "/gradio_api/run/analyze"), ("POST", "/gradio_api/call/analyze"),
    ("POST", "/gradio_api/reset"), ("POST", "/gradio_api/component_server"),
]


def test_no_route_outside_the_list_answers(app_server):
    answered = {f"{method} {path}": status for method, path in ATTACKS
                if (status := request(app_server, method, path)[0]) < 400}
    assert not answered, f"answered: {answered}"
    assert request(app_server, "GET", "/")[0] == 200 and request(app_server, "GET", "/config")[0] == 200


def test_deep_links_and_recordings_write_nothing(app_server):
    before = files_in(app_server.temp_dir)
    for _ in range(10):
        assert request(app_server, "GET", "/gradio_api/deep_link?session_hash=abc")[0] == 404
    boundary = "x" + uuid.uuid4().hex
    recording = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"video\"; filename=\"r.mp4\"\r\n\r\n"
                 .encode() + b"\0" * 3_000_000 + f"\r\n--{boundary}--\r\n".encode())
    status, body = request(app_server, "POST", "/gradio_api/process_recording", recording,
                           {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 403 and b"no uploads" in body
    assert files_in(app_server.temp_dir) == before


def test_a_request_body_over_the_limit_is_refused_with_the_limit(app_server):
    status, body = request(app_server, "POST", "/gradio_api/queue/join", b"{" + b" " * (routes.MAX_BODY_BYTES + 1) + b"}",
                           {"Content-Type": "application/json"})
    assert status == 413 and f"{routes.MAX_BODY_BYTES // 1024} KB".encode() in json.loads(body)["detail"].encode()


def test_gradios_own_temp_files_are_not_served(app_server):
    planted = app_server.workspace / "gradio" / "planted.txt"
    planted.write_text("not for visitors")
    try:
        assert request(app_server, "GET", f"/gradio_api/file={planted}")[0] == 404
    finally:
        planted.unlink()


def test_the_workspace_is_removed_when_the_app_is_stopped(tiny_checkpoint_dir, tmp_path):
    from app_server import AppServer

    server = AppServer(tiny_checkpoint_dir, tmp_path / "app.log")
    try:
        server.wait_until_ready()
        workspace = server.workspace
        assert (workspace / "handouts").is_dir() and os.environ.get("GRADIO_TEMP_DIR") != str(workspace)
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=30)
    finally:
        server.stop()
    assert not workspace.exists(), (tmp_path / "app.log").read_text()[-2000:]
    assert not any((tmp_path / "gradio-temp" / "gpt2-explorer").iterdir())


def test_the_page_accepts_the_query_a_space_adds_but_no_deep_link():
    assert refusal(scope("GET", "/", b"__sign=abc.def&__theme=light"), None) is None
    assert refusal(scope("GET", "/config", b"deep_link=abc"), None) is not None


# ---- events that skip the queue, capped ----

def run_predict(middleware, page: str, responses: list):
    """One POST /gradio_api/run/predict for `page` through the middleware; its status lands in `responses`."""
    import asyncio

    body = json.dumps({"data": [], "fn_index": 0, "session_hash": page}).encode()
    chunks = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return chunks.pop(0) if chunks else await asyncio.sleep(3600)

    async def send(message):
        if message["type"] == "http.response.start":
            responses.append((page, message["status"]))
    return middleware(scope("POST", "/gradio_api/run/predict", headers=[(b"content-length", b"%d" % len(body))]),
                      receive, send)


def test_unqueued_events_are_capped_per_page_and_in_all():
    import asyncio

    async def scenario():
        release = asyncio.Event()
        seen_bodies = []

        async def app(scope_, receive, send):  # an event handler that runs until released
            seen_bodies.append(json.loads((await receive())["body"])["session_hash"])
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

        middleware = routes.OnlyPageRoutes(app, per_page=3, in_all=4)
        responses = []
        running = [asyncio.create_task(run_predict(middleware, page, responses)) for page in ["a"] * 3 + ["b"]]
        await asyncio.sleep(0.05)
        await run_predict(middleware, "a", responses)  # a fourth from page a: over its share
        await run_predict(middleware, "c", responses)  # a new page while four run: over the server's
        assert responses == [("a", 429), ("c", 429)] and sorted(seen_bodies) == ["a", "a", "a", "b"]
        release.set()
        await asyncio.gather(*running)
        assert middleware.running == {}  # every slot given back
        await run_predict(middleware, "c", responses)
        assert responses[-1] == ("c", 200)

    asyncio.run(scenario())


def test_a_chunked_body_over_the_limit_reaches_the_app_as_a_disconnect():
    import asyncio

    async def scenario():
        got = []

        async def app(scope_, receive, send):
            while (message := await receive())["type"] == "http.request" and message.get("more_body"):
                pass
            got.append(message["type"])

        chunks = [{"type": "http.request", "body": b"x" * 1000, "more_body": True}] * 3
        middleware = routes.OnlyPageRoutes(app, max_body=2500)
        await middleware(scope("POST", "/gradio_api/queue/join"), lambda: asyncio.sleep(0, chunks.pop(0)), None)
        assert got == ["http.disconnect"]

    asyncio.run(scenario())
