"""Every check that needs a GPU, in one run of under 8 minutes, for a GPU machine lent for a short while.

    python benchmarks/gpu_check.py --out $OUT/gpu_check.json        # on the GPU machine (CUDA)
    python benchmarks/gpu_check.py --device cpu --quick              # self-test of this script on a CPU

It runs, in this order, within one time budget (`--budget-s`, 480 s):

1. tests   the test suite without the browser tests (tests/*browser*.py), in a subprocess with
           EXPLORER_DEVICE=cuda (so the app and the model store pick the GPU) and REQUIRE_BROWSER
           unset, stopped after `--tests-timeout-s` (240 s); pass/fail counts from pytest's summary.
2. hooks   CUDA against CPU at every HookPoint of a random 124M-shaped model (seed 0) on one 64-token
           prompt, float32, with TF32 turned off for this check (matmuls in TF32 keep 10 mantissa bits
           and would miss 1e-3): relative difference max|a - b| / (max|a| + 1e-6) per hook point,
           positions that are -inf on both sides (the masked scores) left out. The model placed as the
           app places it (gpt2.device.place: on a GPU the reference model of gpt2/model.py, on the
           CPU `make_fast` of it) is compared with the reference model on the CPU.
3. sizes   124M, 355M, 774M, 1558M (gpt2.PRESETS, random weights, seed 0, built on the device), and
           Hugging Face's GPT2LMHeadModel holding the same weights (benchmarks/decode_speed.py's
           hf_model_like); ours is placed as the app and the CLI place it (gpt2.device.place). Per size:
             capture   explorer.capture.capture(model, ids, tokenizer) against HF's eager forward with
                       output_attentions and output_hidden_states (logits_to_keep=1, as ours keeps the
                       last position's logits), T = 64 and 1024, alternating rounds after a warm-up,
                       CUDA synchronised around each call, median; ours copies everything to numpy,
                       HF's tensors stay on the GPU (as in capture_speed.py)
             analysis  capture(..., score_patterns=pattern_scores) plus head_scores(trace, induction) at T = 1024 (what
                       Analyze computes before drawing figures): median time, and the peak GPU memory it
                       adds above the models' weights (torch.cuda.max_memory_allocated after a reset)
             decode    gpt2.generate(model, ids, N, temperature=0) against HF's generate(do_sample=False,
                       use_cache=True) on the same 64-token prompt and N (64): new tokens per second of
                       the whole call; HF with its sdpa attention, its fastest
           Sizes run smallest first; before each, the time the last one took, scaled by parameters, is
           compared with what is left of the budget, and the rest are skipped (and recorded) if it
           would run over. Each size is freed before the next. `--dtype float32 bfloat16` adds a
           bfloat16 pass of the capture timings.
4. environment: GPU, torch, CUDA, cuDNN, transformers and Python versions, date.

Targets (each is a PASS or FAIL line): the test suite passes; every hook within 1e-3; capture
ours/HF <= 1.0 in time; decode ours/HF >= 1.0 in tokens/s; the 1024-token analysis of 1558M <= 0.5 s.
Memory is reported without a target (INFO). The numbers go to `--out` as JSON after every step, so
a run cut short still leaves what it measured. Where `transformers` is not installed the sizes are
skipped (SKIP lines), and the rest still runs. Exit status: 0 when every check passed, 1 when one
failed, 2 when none failed but some were skipped.

`--quick` uses tiny shapes under the same four names, T = 16 and 64, 8 new tokens, one round, and
only tests/test_config.py for the suite: it checks that this script works, not the targets.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpt2  # noqa: E402
from capture_speed import alternate  # noqa: E402
from decode_speed import hf_model_like  # noqa: E402
from explorer.capture import capture  # noqa: E402
from explorer.heads import head_scores, induction_scores, pattern_scores  # noqa: E402
from gpt2.device import place  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
HOOK_TOLERANCE = 1e-3
ANALYSIS_LIMIT_S = 0.5  # the 1024-token analysis of 1558M
QUICK_SHAPES = {  # tiny stand-ins for the four sizes; the first 2,048 of GPT-2's tokens, so they build in milliseconds
    "124M": gpt2.GPTConfig(n_vocab=2048, n_ctx=64, n_embd=32, n_head=2, n_layer=2),
    "355M": gpt2.GPTConfig(n_vocab=2048, n_ctx=64, n_embd=48, n_head=3, n_layer=2),
    "774M": gpt2.GPTConfig(n_vocab=2048, n_ctx=64, n_embd=64, n_head=4, n_layer=3),
    "1558M": gpt2.GPTConfig(n_vocab=2048, n_ctx=64, n_embd=80, n_head=4, n_layer=3),
}


class Report:
    """The checks' PASS/FAIL/SKIP/INFO lines as they happen, and every number, written to JSON after each step."""

    def __init__(self, out: Path):
        self.out = out
        self.data: dict = {"environment": {}, "test_suite": {}, "hooks": {}, "sizes": {}, "skipped": [],
                           "checks": [], "summary": {}}

    def check(self, name: str, passed: bool | None, value, target: str, detail: str = "") -> None:
        status = "SKIP" if passed is None else ("PASS" if passed else "FAIL")
        self.data["checks"].append({"name": name, "status": status, "value": value, "target": target,
                                    "detail": detail})
        shown = f"{value:.4g}" if isinstance(value, float) else value
        print(f"{status:5} {name}: {shown} (target {target}){'  ' + detail if detail else ''}", flush=True)

    def info(self, line: str) -> None:
        print(f"INFO  {line}", flush=True)

    def write(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.data, indent=1), encoding="utf-8")


