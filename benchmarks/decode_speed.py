"""Decode speed of our GPT-2 against Hugging Face transformers, with the same weights.

    .venv/bin/python benchmarks/decode_speed.py                     # fp32 and bf16, 124M shapes
    .venv/bin/python benchmarks/decode_speed.py --dtypes float32 --rounds 3 --new-tokens 64

What is measured, for each implementation, dtype and round (batch 1, greedy, KV cache):

    TTFT          time to first token: from the call until the first new token exists,
                  i.e. the prefill of the prompt plus one argmax
    decode tok/s  (new_tokens - 1) / (time of the last token - time of the first): one-token
                  forward passes against the cache, prefill excluded
    step ms       the median gap between two consecutive tokens (1000 / step ms is a decode
                  speed that a few stalls caused by other processes cannot move)

"ours" is the model as the CLI and the app run it: `gpt2.fast.make_fast(model)`, which in
float32 also prepacks the weights for the CPU; "ours ref" is the reference model of
gpt2/model.py without make_fast (written to be read, timed for reference). Our tokens are timed as `gpt2.generate` yields them; Hugging Face's as `generate` hands
them to a streamer (its `put` is called once with the prompt, then once per new token).
Both sides do the same work per token: a forward pass of one position, an argmax, and
returning the id to Python.

The model is GPT-2 124M's shape with random weights (nothing can be downloaded here):
speed does not depend on the values. Hugging Face's `GPT2LMHeadModel` gets a copy of our
state dict, so in float32 both must pick exactly the same greedy tokens (checked and
printed). bfloat16 copies are made with `.to(torch.bfloat16)` on both sides.

Noise. On a shared machine other processes steal cores, and a 2-thread OpenMP kernel
whose second thread is descheduled waits a whole scheduler slice. So: implementations run
alternately, round after round, after one warm-up run each, so noise hits all of them
alike; the table gives the median over rounds and the best round (interference only ever
slows a run down, so the best is the closest to a quiet machine); and each run records the
share of the CPUs that other processes used meanwhile ("others" column, from /proc/stat).
Trust a comparison when that share is near 0. Even then absolute speeds drift by ~10 %
from one run to the next (probably memory bandwidth shared with the host's other machines), so
compare ratios within a run. Hugging Face runs with each attention implementation in
`--hf-attn` (eager and sdpa by default); ratios are against the fastest.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

import gpt2  # noqa: E402
from gpt2.fast import make_fast  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
CONV1D_WEIGHTS = (".c_attn.weight", ".c_proj.weight", ".c_fc.weight")  # Linear (out, in) -> Conv1D (in, out)


@dataclass
class Run:
    """One timed generation."""

    implementation: str
    dtype: str
    ttft_s: float  # time to first token: prefill + first argmax
    decode_tok_s: float  # tokens after the first, per second
    step_ms: float  # median gap between two tokens
    others_cpu: float | None  # share of all CPUs used by other processes during the run (0..1)
    tokens: list[int]


# ----------------------------------------------------------------------------- models

def our_model(seed: int) -> gpt2.GPT2:
    torch.manual_seed(seed)
    return gpt2.GPT2(gpt2.GPTConfig()).eval()


def hf_model_like(model: gpt2.GPT2, attn_implementation: str):
    """transformers' GPT2LMHeadModel holding a copy of `model`'s weights."""
    from transformers import GPT2Config, GPT2LMHeadModel

    c = model.config
    config = GPT2Config(vocab_size=c.n_vocab, n_positions=c.n_ctx, n_embd=c.n_embd, n_layer=c.n_layer,
                        n_head=c.n_head, layer_norm_epsilon=c.layer_norm_eps, activation_function="gelu_new",
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True,
                        attn_implementation=attn_implementation)
    hf = GPT2LMHeadModel(config).eval()
    if hf.config._attn_implementation != attn_implementation:
        raise RuntimeError(f"asked for {attn_implementation} attention, got {hf.config._attn_implementation}")
    state = {}
    for name, tensor in model.state_dict().items():
        state[f"transformer.{name}"] = tensor.T.contiguous() if name.endswith(CONV1D_WEIGHTS) else tensor
    missing, unexpected = hf.load_state_dict(state, strict=False)
    if set(missing) - {"lm_head.weight"} or unexpected:
        raise RuntimeError(f"weight layouts differ: missing {missing}, unexpected {unexpected}")
    if hf.lm_head.weight.data_ptr() != hf.transformer.wte.weight.data_ptr():
        raise RuntimeError("Hugging Face's lm_head is not tied to wte")
    hf.generation_config.eos_token_id = None  # random weights may pick <|endoftext|>; never stop early
    hf.generation_config.pad_token_id = 0
    return hf


# ----------------------------------------------------------------------------- timing

def time_ours(model: gpt2.GPT2, prompt: list[int], new_tokens: int) -> tuple[list[float], list[int]]:
    """Seconds from the call to each new token, and the tokens."""
    start = time.perf_counter()
    stamps, tokens = [], []
    for token in gpt2.generate(model, prompt, new_tokens, temperature=0, stop_at_eos=False):
        stamps.append(time.perf_counter() - start)
        tokens.append(token)
    return stamps, tokens


class _StampingStreamer:
    """A transformers streamer that notes when each new token arrives."""

    def __init__(self, start: float):
        self.start, self.stamps, self.tokens, self._seen_prompt = start, [], [], False

    def put(self, value: torch.Tensor) -> None:
        if not self._seen_prompt:  # the first call hands over the prompt
            self._seen_prompt = True
            return
        self.stamps.append(time.perf_counter() - self.start)
        self.tokens.extend(value.reshape(-1).tolist())

    def end(self) -> None:
        pass


def time_hf(hf, prompt: list[int], new_tokens: int) -> tuple[list[float], list[int]]:
    ids = torch.tensor([prompt], dtype=torch.long)
    start = time.perf_counter()
    streamer = _StampingStreamer(start)
    hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, min_new_tokens=0,
                do_sample=False, use_cache=True, num_beams=1, streamer=streamer)
    return streamer.stamps, streamer.tokens


def _cpu_seconds() -> tuple[float, float] | None:
    """CPU seconds used so far by every process on the machine, and by this one (Linux only)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(f) for f in stat.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    except OSError:
        return None
    busy = sum(fields) - fields[3] - fields[4]
    own = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), own.user + own.system


