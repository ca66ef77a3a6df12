"""Memory of the explorer app under many visitors with long prompts, and the cost of a dropped analysis.

    .venv/bin/python benchmarks/app_memory.py [--sessions 40] [--budget 1.5GB]

Starts `python app.py --model-dir DIR` (GPT-2 124M's shape, random weights) and, as the page
does (page_protocol.py: one session hash per visitor), lets `--sessions` visitors each analyse a
~1000-token prompt: first one after another, then 8 at a time. The server's resident memory
(VmRSS) is sampled every 50 ms from /proc; its peak must stay under start-up + budget + 0.5 GB.

Then, for the first visitor (whose analysis the budget has long dropped): one head switch,
which recomputes the analysis, timed against one Analyze of the same prompt; and Analyze of a
1024-token prompt as the page sees it. Finally every visitor's page is "closed" (its heartbeat
stream ends) and the memory is read again: closed sessions' analyses are dropped at once.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from app_latency import prompt_of, write_random_124m  # noqa: E402
from app_server import AppServer  # noqa: E402
from explorer.budget import parse_bytes  # noqa: E402
from page_protocol import PageSession  # noqa: E402

GB = 1e9


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class PeakSampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self):
        while self.running:
            self.peak = max(self.peak, rss(self.pid))
            time.sleep(0.05)


class Visitor:
    """One open page: a session hash, its heartbeat stream (as a browser keeps one), its analyses."""

    def __init__(self, url: str):
        self.page = PageSession(url, timeout=600)
        self.inputs = None
        self._http = httpx.Client(timeout=None)
        self._heartbeat = threading.Thread(target=self._beat, args=(url,), daemon=True)
        self._heartbeat.start()

    def _beat(self, url):
        try:
            with self._http.stream("GET", f"{url.rstrip('/')}{self.page.prefix}/heartbeat/{self.page.session_hash}") \
                    as stream:
                for _ in stream.iter_lines():
                    pass
        except Exception:  # closed by close(): the server sees the page go and runs `unload`
            pass

    def analyze(self, prompt: str):
        event = self.page.events["analyze"]
        values = [self.page.components[i]["props"].get("value") for i in event["inputs"]
                  if self.page.components[i]["type"] != "state"]
        return self.page.call("analyze", prompt, *values[1:])

    def close(self):
        self._http.close()
        self.page.close()


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--budget", default="1.5GB")
    args = parser.parse_args()
    budget = parse_bytes(args.budget)
    with tempfile.TemporaryDirectory() as tmp:
        write_random_124m(Path(tmp))
        server = AppServer(Path(tmp), Path(tmp) / "app.log", "--memory-budget", args.budget,
                           "--max-queue", str(args.sessions * 2))
        try:
            server.wait_until_ready()
            pid = server.process.pid
            warm = Visitor(server.url)
            warm.analyze(prompt_of(32))  # imports, first figures: part of start-up
            start_rss = rss(pid)
            sampler = PeakSampler(pid)
            sampler.start()
            long_prompt = prompt_of(1000)
            visitors = [Visitor(server.url) for _ in range(args.sessions)]
            sequential = [timed(lambda v=v: v.analyze(long_prompt)) for v in visitors]
            after_sequential = rss(pid)
            with ThreadPoolExecutor(8) as pool:
                concurrent = list(pool.map(lambda v: timed(lambda: v.analyze(long_prompt + " again")), visitors))
            after_concurrent = rss(pid)
            first = visitors[0]
            switch = timed(lambda: first.page.call("select_head", 3, 4, False, 500))  # dropped: recomputed
            analyze = statistics.median(timed(lambda: first.analyze(long_prompt)) for _ in range(3))
            full = statistics.median(timed(lambda: first.analyze(prompt_of(1024))) for _ in range(3))
            for visitor in visitors + [warm]:
                visitor.close()
            time.sleep(5)  # unload runs in the background after each heartbeat ends
            after_close = rss(pid)
            sampler.running = False
            sampler.join()
        finally:
            server.stop()
    limit = start_rss + budget + 0.5 * GB
    print(f"{args.sessions} sessions, ~1000-token prompts, GPT-2 124M shapes, budget {budget / GB:.2f} GB")
    print(f"RSS after start-up          {start_rss / GB:6.2f} GB")
    print(f"RSS after {args.sessions} one by one     {after_sequential / GB:6.2f} GB "
          f"(+{(after_sequential - start_rss) / GB:.2f})")
    print(f"RSS after {args.sessions}, 8 at a time   {after_concurrent / GB:6.2f} GB "
          f"(+{(after_concurrent - start_rss) / GB:.2f})")
    print(f"peak RSS                    {sampler.peak / GB:6.2f} GB (limit start-up + budget + 0.5 GB = "
          f"{limit / GB:.2f}: {'within' if sampler.peak <= limit else 'OVER'})")
    print(f"RSS 5 s after every page closed {after_close / GB:6.2f} GB")
    print(f"analyze one by one: median {statistics.median(sequential):.2f} s; 8 at a time: median wait "
          f"{statistics.median(concurrent):.2f} s")
    print(f"head switch after the analysis was dropped {switch:.2f} s; Analyze of the same prompt {analyze:.2f} s "
          f"(ratio {switch / analyze:.2f})")
    print(f"Analyze of a 1024-token prompt as the page sees it: {full:.2f} s")


if __name__ == "__main__":
    main()