def guarded(report: Report, name: str, fn, *args) -> None:
    """Run one step; an exception becomes a FAIL line with its message, and the next step still runs."""
    try:
        fn(*args)
    except Exception as err:  # a lent machine gives one try: record the failure, keep measuring
        traceback.print_exc()
        report.check(name, False, f"{type(err).__name__}: {err}"[:500], "runs without an error")
    free_memory()  # after every step, once its frames (and the models they held) are gone
    report.write()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device):
    """A timer for capture_speed.alternate: seconds of one call of fn, with the GPU's queue drained on both sides."""
    def timer() -> float:
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        return time.perf_counter() - start
    return timer


def transformers_version() -> str | None:
    try:
        import transformers
    except ImportError:
        return None
    return transformers.__version__


def environment(device: torch.device) -> dict:
    cuda = device.type == "cuda"
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "transformers": transformers_version(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


# ----------------------------------------------------------------------------- 1. the test suite

def pytest_counts(output: str) -> dict:
    """Counts from pytest's last summary line, e.g. '812 passed, 2 failed, 3 skipped in 201.5s'."""
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    summaries = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|errors?|skipped)", line)
                 and " in " in line]
    for number, word in re.findall(r"(\d+) (passed|failed|errors?|skipped)", summaries[-1] if summaries else ""):
        counts["errors" if word.startswith("error") else word] = int(number)
    return counts


