"""What a learner waits for in the page: from a click or keystroke to the figure showing the new data.

    .venv/bin/python benchmarks/page_latency.py                          # this checkout, 124M shape
    .venv/bin/python benchmarks/page_latency.py --app-dir /tmp/base      # and another checkout, alternating
    .venv/bin/python benchmarks/page_latency.py --quick                  # a tiny model, one round: a self-test

Starts `python app.py --model-dir DIR` on 127.0.0.1, where DIR holds GPT-2 124M's shape with
random weights (as app_latency.py does), opens it in headless Chromium (Debian's, driven by
Playwright) and measures, median over rounds:

    analyze          Analyze clicked, with the Attention tab open, until the attention heatmap
                     shows this round's prompt
    first <tab>      the first opening of Layers, then of Surprise, after that Analyze, until the
                     tab's figure (logit lens, surprise tokens) shows this round's prompt
    reopen           Attention opened again after those two, until its heatmap is on screen
    temperature / top-k typed
                     a value typed into the Next token tab's number box, until the next-token
                     bars' data changed
    drag <slider>    a 5-second drag of the attention Layer slider and of the Temperature slider:
                     from the release to the figure showing the last value (0 when it already did);
                     also how many events the page sent and how many times the figure changed
    story next       the story's Next clicked, card after card, until the page stopped changing
                     (the card's text and its tab's figures settled; text only screen readers get,
                     like Gradio's "complete" announced a second after each event, is not a change)

at 32 tokens (after a warm-up round), and analyze, first <tab> and reopen at 1000 tokens (measured
last, without a warm-up: each round takes minutes on a busy machine). `--app-dir PATH` starts a
second app from another checkout (e.g. `git worktree add /tmp/base <commit>`) on the same
weights; rounds alternate between the two apps, and the table gives both and their ratio.

How it is timed. Every time is taken in the page with `performance.now()`. Listeners in the
capture phase note the first pointerdown, keydown or input event after the benchmark arms
them: that is the click or keystroke (Playwright's click and fill send real events). The end
is the first animation frame in which the figure's own data (`.data` and `.layout` of the
Plotly div, read by `wait_for_function` polling on every animation frame) holds the new
values and the div is displayed. "Shows this round's prompt" means a word found nowhere else
(one GPT-2 token, a different one each round) ends the prompt and appears in the figure's axis
labels or cell texts, so a figure left from an earlier round can never count. Between
measurements the benchmark waits until the page has not changed for a moment (a
MutationObserver on the whole page), so one measurement never overlaps the next.

The drag runs in the page: the range input's value is set and an `input` event dispatched every
20 ms for 5 s, between a pointerdown and a pointerup (the release). The value sweeps the
slider's range and ends on a value whose figure was recorded beforehand (typed and drawn), so
"the last value is drawn" is "the figure equals that recording". Redraws are counted as the
animation frames in which the figure's data changed; events as the page's posts (`queue/join`, or
`run/predict` for an event outside the queue).

Story next settles when no part of the page has changed for one second; the time is that of the
last change. For the 1000-token prompt the script also times, in this process on the same
weights and the same token ids, one `explorer.capture.capture` (the peer the target names) and
one `explorer.analysis.analyze` (capture, head scores, logit lens; for scale).

The CPU model (lscpu), its AVX flags and the load average at the start and the end are printed
with the table: other work on the machine slows every number here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import gpt2  # noqa: E402
from app_latency import WORDS, write_random_124m  # noqa: E402
from app_server import AppServer  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 180_000  # one Analyze of a long prompt on a busy 2-core machine

# Installed in the page before Gradio loads. `__bench.arm()` forgets the last start; the next
# pointerdown, keydown or input event (capture phase: before Gradio sees it) is the start.
PAGE_HELPERS = r"""
window.__bench = {
  start: null,
  lastChange: performance.now(),
  arm() { this.start = null; },
  since() { return performance.now() - this.start; },
  plot(selector) {
    const div = document.querySelector(selector + ' .js-plotly-plot');
    return div && div.getClientRects().length > 0 && div.querySelector('.main-svg') && div.data ? div : null;
  },
  // The strings a figure shows as labels: axis categories, tick labels, cell texts, titles, annotations.
  strings(div) {
    const out = [];
    const add = v => {
      if (typeof v === 'string') out.push(v);
      else if (Array.isArray(v)) for (const x of v) { if (typeof x === 'string') out.push(x); else if (Array.isArray(x)) add(x); }
    };
    for (const trace of div.data) { add(trace.x); add(trace.y); add(trace.text); }
    const layout = div.layout || {};
    for (const [key, axis] of Object.entries(layout)) if (/^[xy]axis/.test(key) && axis) add(axis.ticktext);
    add(layout.title && (layout.title.text ?? layout.title));
    for (const note of layout.annotations || []) add(note.text);
    return out;
  },
  shows(selector, word) {
    const div = this.plot(selector);
    return !!div && this.strings(div).some(s => s.includes(word));
  },
  // What a figure draws, small enough to compare every frame: labels, short arrays, and a checksum of z.
  signature(selector) {
    const div = this.plot(selector);
    if (!div) return null;
    // Plotly may hold an array as a list, a typed array or Gradio's base64 form ({bdata, dtype, shape}).
    const digest = v => {
      if (v === undefined || v === null || typeof v !== 'object') return v;
      if (typeof v.bdata === 'string') { let h = 0; for (let i = 0; i < v.bdata.length; i += 7) h = (h * 31 + v.bdata.charCodeAt(i)) | 0; return h; }
      if (Array.isArray(v) && v.length <= 400 && v.every(x => typeof x !== 'object' || x === null)) return v;
      let s = 0;
      const sum = a => { for (const x of a) { if (x !== null && typeof x === 'object') sum(x); else if (x === x && typeof x === 'number') s += x; } };
      sum(v);
      return s;
    };
    return JSON.stringify([this.strings(div), div.data.map(t => [digest(t.x), digest(t.y), digest(t.z)])]);
  },
  visibleInput(label) {
    return [...document.querySelectorAll(`input[aria-label="${label}"]`)].find(e => e.getClientRects().length > 0);
  },
};
for (const type of ['pointerdown', 'keydown', 'input']) {
  document.addEventListener(type, () => { if (__bench.start === null) __bench.start = performance.now(); }, true);
}
// A change counts when a learner could see it: text meant only for screen readers (Gradio's status
// tracker announces "complete" a second after an event and clears it a second later) does not.
const seen = m => !(m.target.nodeType === 1 ? m.target : m.target.parentElement)?.closest('.sr-only');
new MutationObserver(ms => { if (ms.some(seen)) __bench.lastChange = performance.now(); })
  .observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
