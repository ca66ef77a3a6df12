"""A class at once: 30 students each analyse a different 64-token prompt within 10 seconds.

    .venv/bin/python benchmarks/class_load.py                            # this checkout, 124M shape
    .venv/bin/python benchmarks/class_load.py --app-dir /tmp/base        # and another checkout, alternating
    .venv/bin/python benchmarks/class_load.py --via gradio_client        # through the official client

Starts `python app.py --model-dir DIR` on 127.0.0.1 with GPT-2 124M's shape and random weights
(as app_latency.py does). Each round, `--students` visitors, each with a session of their own,
click Analyze on a prompt of their own (`--tokens` tokens, a different last word for each),
their clicks spread evenly over `--spread` seconds (the first at 0 s, the last at 10 s). A
thread per student posts the event and waits for its answer; times are `time.perf_counter()`
in this process, over loopback.

    served        from the first student's click to the last student's answer (the target: <= 15 s)
    wait          each student's own time from click to answer: median and slowest

By default a student speaks the web page's own protocol (page_protocol.PageSession: post to
`queue/join`, read the answer from the event stream as soon as it is written), sending the
prompt and every other input of Analyze at its default value, as a freshly opened page does.
After the answer it runs the events the page chains after Analyze (the follow-up that makes the
logit lens and each token's surprise), untimed but loading the server as a page's would. `--via gradio_client` uses one
`gradio_client.Client` per student instead (it checks for answers every 50 ms, and runs no
follow-up). No browser draws anything here: this measures the server.

`--app-dir PATH` starts a second app from another checkout on the same weights; rounds
alternate between the two and the table gives both and their ratio. One student per app
analyses a prompt before the first round (a warm-up). CPU model and load average (start, end)
are printed with the table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from app_latency import WORDS, write_random_124m  # noqa: E402
from app_server import AppServer  # noqa: E402
from page_latency import commit_of, machine, marker_words, prompt_ending_in, save_report, write_tiny  # noqa: E402
from page_protocol import PageSession  # noqa: E402


class PageStudent:
    """One visitor speaking the page's protocol, with Analyze's other inputs at their defaults.

    After Analyze's answer it runs what the page runs next on its own (the events chained after
    Analyze, e.g. the follow-up that makes the logit lens and the surprise), as a page would: the answer is what the
    student waits for, the follow-ups are load on the server that other students' Analyzes meet."""

    def __init__(self, url: str):
        self.session = PageSession(url)
        event = self.session.events["analyze"]
        self.defaults = self.default_inputs(event)[1:]
        self.follow_ups = [(name, self.default_inputs(chained)) for name, chained in self.session.events.items()
                           if chained.get("trigger_after") == event["id"]]

    def default_inputs(self, event: dict) -> list:
        inputs = [self.session.components[i] for i in event["inputs"]]
        return [c["props"].get("value") for c in inputs if c["type"] != "state"]

    def analyze(self, prompt: str) -> None:
        self.session.call("analyze", prompt, *self.defaults)

    def after_answer(self) -> None:
        for name, values in self.follow_ups:
            self.session.call(name, *values)

    def close(self) -> None:
        self.session.close()


class ClientStudent:
    """One visitor through gradio_client (a Client per student: a session each)."""

    def __init__(self, url: str):
        from gradio_client import Client

        self.client = Client(url, verbose=False)

    def analyze(self, prompt: str) -> None:
        self.client.predict(prompt, api_name="/analyze")

    def after_answer(self) -> None:  # gradio_client runs no chained event
        pass

    def close(self) -> None:
        self.client.close()