def measure(name: str, dtype: str, timer, model, prompt: list[int], new_tokens: int) -> Run:
    cpu_before, wall_before = _cpu_seconds(), time.perf_counter()
    stamps, tokens = timer(model, prompt, new_tokens)
    cpu_after, wall = _cpu_seconds(), time.perf_counter() - wall_before
    if len(tokens) != new_tokens:
        raise RuntimeError(f"{name} produced {len(tokens)} tokens, expected {new_tokens}")
    others = None
    if cpu_before and cpu_after:
        others_seconds = (cpu_after[0] - cpu_before[0]) - (cpu_after[1] - cpu_before[1])
        others = max(0.0, others_seconds / (wall * os.cpu_count()))
    decode = (new_tokens - 1) / (stamps[-1] - stamps[0]) if new_tokens > 1 else float("nan")
    steps = [later - earlier for earlier, later in zip(stamps, stamps[1:])] or [float("nan")]
    return Run(name, dtype, stamps[0], decode, 1000 * statistics.median(steps), others, tokens)


# ----------------------------------------------------------------------------- report

def agreement(a: list[int], b: list[int]) -> int:
    """Length of the common prefix: greedy decoding diverges for good after the first difference."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def summarise(runs: list[Run], names: list[str], dtypes: list[str]) -> list[dict]:
    """One row per (dtype, implementation): medians and bests over rounds, and our speed over this one's."""
    rows = []
    for dtype in dtypes:
        group = []
        for name in names:
            mine = [r for r in runs if r.dtype == dtype and r.implementation == name]
            if not mine:
                continue
            others = [r.others_cpu for r in mine if r.others_cpu is not None]
            group.append({"dtype": dtype, "implementation": name, "rounds": len(mine),
                          "ttft_ms": 1000 * statistics.median(r.ttft_s for r in mine),
                          "decode_tok_s": statistics.median(r.decode_tok_s for r in mine),
                          "best_tok_s": max(r.decode_tok_s for r in mine),
                          "step_ms": statistics.median(r.step_ms for r in mine),
                          "others_cpu": statistics.median(others) if others else None})
        ours = next(row for row in group if row["implementation"] == "ours")
        hf_rows = [row for row in group if row["implementation"].startswith("HF")]
        fastest_hf = max((row["decode_tok_s"] for row in hf_rows), default=None)
        for row in group:
            row["ratio_median"] = ours["decode_tok_s"] / row["decode_tok_s"]
            row["ratio_best"] = ours["best_tok_s"] / row["best_tok_s"]
            row["ratio_step"] = row["step_ms"] / ours["step_ms"]
            row["fastest_hf"] = row in hf_rows and row["decode_tok_s"] == fastest_hf
        rows += group
    return rows


