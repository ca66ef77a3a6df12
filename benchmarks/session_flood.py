"""Thousands of cheap visitors: what the server keeps per session, against another checkout in the same run.

    .venv/bin/python benchmarks/session_flood.py                          # this checkout
    .venv/bin/python benchmarks/session_flood.py --app-dir /tmp/before    # and another, e.g. before LeanSessions

Starts `python app.py --model-dir DIR` (the project's tiny checkpoint: the model does not matter
here) on 127.0.0.1 and sends `--sessions` visitors, each with a session hash of its own, one cheap
event each (the first event of the page that takes no input and skips the queue: hiding the
handout buttons), one after another over one keep-alive connection, as a stranger's script would.
The server's resident memory (VmRSS from /proc) is read before and after; the growth divided by
the number of sessions is what Gradio and the app keep per visitor. Times are wall clock in this
process. Nothing here runs the model.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from app_memory import rss  # noqa: E402
from app_server import AppServer  # noqa: E402
from page_latency import commit_of, machine, save_report, write_tiny  # noqa: E402


def flood(server: AppServer, sessions: int) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    connection.request("GET", "/config")
    dependencies = json.loads(connection.getresponse().read())["dependencies"]
    cheap = next(i for i, d in enumerate(dependencies) if d.get("queue") is False and not d["inputs"])
    time.sleep(1.0)  # let start-up settle
    before, start = rss(server.process.pid), time.perf_counter()
    for n in range(sessions):
        connection.request("POST", "/gradio_api/run/predict", headers={"Content-Type": "application/json"},
                           body=json.dumps({"data": [], "fn_index": cheap, "session_hash": f"flood-{n}"}))
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"session {n}: HTTP {response.status}")
    seconds = time.perf_counter() - start
    connection.close()
    time.sleep(1.0)
    after = rss(server.process.pid)
    return {"rss_before": before, "rss_after": after, "seconds": seconds, "sessions": sessions}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--app-dir", help="another checkout of the app to measure in the same run")
    parser.add_argument("--sessions", type=int, default=1500)
    parser.add_argument("--json", help="write the numbers to this file")
    args = parser.parse_args(argv)
    apps = {"this": ROOT} | ({"other": Path(args.app_dir).resolve()} if args.app_dir else {})
    report = {"machine": machine(), "load_start": os.getloadavg(), "settings": vars(args),
              "commits": {k: commit_of(v) for k, v in apps.items()}, "apps": {}}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        model_dir.mkdir()
        write_tiny(model_dir)
        for name, directory in apps.items():  # one at a time: each has the machine to itself
            server = AppServer(model_dir, Path(tmp) / f"{name}.log", app_dir=directory)
            try:
                server.wait_until_ready()
                report["apps"][name] = flood(server, args.sessions)
            finally:
                server.stop()
    report["load_end"] = os.getloadavg()
    m = report["machine"]
    print(f"CPU {m['cpu']} ({m['cpus']} CPUs), Python {m['python']}, {m['date']}; load average "
          f"{report['load_start'][0]:.2f} at start, {report['load_end'][0]:.2f} at end")
    print(f"{args.sessions} sessions, one cheap event each")
    print(f"{'app':<8} {'commit':<16} {'RSS before':>11} {'RSS after':>10} {'per session':>12} {'time':>8}")
    for name, r in report["apps"].items():
        print(f"{name:<8} {report['commits'][name]:<16} {r['rss_before'] / 2**20:>8.0f} MB {r['rss_after'] / 2**20:>7.0f} MB"
              f" {(r['rss_after'] - r['rss_before']) / r['sessions'] / 1024:>9.1f} KB {r['seconds']:>6.1f} s")
    if len(report["apps"]) == 2:
        this, other = report["apps"]["this"], report["apps"]["other"]
        growth = [(r["rss_after"] - r["rss_before"]) for r in (this, other)]
        print(f"this/other: memory per session {growth[0] / growth[1]:.2f}, time {this['seconds'] / other['seconds']:.2f}")
    save_report(report, args.json)
    return report


if __name__ == "__main__":
    main()