"""

# Drag the visible range input labelled `label` for `seconds`, then release; resolve once the figure at
# `selector` has not changed for `quietMs`, with the time from the release to its last change and counts.
DRAG = r"""
async ([label, selector, values, stepMs, target, quietMs, timeoutMs]) => {
  const b = window.__bench, range = b.visibleInput(label);
  const frame = () => new Promise(r => requestAnimationFrame(r));
  let sig = b.signature(selector), changes = 0, lastChangeAt = performance.now(), release = null, inputs = 0;
  let done = false;
  const watch = (async () => {
    while (!done) {
      await frame();
      const now = b.signature(selector);
      if (now !== sig) { sig = now; changes++; lastChangeAt = performance.now(); }
    }
  })();
  range.dispatchEvent(new PointerEvent('pointerdown', {bubbles: true}));
  for (const v of values) {
    if (range.value !== String(v)) {
      range.value = String(v);
      range.dispatchEvent(new Event('input', {bubbles: true}));
      inputs++;
    }
    await new Promise(r => setTimeout(r, stepMs));
  }
  release = performance.now();
  range.dispatchEvent(new PointerEvent('pointerup', {bubbles: true}));
  range.dispatchEvent(new Event('change', {bubbles: true}));
  const deadline = release + timeoutMs;
  while (performance.now() - Math.max(lastChangeAt, release) < quietMs && performance.now() < deadline) await frame();
  done = true;
  await watch;
  return {release_to_drawn_ms: Math.max(0, lastChangeAt - release), figure_changes: changes, inputs,
          final_ok: sig === target};
}
"""


# ---------------------------------------------------------------------------- prompts

def marker_words(count: int, avoid: str) -> list[tuple[int, str]]:
    """`count` GPT-2 tokens that are one lowercase word after a space, none inside another or `avoid`."""
    enc, chosen = gpt2.get_tokenizer(), []
    for token_id in range(20_000, 50_000, 7):
        text = enc.decode([token_id])
        word = text[1:]
        if not re.fullmatch(r" [a-z]{6,9}", text) or enc.encode(text) != [token_id] or word in avoid:
            continue
        if any(word in other or other in word for _, other in chosen):
            continue
        chosen.append((token_id, word))
        if len(chosen) == count:
            return chosen
    raise RuntimeError("not enough marker words")


def prompt_ending_in(n_tokens: int, marker_id: int) -> str:
    """A prompt of exactly `n_tokens` GPT-2 tokens whose last token is `marker_id`."""
    enc = gpt2.get_tokenizer()
    filler = enc.encode(" ".join(WORDS[i % len(WORDS)] for i in range(n_tokens + 8)))
    ids = filler[:n_tokens - 1] + [marker_id]
    text = enc.decode(ids)
    assert enc.encode(text) == ids, "the prompt does not tokenize back to itself"
    return text


# ---------------------------------------------------------------------------- the page

class AppPage:
    """One app (a server and a browser page on it), driven like a learner."""

    def __init__(self, name: str, server: AppServer, browser):
        self.name, self.server = name, server
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.context.add_init_script(PAGE_HELPERS)
        self.page = self.context.new_page()
        self.joins = 0
        self.page.on("request", self._count_join)
        self.page.goto(server.url)
        # The page analyses its prompt and opens the story; leave it to explore freely.
        self.page.wait_for_function("document.querySelector('#story-card')?.innerText.includes('1 / ')",
                                    timeout=TIMEOUT_MS)
        self.settle()
        self.page.click("#story-leave")
        self.open_tab("Attention")

    def _count_join(self, request) -> None:
        if request.method == "POST" and ("queue/join" in request.url or "run/predict" in request.url):
            self.joins += 1

    def settle(self, quiet_ms: int = 300) -> None:
        """Wait until nothing in the page has changed for `quiet_ms`."""
        self.page.wait_for_function(f"performance.now() - __bench.lastChange > {quiet_ms}", polling=50,
                                    timeout=TIMEOUT_MS)

    def timed(self, action, done_js: str) -> float:
        """Seconds from the event `action` sends to the first animation frame where `done_js` holds."""
        self.page.evaluate("__bench.arm()")
        action()
        elapsed = self.page.wait_for_function(f"() => ({done_js}) && __bench.start !== null && __bench.since()",
                                              polling="raf", timeout=TIMEOUT_MS).json_value()
        self.settle()
        return elapsed / 1000

    def open_tab(self, label: str) -> None:
        self.page.get_by_role("tab", name=label, exact=True).click()
        self.settle()

    def tab(self, label: str):
        return self.page.get_by_role("tab", name=label, exact=True)

    def signature(self, selector: str):
        return self.page.evaluate(f"__bench.signature({json.dumps(selector)})")

    def analyze_round(self, prompt: str, marker: str) -> dict[str, float]:
        """Analyze with Attention open, then Layers and Surprise opened for the first time, then Attention again."""
        shows = lambda selector: f"__bench.shows({json.dumps(selector)}, {json.dumps(marker)})"  # noqa: E731
        self.page.get_by_label("Prompt").fill(prompt)
        self.settle()
        return {
            "analyze": self.timed(lambda: self.page.get_by_role("button", name="Analyze").click(),
                                  shows("#attention-heatmap")),
            "first Layers": self.timed(lambda: self.tab("Layers").click(), shows("#logit-lens")),
            "first Surprise": self.timed(lambda: self.tab("Surprise").click(), shows("#surprise-tokens")),
            "reopen Attention": self.timed(lambda: self.tab("Attention").click(), shows("#attention-heatmap")),
        }

    def number_box(self, label_start: str):
        return self.page.get_by_label(re.compile(f"^number input for {re.escape(label_start)}")).locator("visible=true")

    def type_value(self, label_start: str, value, selector: str) -> float:
        """Type `value` into a slider's number box; seconds until the figure at `selector` changed."""
        before = self.signature(selector)
        box = self.number_box(label_start)
        return self.timed(lambda: box.fill(str(value)),
                          f"__bench.signature({json.dumps(selector)}) !== {json.dumps(before)}")

    def drag(self, label: str, selector: str, values: list, seconds: float) -> dict:
        """Drag the slider `label` through `values` (ending on the last) over `seconds`, then release."""
        last, other = values[-1], values[-2]
        assert last != other, "the drag must end by moving to its last value"
        self.type_value(label, last, selector)
        target = self.signature(selector)
        self.type_value(label, other, selector)
        joins = self.joins
        step_ms = 20
        n_steps = int(seconds * 1000 / step_ms)
        sweep = [values[round(i * (len(values) - 1) / (n_steps - 1))] for i in range(n_steps)]
        result = self.page.evaluate(DRAG, [f"range slider for {label}", selector, sweep, step_ms, target, 1000,
                                           TIMEOUT_MS])
        self.settle()
        result["events_sent"] = self.joins - joins
        result["release_to_drawn"] = result.pop("release_to_drawn_ms") / 1000
        return result

    def story_next(self) -> list[float]:
        """Every Next from the first card to the last: seconds until the page stopped changing."""
        self.page.click("#story-resume")
        self.page.wait_for_function("document.querySelector('#story-card')?.innerText.includes(' / ')")
        self.settle()
        while "1 / " not in self.page.inner_text("#story-card"):
            self.page.click("#story-back")
            self.settle(1000)
        count = int(re.search(r"1 / (\d+)", self.page.inner_text("#story-card")).group(1))
        times = []
        for index in range(2, count + 1):
            self.page.evaluate("__bench.arm()")
            self.page.click("#story-next")
            self.page.wait_for_function(f"document.querySelector('#story-card').innerText.includes('{index} / ')",
                                        timeout=TIMEOUT_MS)
            self.settle(1000)
            times.append(self.page.evaluate("__bench.lastChange - __bench.start") / 1000)
        self.page.click("#story-leave")
        self.settle()
        self.open_tab("Attention")
        return times

    def close(self) -> None:
        self.context.close()