def class_round(url: str, prompts: list[str], spread: float, student_kind) -> dict:
    """Every student clicks at their time; return the clicks' and answers' times and any errors."""
    students = [student_kind(url) for _ in prompts]
    clicks, answers, errors = [None] * len(prompts), [None] * len(prompts), []
    start = time.perf_counter() + 0.5
    step = spread / max(1, len(prompts) - 1)

    def student(i: int) -> None:
        time.sleep(max(0.0, start + i * step - time.perf_counter()))
        clicks[i] = time.perf_counter()
        try:
            students[i].analyze(prompts[i])
            answers[i] = time.perf_counter()
            students[i].after_answer()
        except Exception as error:  # noqa: BLE001 - a failed student is reported, not fatal
            errors.append(f"student {i}: {error}")
        answers[i] = answers[i] or time.perf_counter()

    threads = [threading.Thread(target=student, args=(i,)) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for s in students:
        s.close()
    waits = [a - c for a, c in zip(answers, clicks)]
    return {"served": max(answers) - min(clicks), "wait_median": statistics.median(waits),
            "wait_max": max(waits), "clicks_span": max(clicks) - min(clicks), "errors": errors}


def run(args) -> dict:
    apps = {"this": ROOT} | ({"other": Path(args.app_dir).resolve()} if args.app_dir else {})
    kind = ClientStudent if args.via == "gradio_client" else PageStudent
    report = {"machine": machine(), "load_start": os.getloadavg(), "apps": {k: str(v) for k, v in apps.items()},
              "commits": {k: commit_of(v) for k, v in apps.items()}, "settings": vars(args),
              "rounds": {name: [] for name in apps}}
    markers = iter(marker_words(args.students * (args.rounds + 1) * len(apps) + len(apps), " ".join(WORDS)))
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        model_dir = Path(tmp) / "model"
        model_dir.mkdir()
        (write_tiny if args.quick else write_random_124m)(model_dir)
        servers = {}
        for name, directory in apps.items():
            servers[name] = AppServer(model_dir, Path(tmp) / f"{name}.log", app_dir=directory)
            stack.callback(servers[name].stop)
        for name, server in servers.items():
            server.wait_until_ready()
            warm = kind(server.url)
            warm.analyze(prompt_ending_in(args.tokens, next(markers)[0]))
            warm.close()
        order = list(servers)
        for r in range(args.rounds):
            for name in order if r % 2 == 0 else order[::-1]:
                prompts = [prompt_ending_in(args.tokens, next(markers)[0]) for _ in range(args.students)]
                result = class_round(servers[name].url, prompts, args.spread, kind)
                result["load"] = os.getloadavg()
                report["rounds"][name].append(result)
                print(f"  round {r + 1} {name}: served {result['served']:.2f} s, wait median "
                      f"{result['wait_median']:.2f} s, slowest {result['wait_max']:.2f} s, "
                      f"load {result['load'][0]:.2f}" + (f", {len(result['errors'])} errors" if result["errors"] else ""),
                      flush=True)
    report["load_end"] = os.getloadavg()
    return report


def print_report(report: dict) -> None:
    m, s = report["machine"], report["settings"]
    print(f"\nCPU {m['cpu']} ({m['cpus']} CPUs; {' '.join(m['avx']) or 'no AVX'}), Python {m['python']}, "
          f"torch {m['torch']}, {m['date']}")
    print("load average at start {:.2f} {:.2f} {:.2f}, at end {:.2f} {:.2f} {:.2f}".format(
        *report["load_start"], *report["load_end"]))
    names = list(report["rounds"])
    for name in names:
        print(f"{name}: {report['apps'][name]} ({report['commits'][name]})")
    print(f"\n{s['students']} students, {s['tokens']}-token prompts, clicks over {s['spread']:g} s, via {s['via']}, "
          f"median of {s['rounds']} rounds")
    print(f"{'measure':<28}" + "".join(f" {name:>10}" for name in names) + ("  this/other" if len(names) == 2 else ""))
    for key, label in (("served", "first click to last answer"), ("wait_median", "a student's wait, median"),
                       ("wait_max", "a student's wait, slowest")):
        cells = [statistics.median(r[key] for r in report["rounds"][name]) for name in names]
        print(f"{label:<28}" + "".join(f" {c:>8.2f} s" for c in cells)
              + (f"  {cells[0] / cells[1]:.2f}" if len(names) == 2 else ""))
    errors = sum(len(r["errors"]) for rounds in report["rounds"].values() for r in rounds)
    print(f"target: first click to last answer <= 15 s; failed analyses: {errors}")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--app-dir", help="another checkout of the app to time in the same run, alternating rounds")
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--spread", type=float, default=10.0, help="seconds between the first and the last click")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--via", choices=["page", "gradio_client"], default="page")
    parser.add_argument("--quick", action="store_true", help="a tiny model, 4 students over 1 s, one round")
    parser.add_argument("--json", help="write every round to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.students, args.spread, args.rounds, args.tokens = 4, 1.0, 1, 16
    torch.set_num_threads(2)
    report = run(args)
    print_report(report)
    save_report(report, args.json)
    return report


if __name__ == "__main__":
    main()
