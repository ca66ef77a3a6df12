"""The HTTP routes the app serves: an allow-list of what its page (and gradio_client) use; all else refused.

Gradio's server answers many routes a page like ours never calls: deep links (which write a file
per call to its temp folder), uploads and screen recordings, its file route over the whole temp
folder, monitoring, a proxy, "vibe" editing, run history. A public app should serve only what its
visitors need, so `OnlyPageRoutes` sits in front of Gradio (as ASGI middleware) and lets through
the requests in ROUTES and nothing else:

- the page and its assets (`/`, `/config`, `/assets/...`, `/theme.css`, ...);
- the queue the page's events go through (`/gradio_api/queue/join`, `/gradio_api/queue/data`,
  heartbeats, cancel), the one route of events that skip it (`/gradio_api/run/predict`), and the
  API description gradio_client reads (`/gradio_api/info`);
- files under the app's own shelf (the handouts, `/gradio_api/file=<shelf>/...`), nowhere else;
- no request with a multipart body (the app has no file input), and no body over MAX_BODY_BYTES.

Every route Gradio has is classified in GRADIO_ROUTES (served, or refused and why); a test lists the
routes of the installed Gradio and fails on one that is not classified, so an upgrade that adds a
route is looked at before it is served.

Matching is exact, on the path the router itself routes on (percent-decoded, without the root
path), so a spelling the router would send elsewhere (`//config`, `/Config`, `/config%2F`) is refused
too: it matches nothing here. This module knows nothing of Gradio: it reads ASGI scopes only.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024  # an event's JSON: prompts are at most a few thousand characters
# Events that skip the queue (redraws from a kept analysis) run at once in the server's threads, so they
# are capped here instead: so many at once per page, and so many at once in all.
UNQUEUED_PATH = "/gradio_api/run/predict"
MAX_UNQUEUED_PER_PAGE = 3
MAX_UNQUEUED = 12


@dataclass(frozen=True)
class Route:
    methods: frozenset[str]
    pattern: re.Pattern
    why: str
    refused_query: frozenset[str] = frozenset()  # query keys it refuses (others pass: a Space adds its own)


def route(methods: str, path: str, why: str, refused_query: str = "") -> Route:
    """`path` is matched whole; `{}` stands for one path segment, `{*}` for one or more."""
    pattern = re.compile(re.escape(path).replace(re.escape("{}"), r"[^/]+").replace(re.escape("{*}"), r".+"))
    return Route(frozenset(methods.split()), pattern, why, frozenset(refused_query.split()))


# What the page and gradio_client request. Everything else is refused.
ROUTES = (
    route("GET HEAD", "/", "the page", refused_query="deep_link"),
    route("GET", "/config", "the page's layout (read by the page and gradio_client)", refused_query="deep_link"),
    route("GET", "/theme.css", "the page's colours"),
    route("GET", "/favicon.ico", "the tab's icon"),
    route("GET", "/robots.txt", "what crawlers may read"),
    route("GET", "/manifest.json", "the page's web-app manifest"),
    route("GET", "/assets/{*}", "the page's scripts and styles"),
    route("GET", "/static/{*}", "the page's fonts and images"),
    route("GET", "/svelte/{*}", "the page's components"),
    route("GET", "/gradio_api/info", "the API description gradio_client reads"),
    route("GET", "/gradio_api/startup-events", "the page's load event"),
    route("POST", "/gradio_api/queue/join", "an event joins the queue"),
    route("GET", "/gradio_api/queue/data", "the event's results, streamed back"),
    route("GET", "/gradio_api/heartbeat/{}", "the page says it is still open"),
    route("POST", "/gradio_api/cancel", "the page stops a running event"),
    route("POST", "/gradio_api/run/predict", "the page's events that skip the queue (cheap redraws)"),
    route("GET HEAD", "/gradio_api/file={*}", "a handout the app wrote (only under its shelf)"),
)

# Every route of Gradio's server, by its declared path: served (as one of ROUTES) or refused, and why.
# tests/test_routes.py fails when the installed Gradio has a route missing here.
SERVED = "served"
GRADIO_ROUTES = {
    "/": SERVED, "/config": SERVED, "/theme.css": SERVED, "/favicon.ico": SERVED, "/robots.txt": SERVED,
    "/manifest.json": SERVED, "/assets/{path:path}": SERVED, "/static/{path:path}": SERVED,
    "/svelte/{path:path}": SERVED, "/gradio_api/info": SERVED, "/gradio_api/startup-events": SERVED,
    "/gradio_api/queue/join": SERVED, "/gradio_api/queue/data": SERVED, "/gradio_api/cancel": SERVED,
    "/gradio_api/heartbeat/{session_hash}": SERVED, "/gradio_api/file={path_or_url:path}": SERVED,
    "/config/": "the page asks for /config",
    "/gradio_api/info/": "gradio_client asks for /gradio_api/info",
    "/openapi.json": "FastAPI's schema of every route: not needed",
    "/gradio_api/openapi.json": "an OpenAPI schema of the endpoints: not needed",
    "/login": "the app has no login", "/login/": "the app has no login", "/logout": "the app has no login",
    "/gradio_api/user": "the app has no login", "/gradio_api/user/": "the app has no login",
    "/gradio_api/login_check": "the app has no login", "/gradio_api/login_check/": "the app has no login",
    "/gradio_api/token": "the app has no login", "/gradio_api/token/": "the app has no login",
    "/gradio_api/app_id": "not used by the page", "/gradio_api/app_id/": "not used by the page",
    "/gradio_api/deep_link": "writes a file per call to the temp folder; the app offers no deep links",
    "/pwa_icon": "the app is not a PWA", "/pwa_icon/{size}": "the app is not a PWA",
    "/monitoring": "the server's statistics are not for visitors",
    "/monitoring/summary": "the server's statistics are not for visitors",
    "/monitoring/{key}": "the server's statistics are not for visitors",
    "/gradio_api/dev/reload": "development reloading",
    "/gradio_api/runs": "run history is not kept", "/gradio_api/runs/": "run history is not kept",
    "/gradio_api/run-history/connect": "run history is not kept",
    "/gradio_api/run-history/buckets": "run history is not kept",
    "/gradio_api/run-history/records": "run history is not kept",
    "/gradio_api/run-history/records/{endpoint}/{record_id}/assets/{asset_id}": "run history is not kept",
    "/gradio_api/custom_component/{id}/{environment}/{type}/{file_name}": "the app has no custom components",
    "/gradio_api/proxy={url_path:path}": "the app proxies nothing",
    "/gradio_api/file/{path:path}": "files are served under /gradio_api/file= only",
    "/gradio_api/stream/{event_id}": "the app streams no media",
    "/gradio_api/stream/{event_id}/close": "the app streams no media",
    "/gradio_api/stream/{session_hash}/{run}/{component_id}/playlist.m3u8": "the app streams no media",
    "/gradio_api/stream/{session_hash}/{run}/{component_id}/{segment_id}.{ext}": "the app streams no media",
    "/gradio_api/stream/{session_hash}/{run}/{component_id}/playlist-file": "the app streams no media",
    "/gradio_api/reset": "the page does not call it", "/gradio_api/reset/": "the page does not call it",
    "/gradio_api/api/{api_name}": "events go through the queue", "/gradio_api/api/{api_name}/": "events go through the queue",
    "/gradio_api/run/{api_name}": SERVED, "/gradio_api/run/{api_name}/": "events go through the queue",
    "/gradio_api/call/{api_name}": "events go through the queue", "/gradio_api/call/{api_name}/": "events go through the queue",
    "/gradio_api/call/v2/{api_name}": "events go through the queue",
    "/gradio_api/call/v2/{api_name}/": "events go through the queue",
    "/gradio_api/call/{api_name}/{event_id}": "events go through the queue",
    "/gradio_api/call/v2/{api_name}/{event_id}": "events go through the queue",
    "/gradio_api/component_server": "no component of the app calls its server",
    "/gradio_api/component_server/": "no component of the app calls its server",
    "/gradio_api/queue/status": "not used by the page",
    "/gradio_api/upload": "the app has no file input", "/gradio_api/upload_progress": "the app has no file input",
    "/gradio_api/process_recording": "the app records nothing",
    "/gradio_api/theme.css": "the page reads /theme.css",
    "/gradio_api/vibe-edit": "editing the app from the page is off", "/gradio_api/vibe-edit/": "editing the app is off",
    "/gradio_api/undo-vibe-edit": "editing the app is off", "/gradio_api/undo-vibe-edit/": "editing the app is off",
    "/gradio_api/vibe-code": "editing the app is off", "/gradio_api/vibe-code/": "editing the app is off",
    "/gradio_api/vibe-starter-queries": "editing the app is off",
    "/gradio_api/vibe-starter-queries/": "editing the app is off",
}


def route_path(scope: dict) -> str:
    """The path the router matches: percent-decoded, the root path (a proxy's prefix) taken off."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def query_keys(scope: dict) -> set[str]:
    from urllib.parse import parse_qsl

    return {key for key, _ in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)}