# ---------------------------------------------------------------------------- the peer, in this process

def in_process_peer(model_dir: Path, prompt: str):
    """A function that times one capture and one analyze of `prompt` on the app's weights, in this process."""
    from explorer.analysis import analyze
    from explorer.capture import capture
    from explorer.store import ModelStore

    store = ModelStore(model_dir, sizes=[])
    loaded = store.get(store.default)
    ids = loaded.tokenizer.encode(prompt)[: loaded.model.config.n_ctx]

    def run() -> dict[str, float]:
        start = time.perf_counter()
        capture(loaded.model, ids, loaded.tokenizer)
        middle = time.perf_counter()
        analyze(loaded, prompt)
        return {"capture": middle - start, "analyze": time.perf_counter() - middle}
    return run


# ---------------------------------------------------------------------------- the machine

def machine() -> dict:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        lscpu = ""
    field = lambda name: next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()  # noqa: E731
                               if line.startswith(name + ":")), "?")
    flags = field("Flags").split()
    return {"cpu": field("Model name"), "cpus": os.cpu_count(),
            "avx": sorted(f for f in flags if f.startswith(("avx", "amx"))),
            "python": platform.python_version(), "torch": torch.__version__,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def save_report(report: dict, path: str | None) -> None:
    """Every measurement as JSON, where `--json` asked for it."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=1))


def commit_of(directory: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(directory), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip() + ("+changes" if subprocess.run(
                                  ["git", "-C", str(directory), "status", "--porcelain", "--untracked-files=no"],
                                  capture_output=True, text=True).stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def write_tiny(directory: Path) -> None:
    """A tiny random model with GPT-2's vocabulary, for --quick."""
    torch.manual_seed(0)
    model = gpt2.GPT2(gpt2.GPTConfig(n_ctx=64, n_embd=32, n_head=4, n_layer=2)).eval()
    (directory / "hparams.json").write_text(json.dumps(model.config.to_hparams()))
    save_file({name: p.detach().contiguous() for name, p in model.named_parameters()},
              str(directory / "model.safetensors"))


# ---------------------------------------------------------------------------- the run

def run(args) -> dict:
    from playwright.sync_api import sync_playwright

    apps = {"this": ROOT} | ({"other": Path(args.app_dir).resolve()} if args.app_dir else {})
    report = {"machine": machine(), "load_start": os.getloadavg(), "apps": {k: str(v) for k, v in apps.items()},
              "commits": {k: commit_of(v) for k, v in apps.items()}, "peer": []}
    lengths = (16, 48) if args.quick else (args.short_tokens, args.long_tokens)
    rounds = {lengths[0]: args.rounds, lengths[1]: args.long_rounds}
    markers = iter(marker_words(64 * len(apps), " ".join(WORDS)))
    seconds = 1.0 if args.quick else args.drag_seconds
    results = {name: {} for name in apps}

    def add(name: str, key: str, value) -> None:
        results[name].setdefault(key, []).append(value)

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright, ExitStack() as stack:
        model_dir = Path(tmp) / "model"
        model_dir.mkdir()
        (write_tiny if args.quick else write_random_124m)(model_dir)
        servers = {}
        for name, directory in apps.items():
            servers[name] = AppServer(model_dir, Path(tmp) / f"{name}.log", app_dir=directory)
            stack.callback(servers[name].stop)
        for server in servers.values():
            server.wait_until_ready()
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        stack.callback(browser.close)
        pages = {name: AppPage(name, server, browser) for name, server in servers.items()}
        order = list(pages)

        for n_tokens in lengths:
            peer = in_process_peer(model_dir, prompt_ending_in(n_tokens, next(markers)[0])) if n_tokens == lengths[1] else None
            # Round 0 warms each app up at the short length; the long prompt, measured last, is not warmed up
            # (one round of it takes minutes on a busy 2-core machine).
            first = 0 if n_tokens == lengths[0] else 1
            if peer:
                peer()  # the in-process peer is warmed up at the long length
            for r in range(first, rounds[n_tokens] + 1):
                if peer:
                    report["peer"].append(peer())
                for name in order if r % 2 == 0 else order[::-1]:
                    token_id, word = next(markers)
                    times = pages[name].analyze_round(prompt_ending_in(n_tokens, token_id), word)
                    if r:
                        for key, value in times.items():
                            add(name, f"{key}, {n_tokens} tokens", value)
                    print(f"  {name} {n_tokens} tokens round {r}: "
                          + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in times.items()), flush=True)
            if n_tokens != lengths[0]:
                continue
            # At the short prompt's analysis: the sampling controls, the drags and the story.
            for page in pages.values():
                page.open_tab("Next token")
            for r in range(args.rounds + 1):
                for name in order if r % 2 == 0 else order[::-1]:
                    page = pages[name]
                    temperature = page.type_value("Temperature", round([0.55, 0.8, 1.25, 1.5][r % 4] + 0.05 * (r // 4), 2),
                                                  "#next-token-bars")
                    top_k = page.type_value("Top-k", 20 + r, "#next-token-bars")
                    if r:
                        add(name, "temperature typed", temperature)
                        add(name, "top-k typed", top_k)
            for r in range(max(1, args.drag_rounds)):
                for name in order if r % 2 == 0 else order[::-1]:
                    page = pages[name]
                    page.open_tab("Next token")
                    up_down = [round(0.05 * i, 2) for i in range(4, 41)] + [round(0.05 * i, 2) for i in range(40, 9, -1)]
                    add(name, "drag Temperature", page.drag("Temperature (0 = greedy)", "#next-token-bars",
                                                            up_down + [round(0.6 + 0.05 * r, 2)], seconds))
                    page.open_tab("Attention")
                    layers = list(range(12)) + list(range(11, -1, -1)) if not args.quick else [0, 1, 0, 1, 0]
                    add(name, "drag Layer", page.drag("Layer", "#attention-heatmap",
                                                      layers + [(3 + r) % 12 if not args.quick else 1],
                                                      seconds))
            for name in order:
                results[name]["story next"] = pages[name].story_next()
            if args.json:  # what is measured so far, in case the long prompt's rounds are cut short
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps(report | {"results": results}, indent=1))
        for page in pages.values():
            page.close()
    report["load_end"] = os.getloadavg()
    report["results"] = results
    return report


# ---------------------------------------------------------------------------- the table

def summary(values: list) -> str:
    if values and isinstance(values[0], dict):  # drags
        drawn = statistics.median(v["release_to_drawn"] for v in values)
        ok = sum(v["final_ok"] for v in values)
        return (f"{drawn * 1000:.0f} ms (changes {statistics.median(v['figure_changes'] for v in values):.0f}, "
                f"events {statistics.median(v['events_sent'] for v in values):.0f}, "
                f"inputs {statistics.median(v['inputs'] for v in values):.0f}, last value drawn {ok}/{len(values)})")
    return f"{statistics.median(values) * 1000:.0f} ms"


def median_of(values: list) -> float:
    if values and isinstance(values[0], dict):
        return statistics.median(v["release_to_drawn"] for v in values)
    return statistics.median(values)


def print_report(report: dict) -> None:
    m = report["machine"]
    print(f"\nCPU {m['cpu']} ({m['cpus']} CPUs; {' '.join(m['avx']) or 'no AVX'}), Python {m['python']}, "
          f"torch {m['torch']}, {m['date']}")
    print("load average at start {:.2f} {:.2f} {:.2f}, at end {:.2f} {:.2f} {:.2f}".format(
        *report["load_start"], *report["load_end"]))
    names = list(report["results"])
    for name in names:
        print(f"{name}: {report['apps'][name]} ({report['commits'][name]})")
    header = f"{'measure (median)':<30}" + "".join(f" {name:>12}" for name in names)
    print("\n" + header + ("  this/other" if len(names) == 2 else ""))
    for key in report["results"][names[0]]:
        cells = [median_of(report["results"][name][key]) for name in names]
        line = f"{key:<30}" + "".join(f" {c * 1000:>9.0f} ms" for c in cells)
        if len(names) == 2:
            line += f"  {cells[0] / cells[1]:.2f}" if cells[1] > 0 else "  -"
        print(line)
    for name in names:
        print(f"\n{name}, details:")
        for key, values in report["results"][name].items():
            print(f"  {key:<30} {summary(values)}")
    if report["peer"]:
        capture = statistics.median(p["capture"] for p in report["peer"])
        analyze = statistics.median(p["analyze"] for p in report["peer"])
        long_key = next(k for k in report["results"][names[0]] if k.startswith("analyze, ") and k != next(
            iter(report["results"][names[0]])))
        print(f"\nin this process, same prompt and weights: capture {capture * 1000:.0f} ms, analyze {analyze * 1000:.0f} ms")
        for name in names:
            page = median_of(report["results"][name][long_key])
            print(f"  {name}: {long_key} / capture = {page / capture:.2f} (target <= 2), / analyze = {page / analyze:.2f}")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--app-dir", help="another checkout of the app to time in the same run, alternating rounds")
    parser.add_argument("--rounds", type=int, default=5, help="rounds at the short prompt (after one warm-up)")
    parser.add_argument("--long-rounds", type=int, default=3, help="rounds at the long prompt (after one warm-up)")
    parser.add_argument("--drag-rounds", type=int, default=3)
    parser.add_argument("--drag-seconds", type=float, default=5.0)
    parser.add_argument("--short-tokens", type=int, default=32)
    parser.add_argument("--long-tokens", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="a tiny model, 16 and 48 tokens, one round, 1-s drags")
    parser.add_argument("--json", help="write every measurement to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = args.long_rounds = args.drag_rounds = 1
    if not CHROMIUM.exists():
        sys.exit("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    torch.set_num_threads(2)
    report = run(args)
    print_report(report)
    save_report(report, args.json)
    return report


if __name__ == "__main__":
    main()
