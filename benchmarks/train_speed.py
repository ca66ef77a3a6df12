"""Training speed of `gpt2.train`'s step against a plain nanoGPT-style PyTorch loop, in one run.

    .venv/bin/python benchmarks/train_speed.py                       # the CPU recipe's shape
    .venv/bin/python benchmarks/train_speed.py --n-layer 4 --rounds 5 --steps 20

Both sides train the same shape (default: 2 layers, 128 wide, 4 heads, vocabulary 4096,
context 128, batch 32) from the same random token stream with the same optimizer
(torch.optim.AdamW, weight decay on the blocks' matrices, betas 0.9/0.95), gradient
clipping at 1.0 and the same number of threads:

    ours     gpt2.train's step (`gpt2.train._step`): random windows from `Batches`, the readable
             `gpt2.GPT2` with its hook points, cross-entropy, backward, clip, AdamW
    plain    a compact nanoGPT-style model written below (nn.Linear, fused causal attention,
             tanh GELU, tied head) and the usual loop: torch.randint windows, forward, loss,
             backward, clip, step, zero_grad

Rounds alternate the two after one warm-up round each; the table gives the median tokens/s
over rounds and the ratio ours/plain (above 1 means ours is faster).

MFU (model FLOPs utilisation): training costs about 6 FLOPs per parameter per token for
the matrix products (forward 2, backward 4; the tied head counts as an n_embd x n_vocab
matrix, embedding lookups count nothing) plus 12 * n_layer * n_ctx * n_embd for attention
(nanoGPT's estimate, PaLM appendix B). MFU is that rate over this machine's float32 GEMM
peak, measured here with the same threads as the best of several square matmuls.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gpt2  # noqa: E402
from gpt2.train import Batches, Run, TrainSettings, _step, param_groups  # noqa: E402


class PlainBlock(nn.Module):
    def __init__(self, d: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class PlainGPT(nn.Module):
    def __init__(self, config: gpt2.GPTConfig):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(config.n_vocab, config.n_embd), nn.Embedding(config.n_ctx, config.n_embd)
        self.h = nn.ModuleList(PlainBlock(config.n_embd, config.n_head) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for block in self.h:
            x = block(x)
        return self.ln_f(x) @ self.wte.weight.T


def plain_loop(config, tokens, batch_size, lr, steps_per_round):
    torch.manual_seed(0)
    model = PlainGPT(config).train()
    decay = [p for n, p in model.named_parameters() if n.startswith("h.") and p.dim() == 2]
    other = [p for n, p in model.named_parameters() if not (n.startswith("h.") and p.dim() == 2)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                                  lr=lr, betas=(0.9, 0.95))
    offsets = torch.arange(config.n_ctx + 1)

    def run_round():
        for _ in range(steps_per_round):
            starts = torch.randint(len(tokens) - config.n_ctx - 1, (batch_size,))
            window = tokens[starts[:, None] + offsets]
            logits = model(window[:, :-1])
            loss = F.cross_entropy(logits.flatten(0, 1), window[:, 1:].flatten())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return run_round


def our_loop(config, tokens, batch_size, lr, steps_per_round):
    torch.manual_seed(0)
    settings = TrainSettings(batch_size=batch_size, lr=lr, warmup_steps=0, max_steps=10**9)
    model = gpt2.GPT2(config).train()
    optimizer = torch.optim.AdamW(param_groups(model, settings.weight_decay), lr=lr, betas=(0.9, 0.95))
    run = Run(model, optimizer, Batches(tokens, config.n_ctx, settings, config.n_vocab, config.n_vocab - 1),
              None, None, settings, Path("."), Path("."), {})

    def run_round():
        for _ in range(steps_per_round):
            _step(run)
    return run_round


def gemm_peak_flops(size: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def flops_per_token(config: gpt2.GPTConfig) -> float:
    d, L = config.n_embd, config.n_layer
    matrix_params = L * (3 * d * d + d * d + 2 * config.mlp_ratio * d * d) + config.n_vocab * d
    return 6 * matrix_params + 12 * L * config.n_ctx * d


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-vocab", type=int, default=4096)
    parser.add_argument("--n-ctx", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = gpt2.GPTConfig(n_vocab=args.n_vocab, n_ctx=args.n_ctx, n_embd=args.n_embd, n_head=args.n_head,
                            n_layer=args.n_layer)
    tokens = torch.randint(args.n_vocab, (1_000_000,), generator=torch.Generator().manual_seed(0))
    loops = {name: make(config, tokens, args.batch_size, 1e-3, args.steps)
             for name, make in (("ours", our_loop), ("plain", plain_loop))}
    tokens_per_round = args.steps * args.batch_size * args.n_ctx
    speeds = {name: [] for name in loops}
    for round_index in range(args.rounds + 1):
        for name, loop in loops.items():
            start = time.perf_counter()
            loop()
            if round_index:  # round 0 warms up
                speeds[name].append(tokens_per_round / (time.perf_counter() - start))
    peak = gemm_peak_flops()
    print(f"torch {torch.__version__}, {args.threads} threads; {args.n_layer} layers, {args.n_embd} wide, "
          f"{args.n_head} heads, vocab {args.n_vocab}, context {args.n_ctx}, batch {args.batch_size}")
    print(f"fp32 GEMM peak (1024^3 matmul, best of 10): {peak / 1e9:.1f} GFLOP/s")
    medians = {name: statistics.median(values) for name, values in speeds.items()}
    print(f"{'loop':<6} {'tokens/s':>10} {'best':>10} {'MFU':>6}")
    for name, median in medians.items():
        mfu = median * flops_per_token(config) / peak
        print(f"{name:<6} {median:>10,.0f} {max(speeds[name]):>10,.0f} {mfu:>6.1%}")
    print(f"ours/plain: {medians['ours'] / medians['plain']:.2f}x")


if __name__ == "__main__":
    main()