def print_table(rows: list[dict]) -> None:
    print("ours/this: our speed divided by this row's; > 1 means ours is faster\n")
    header = (f"{'dtype':<9}{'implementation':<15}{'TTFT ms':>8}  {'decode tok/s':>12}{'ours/this':>10}"
              f"  {'best tok/s':>10}{'ours/this':>10}  {'step ms':>8}{'ours/this':>10}  {'others':>6}")
    print(header)
    print("-" * len(header))
    for row in rows:
        others = f"{100 * row['others_cpu']:.0f}%" if row["others_cpu"] is not None else "?"
        mark = "  <- fastest HF" if row["fastest_hf"] else ""
        print(f"{row['dtype']:<9}{row['implementation']:<15}{row['ttft_ms']:>8.1f}"
              f"  {row['decode_tok_s']:>12.2f}{row['ratio_median']:>9.2f}x"
              f"  {row['best_tok_s']:>10.2f}{row['ratio_best']:>9.2f}x"
              f"  {row['step_ms']:>8.2f}{row['ratio_step']:>9.2f}x  {others:>6}{mark}")


# ----------------------------------------------------------------------------- main

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each implementation per dtype")
    parser.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["float32", "bfloat16"])
    parser.add_argument("--hf-attn", nargs="*", choices=["eager", "sdpa"], default=["eager", "sdpa"],
                        help="Hugging Face attention implementations to time (give none to time only ours)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write every run and the summary to this file")
    return parser


def run_dtype(dtype_name: str, master: gpt2.GPT2, master_hf: dict, prompt: list[int], args) -> tuple[list[Run], bool]:
    """Warm up and check every implementation in one dtype, then time them in alternation.

    Returns the timed runs, and whether every implementation chose the same greedy tokens.
    """
    dtype = DTYPES[dtype_name]
    ours = copy.deepcopy(master).to(dtype)
    make_fast(ours)  # as the CLI and the app run it
    contenders = [("ours", time_ours, ours), ("ours ref", time_ours, copy.deepcopy(master).to(dtype))]
    contenders += [(f"HF {attn}", time_hf, copy.deepcopy(hf).to(dtype)) for attn, hf in master_hf.items()]
    reference, all_same = None, True  # our tokens, which the others are compared with
    for name, timer, model in contenders:
        warm = measure(name, dtype_name, timer, model, prompt, args.new_tokens)
        if reference is None:
            reference = warm.tokens
            continue
        same = agreement(reference, warm.tokens)
        all_same &= same == args.new_tokens
        verdict = "identical" if same == args.new_tokens else f"DIFFER from token {same}"
        note = "" if dtype == torch.float32 else " (informational: bf16 roundings may differ)"
        print(f"check {dtype_name}: greedy tokens of ours and {name}: {verdict} "
              f"({same}/{args.new_tokens} agree){note}")
    runs = []
    for round_ in range(args.rounds):
        shift = round_ % len(contenders)  # rotate who goes first
        for name, timer, model in contenders[shift:] + contenders[:shift]:
            run = measure(name, dtype_name, timer, model, prompt, args.new_tokens)
            runs.append(run)
            others = f"{100 * run.others_cpu:3.0f}%" if run.others_cpu is not None else "?"
            print(f"  {dtype_name} round {round_ + 1}: {name:<9} {run.decode_tok_s:6.2f} tok/s, step "
                  f"{run.step_ms:6.2f} ms, TTFT {1000 * run.ttft_s:6.1f} ms, others {others}", flush=True)
    return runs, all_same


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs "
          f"({platform.machine()}, {torch.backends.cpu.get_cpu_capability()})")
    print(f"GPT-2 124M shapes, random weights; batch 1, greedy, KV cache; prompt {args.prompt_tokens} tokens, "
          f"{args.new_tokens} new tokens; {args.rounds} rounds after a warm-up")
    print("decode tok/s = (new_tokens - 1) / (last token time - first token time), prefill excluded; "
          "TTFT = prefill + first token\n")

    master = our_model(args.seed)
    prompt = torch.randint(0, master.config.n_vocab, (args.prompt_tokens,),
                           generator=torch.Generator().manual_seed(args.seed)).tolist()
    master_hf = {attn: hf_model_like(master, attn) for attn in args.hf_attn}
    runs, float32_agrees = [], True
    for dtype in args.dtypes:
        dtype_runs, agrees = run_dtype(dtype, master, master_hf, prompt, args)
        runs += dtype_runs
        float32_agrees &= agrees or dtype != "float32"

    rows = summarise(runs, ["ours", "ours ref"] + [f"HF {attn}" for attn in args.hf_attn], args.dtypes)
    print()
    print_table(rows)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "summary": rows, "runs": [asdict(r) for r in runs]}, indent=1))
    if not float32_agrees:
        print("\nFAILED: in float32 the implementations must choose the same greedy tokens", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