def run_test_suite(report: Report, device: torch.device, paths: list[str], timeout_s: float) -> None:
    env = dict(os.environ, EXPLORER_DEVICE=device.type)
    env.pop("REQUIRE_BROWSER", None)  # it turns a missing chromium into an error; the browser tests are left out
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--ignore-glob=*browser*", *paths]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:  # Ctrl-C: pytest stops, then prints its summary of what ran
        os.killpg(process.pid, signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
        timed_out = True
    counts = pytest_counts(output)
    failures = [line for line in output.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    report.data["test_suite"] = {
        "command": " ".join(command), "env": {"EXPLORER_DEVICE": env["EXPLORER_DEVICE"]},
        "returncode": process.returncode, "timed_out": timed_out, "timeout_s": timeout_s,
        "seconds": round(time.perf_counter() - start, 1), **counts, "failures": failures[:50],
        "output_tail": output[-3000:],
    }
    passed = process.returncode == 0 and not timed_out
    detail = f"{counts['skipped']} skipped, {counts['errors']} errors, {report.data['test_suite']['seconds']} s"
    detail += f"; stopped after {timeout_s:.0f} s" if timed_out else ""
    report.check("test suite, EXPLORER_DEVICE=" + device.type, passed,
                 f"{counts['passed']} passed, {counts['failed']} failed", "all pass", detail)
    for line in failures[:10]:
        print(f"      {line}", flush=True)


# ----------------------------------------------------------------------------- 2. every hook point, device against CPU

def hook_tensors(model: gpt2.GPT2, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every HookPoint's output for one forward pass, as float32 on the CPU."""
    seen: dict[str, torch.Tensor] = {}
    handles = [module.register_forward_hook(
                   lambda _m, _i, out, name=name: seen.__setitem__(name, out.detach().float().cpu()))
               for name, module in model.named_modules() if isinstance(module, gpt2.HookPoint)]
    try:
        with torch.inference_mode():
            model(ids.to(model.wte.weight.device))
    finally:
        for handle in handles:
            handle.remove()
    return seen


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """max|a - b| / (max|a| + 1e-6) over the finite entries; inf if the two disagree on which are finite."""
    infinite = ~torch.isfinite(a)
    if not torch.equal(infinite, ~torch.isfinite(b)) or not torch.equal(a.masked_fill(~infinite, 0),
                                                                        b.masked_fill(~infinite, 0)):
        return float("inf")
    a, b = a.masked_fill(infinite, 0), b.masked_fill(infinite, 0)  # the masked scores: -inf on both sides
    return float((a - b).abs().max() / (a.abs().max() + 1e-6))


def check_hooks(report: Report, device: torch.device, config: gpt2.GPTConfig, seed: int) -> None:
    torch.manual_seed(seed)
    reference = gpt2.GPT2(config).eval()
    ids = torch.randint(0, config.n_vocab, (1, 64), generator=torch.Generator().manual_seed(seed))
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # full float32 on both sides
    try:
        expected = hook_tensors(reference, ids)
        models = {"as placed": place(copy.deepcopy(reference), device)}
        section = {"tf32": False, "tokens": ids.shape[1], "tolerance": HOOK_TOLERANCE, "hook_points": len(expected)}
        for label, model in models.items():
            got = hook_tensors(model, ids)
            per_hook = {name: relative_difference(expected[name], got[name]) for name in expected}
            worst = max(per_hook, key=per_hook.get)
            section[label] = {"worst_hook": worst, "worst_relative": per_hook[worst], "per_hook": per_hook}
            report.check(f"hooks {device.type} vs cpu, {label}, {len(per_hook)} hook points", per_hook[worst]
                         <= HOOK_TOLERANCE, per_hook[worst], f"<= {HOOK_TOLERANCE:g}", f"worst {worst}; TF32 off")
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    report.data["hooks"] = section


# ----------------------------------------------------------------------------- 3. the four sizes against HF

def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def build_pair(config: gpt2.GPTConfig, device: torch.device, seed: int):
    """Our model (made fast) and HF's with the same weights, both built on the device (no host copy of 1558M)."""
    with torch.device(device):
        torch.manual_seed(seed)
        model = gpt2.GPT2(config).eval()
        hf = hf_model_like(model, "eager")
    return place(model, device), hf.to(device)


def time_capture(model, hf, ids: list[int], enc, device: torch.device, rounds: int) -> dict:
    tensor = torch.tensor([ids], device=device)

    def hf_forward():
        with torch.inference_mode():
            hf(tensor, output_attentions=True, output_hidden_states=True, logits_to_keep=1)

    ours, theirs = alternate([timed(lambda: capture(model, ids, enc), device), timed(hf_forward, device)], rounds)
    o, h = statistics.median(ours), statistics.median(theirs)
    return {"ours_s": o, "hf_s": h, "ratio": o / h, "ours_all_s": ours, "hf_all_s": theirs}


def check_captures(report: Report, label: str, model, hf, prompts: dict, enc, args, device: torch.device) -> dict:
    """Capture against HF's forward for each prompt length, in the models' current dtype; a check line each."""
    timings = {}
    dtype = str(model.wte.weight.dtype).removeprefix("torch.")
    for T, ids in prompts.items():
        timing = timings[str(T)] = time_capture(model, hf, ids, enc, device, args.rounds)
        report.check(f"{label} T={T} {dtype}, ours/HF time", timing["ratio"] <= 1.0, timing["ratio"], "<= 1.0",
                     f"ours {timing['ours_s'] * 1e3:.1f} ms, HF {timing['hf_s'] * 1e3:.1f} ms")
    return timings


def time_analysis(model, ids: list[int], enc, device: torch.device, rounds: int) -> dict:
    """Capture plus head scores (no figures): median seconds, and the peak memory one analysis adds on a GPU."""
    induction = induction_scores(model)  # once per model, as the app's model store does at load time
    analyse = timed(lambda: head_scores(capture(model, ids, enc, score_patterns=pattern_scores), induction), device)
    analyse()  # warm-up
    result = {}
    if device.type == "cuda":
        synchronize(device)
        weights = torch.cuda.memory_allocated(device)  # both models' weights, nothing else alive
        torch.cuda.reset_peak_memory_stats(device)
        result["first_s"] = analyse()
        result["peak_bytes_above_weights"] = torch.cuda.max_memory_allocated(device) - weights
        result["weights_bytes"] = weights
    seconds = [analyse() for _ in range(rounds)]
    return {**result, "median_s": statistics.median(seconds), "all_s": seconds}


def time_decode(model, hf, ids: list[int], new_tokens: int, device: torch.device, rounds: int) -> dict:
    tensor = torch.tensor([ids], device=device)
    tokens = {}

    def ours():
        tokens["ours"] = list(gpt2.generate(model, ids, new_tokens, temperature=0, stop_at_eos=False))

    def theirs():
        with torch.inference_mode():
            out = hf.generate(tensor, attention_mask=torch.ones_like(tensor), max_new_tokens=new_tokens,
                              do_sample=False, use_cache=True, num_beams=1)
        tokens["hf"] = out[0, len(ids):].tolist()

    ours_s, hf_s = alternate([timed(ours, device), timed(theirs, device)], rounds)
    o, h = new_tokens / statistics.median(ours_s), new_tokens / statistics.median(hf_s)
    return {"new_tokens": new_tokens, "prompt_tokens": len(ids), "ours_tok_s": o, "hf_tok_s": h, "ratio": o / h,
            "hf_new_tokens": len(tokens["hf"]), "same_tokens": tokens["ours"] == tokens["hf"]}


def use_hf_attention(hf, name: str) -> str:
    """Switch HF's attention kernel where transformers allows it; returns the one in use."""
    try:
        hf.set_attn_implementation(name)
    except (AttributeError, ValueError, ImportError) as err:
        print(f"      note: HF keeps {hf.config._attn_implementation} attention ({err})", flush=True)
    return hf.config._attn_implementation


def check_size(report: Report, size: str, config: gpt2.GPTConfig, args, device: torch.device) -> None:
    enc = gpt2.get_tokenizer()
    model, hf = build_pair(config, device, args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    prompts = {T: torch.randint(0, config.n_vocab, (T,), generator=generator).tolist() for T in args.lengths}
    result: dict = {"config": asdict(config), "capture": {}}
    report.data["sizes"][size] = result
    result["capture"]["float32"] = check_captures(report, f"{size} capture", model, hf, prompts, enc, args, device)
    result["analysis"] = check_analysis(report, size, model, prompts[max(prompts)], enc, args, device)
    result["decode"] = check_decode(report, size, model, hf, prompts[min(prompts)], args, device)
    for name in args.dtype:
        if name != "float32":
            model.to(DTYPES[name]), hf.to(DTYPES[name])
            result["capture"][name] = check_captures(report, f"{size} capture", model, hf, prompts, enc, args, device)


def check_analysis(report: Report, size: str, model, ids: list[int], enc, args, device: torch.device) -> dict:
    """The analysis of the longest prompt: a check for 1558M's time, INFO lines for the rest and for memory."""
    analysis = {"tokens": len(ids), **time_analysis(model, ids, enc, device, args.rounds)}
    if "peak_bytes_above_weights" in analysis:
        report.info(f"{size} analysis T={len(ids)}: peak GPU memory above the weights "
                    f"{analysis['peak_bytes_above_weights'] / 2**30:.2f} GiB")
    if size == "1558M":
        report.check(f"1558M analysis T={len(ids)} (capture + head scores)",
                     analysis["median_s"] <= ANALYSIS_LIMIT_S, analysis["median_s"], f"<= {ANALYSIS_LIMIT_S} s")
    else:
        report.info(f"{size} analysis T={len(ids)}: {analysis['median_s'] * 1e3:.0f} ms")
    return analysis


def check_decode(report: Report, size: str, model, hf, ids: list[int], args, device: torch.device) -> dict:
    """Greedy decoding against HF's, with HF on its sdpa attention (its fastest) and back to eager after."""
    attention = use_hf_attention(hf, "sdpa")
    decode = {"hf_attention": attention, **time_decode(model, hf, ids, args.new_tokens, device, args.rounds)}
    use_hf_attention(hf, "eager")
    report.check(f"{size} decode {args.new_tokens} tokens, ours/HF tokens/s", decode["ratio"] >= 1.0, decode["ratio"],
                 ">= 1.0", f"ours {decode['ours_tok_s']:.1f}, HF {decode['hf_tok_s']:.1f} tok/s ({attention}); "
                 f"same tokens: {decode['same_tokens']}")
    return decode


def check_sizes(report: Report, shapes: dict[str, gpt2.GPTConfig], args, device: torch.device, deadline: float):
    """Smallest first; skip the rest when the last size's time, scaled by parameters, would overrun the deadline."""
    last = None  # (seconds, parameters) of the size before
    for size, config in shapes.items():
        params = parameter_count(config)
        needed = last[0] * params / last[1] if last else 0.0
        left = deadline - time.perf_counter()
        if needed > left:
            report.data["skipped"].append({"size": size, "reason": f"~{needed:.0f} s needed, {left:.0f} s left"})
            report.check(f"{size} (every measurement)", None, "skipped", "within the budget",
                         f"~{needed:.0f} s needed, {left:.0f} s left")
            continue
        start = time.perf_counter()
        guarded(report, f"{size} (every measurement)", check_size, report, size, config, args, device)
        last = (time.perf_counter() - start, params)
        report.data["sizes"].setdefault(size, {})["seconds"] = round(last[0], 1)
        report.write()


def parameter_count(config: gpt2.GPTConfig) -> int:
    with torch.device("meta"):
        return gpt2.GPT2(config).num_parameters()


# ----------------------------------------------------------------------------- main

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--dtype", nargs="+", default=["float32"], choices=list(DTYPES),
                        help="capture timings in these dtypes (float32 is always done)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_check.json")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, one round: a self-test of the script")
    parser.add_argument("--budget-s", type=float, default=480.0, help="the whole run's time budget in seconds")
    parser.add_argument("--tests-timeout-s", type=float, default=240.0)
    parser.add_argument("--tests", nargs="*", default=None, help="test paths (default: tests/, quick: test_config)")
    parser.add_argument("--sizes", nargs="+", default=list(gpt2.SIZES), choices=list(gpt2.SIZES))
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds after a warm-up (3; quick 1)")
    parser.add_argument("--new-tokens", type=int, default=None, help="decode length (64; quick 8)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.new_tokens = args.new_tokens or (8 if args.quick else 64)
    args.lengths = [16, 64] if args.quick else [64, 1024]
    if args.tests is None:
        args.tests = ["tests/test_config.py"] if args.quick else ["tests"]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    deadline = start + args.budget_s
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("FAIL  no CUDA device here (torch.cuda.is_available() is False); use --device cpu --quick to self-test")
        return 1
    report = Report(args.out)
    report.data["environment"] = environment(device)
    report.data["arguments"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    report.info(" ".join(f"{k}={v}" for k, v in report.data["environment"].items() if k in
                         ("gpu", "torch", "cuda", "python", "date")))
    report.write()

    guarded(report, "test suite", run_test_suite, report, device, args.tests,
            min(args.tests_timeout_s, args.budget_s / 2))
    hooks_config = QUICK_SHAPES["124M"] if args.quick else gpt2.GPTConfig()
    guarded(report, "hooks", check_hooks, report, device, hooks_config, args.seed)
    shapes = QUICK_SHAPES if args.quick else gpt2.PRESETS
    if transformers_version() is None:  # nothing to compare with; say so rather than stop
        for size in args.sizes:
            report.data["skipped"].append({"size": size, "reason": "transformers is not installed"})
            report.check(f"{size} (every measurement)", None, "skipped", "against HF", "transformers is not installed")
    else:
        check_sizes(report, {size: shapes[size] for size in args.sizes}, args, device, deadline)

    statuses = [check["status"] for check in report.data["checks"]]
    summary = {status.lower(): statuses.count(status) for status in ("PASS", "FAIL", "SKIP")}
    summary["seconds"] = round(time.perf_counter() - start, 1)
    report.data["summary"] = summary
    report.write()
    print(f"SUMMARY {summary['pass']} passed, {summary['fail']} failed, {summary['skip']} skipped "
          f"in {summary['seconds']} s; numbers in {args.out}", flush=True)
    return 1 if summary["fail"] else (2 if summary["skip"] else 0)


if __name__ == "__main__":
    sys.exit(main())
