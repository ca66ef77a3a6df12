"""Call a Gradio app's events the way its web page does, to time them without a client library's waits.

The page posts an event to `<api_prefix>/queue/join` and reads the answer from the
server-sent-event stream `<api_prefix>/queue/data` as soon as the server writes it.
`gradio_client` speaks the same protocol but checks for new messages every 50 ms
(`time.sleep(0.05)` in its polling loops), so through it even an event that does nothing
takes ~150 ms on this machine. Timing the page's own protocol measures what a learner
waits for between moving a slider and the new figure arriving (before the browser draws it).

`PageSession` keeps one session hash, so per-user state (`gr.State`) persists between
calls exactly as it does for one open page.
"""

from __future__ import annotations

import json
import uuid

import httpx


class PageSession:
    def __init__(self, url: str, timeout: float = 120.0):
        self.url = url.rstrip("/")
        self.http = httpx.Client(timeout=timeout)
        self.session_hash = uuid.uuid4().hex[:11]
        config = self.http.get(f"{self.url}/config").raise_for_status().json()
        self.prefix = config.get("api_prefix", "/gradio_api")
        self.components = {c["id"]: c for c in config["components"]}
        self.events = {d["api_name"]: d for d in config["dependencies"] if d.get("api_name")}

    def call(self, api_name: str, *args):
        """Run one event; return its output values (the data of `process_completed`)."""
        event = self.events[api_name.lstrip("/")]
        args = iter(args)
        # State inputs are kept on the server, per session: the page sends null for them.
        data = [None if self.components[i]["type"] == "state" else next(args) for i in event["inputs"]]
        joined = self.http.post(f"{self.url}{self.prefix}/queue/join", json={
            "data": data, "fn_index": event["id"], "trigger_id": None, "event_data": None,
            "session_hash": self.session_hash}).raise_for_status().json()
        with self.http.stream("GET", f"{self.url}{self.prefix}/queue/data",
                              params={"session_hash": self.session_hash}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") != joined["event_id"] or message.get("msg") != "process_completed":
                    continue
                output = message.get("output", {})
                if not message.get("success", False) or "error" in output:
                    raise RuntimeError(f"{api_name} failed: {output.get('error') or message}")
                return output["data"]
        raise RuntimeError(f"{api_name}: the event stream closed without a result")

    def close(self) -> None:
        self.http.close()