def inside(path: str, folder: Path) -> bool:
    """Whether `path`, every link resolved, is a file inside `folder` (also resolved)."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(Path(os.path.realpath(folder)))
    except (ValueError, OSError):
        return False


def refusal(scope: dict, shelf: Path | None) -> str | None:
    """Why this request is refused, or None when the app serves it."""
    if scope["type"] != "http":
        return "this app serves no websockets"
    method, path = scope["method"], route_path(scope)
    headers = dict(scope.get("headers") or [])
    if headers.get(b"content-type", b"").lower().startswith(b"multipart/"):
        return "this app takes no uploads"
    for allowed in ROUTES:
        if allowed.pattern.fullmatch(path):
            if method not in allowed.methods:
                return f"{path} answers {' and '.join(sorted(allowed.methods))} only"
            if query_keys(scope) & allowed.refused_query:
                return f"{path} takes no {', '.join(sorted(query_keys(scope) & allowed.refused_query))} parameter"
            if path.startswith("/gradio_api/file="):
                if shelf is None or not inside(path.removeprefix("/gradio_api/file="), shelf):
                    return "only the app's handouts are served as files"
            return None
    return "this app does not serve that address"


class OnlyPageRoutes:
    """ASGI middleware: serve the routes in ROUTES, refuse everything else with 404 (403 for uploads).

    `shelf` is the folder whose files `/gradio_api/file=` may serve (the handouts); None serves no file.
    Request bodies are read only up to MAX_BODY_BYTES: a longer one is refused (413) and the rest thrown away.
    Events that skip the queue are capped in number at once, per page and in all (429 beyond).
    """

    def __init__(self, app, shelf: str | Path | None = None, max_body: int = MAX_BODY_BYTES,
                 per_page: int = MAX_UNQUEUED_PER_PAGE, in_all: int = MAX_UNQUEUED):
        self.app, self.max_body = app, max_body
        self.shelf = Path(shelf) if shelf else None
        self.per_page, self.in_all = per_page, in_all
        self.running: dict[str, int] = {}  # page (session hash) -> its unqueued events running now

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        why = refusal(scope, self.shelf)
        if why is None:
            declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
            if declared.isdigit() and int(declared) > self.max_body:
                why = f"requests are at most {self.max_body // 1024} KB"
        if why is not None:
            log.info("refused %s %s: %s", scope.get("method", scope["type"]), scope.get("path"), why)
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            status = 403 if "upload" in why else 413 if "at most" in why else 404
            return await answer(receive, send, status, why)
        if route_path(scope) == UNQUEUED_PATH:
            return await self.unqueued(scope, receive, send)
        await self.app(scope, self.bounded(receive, send), send)

    async def unqueued(self, scope, receive, send) -> None:
        """Run an event that skips the queue if its page and the server have room for it, else answer 429.
        (The middleware runs in the server's one event loop, so the counts need no lock.)"""
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                return await answer(receive, send, 413, f"requests are at most {self.max_body // 1024} KB")
        try:
            page = str(json.loads(body).get("session_hash"))
        except (ValueError, AttributeError):
            page = ""
        if sum(self.running.values()) >= self.in_all:
            return await answer(receive, send, 429, f"the server is drawing {self.in_all} views at once; "
                                                    "try again in a moment", body_read=True)
        if self.running.get(page, 0) >= self.per_page:
            return await answer(receive, send, 429, f"this page already has {self.per_page} views being drawn; "
                                                    "wait for them", body_read=True)
        self.running[page] = self.running.get(page, 0) + 1
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()
        try:
            await self.app(scope, replay, send)
        finally:
            self.running[page] -= 1
            if not self.running[page]:
                del self.running[page]

    def bounded(self, receive, send):
        """`receive` that ends a body longer than max_body (a chunked one declares no length) as if the
        client had gone: the app stops reading and answers nobody."""
        seen = 0

        async def receive_bounded():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    log.info("dropped a request whose body is over %d bytes", self.max_body)
                    return {"type": "http.disconnect"}
            return message
        return receive_bounded


async def answer(receive, send, status: int, why: str, body_read: bool = False) -> None:
    """Read what was sent and throw it away, then answer: answering before the body is read leaves a proxy
    in front (a Space's) waiting to deliver it."""
    message = {"type": "http.request", "more_body": not body_read}
    while message.get("more_body") and message.get("type") != "http.disconnect":
        message = await receive()
    body = json.dumps({"detail": f"Refused: {why}."}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":  # python -m explorer.routes: the table, for a reader
    for r in ROUTES:
        print(f"{' '.join(sorted(r.methods)):9} {r.pattern.pattern:40} {r.why}", file=sys.stdout)
