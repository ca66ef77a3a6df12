"""Experiments: turn attention heads or MLPs off and see what the model predicts without them.

An ablation replaces what a component writes with something uninformative and runs the
prompt again. Two components can be removed:

    head h of layer l   its output z_h = softmax(q_h k_h^T / sqrt(d_head) + M) v_h, the slice
                        h.{l}.attn.hook_z[:, :, h, :], before c_proj mixes the heads into the
                        stream: the head then adds nothing to out = concat(z_1..z_H) W_O + b_O
                        (c_proj's bias b_O stays: it belongs to no head)
    the MLP of layer l  h.{l}.hook_mlp_out, what the MLP adds to the stream, bias included

and replaced in one of two ways (`mode`):

    "zero"   by 0
    "mean"   by its mean over the prompt's positions, taken causally: position i gets the
             mean over positions 0..i, so the last position gets the mean over the whole
             prompt. A mean over *all* positions would hand every earlier position a little
             of the tokens after it, and its surprise at the next token would drop for the
             wrong reason (it would have peeked). A mean keeps the component's average
             contribution (its bias, its typical direction) and removes only what it says
             about this particular position.

Everything happens through forward hooks that return a replacement tensor, in the same
forward pass, so an ablated layer changes what every later layer sees, and a mean in a
later layer is the mean of that already changed pass. No weight is touched; the hooks are
removed when the pass ends, also when it fails, and they act only in the thread that added
them (a generation running at the same time in another thread is not affected).
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from gpt2 import GPT2, GPTConfig
from gpt2.generate import check_prompt

from . import validation
from .capture import hooks_attached, hooks_lock, token_surprise

MODES = ("zero", "mean")


@dataclass(frozen=True)
class Ablation:
    """What is turned off: heads as (layer, head) pairs and MLPs by layer, sorted, no repeats."""

    heads: tuple[tuple[int, int], ...] = ()
    mlps: tuple[int, ...] = ()
    mode: str = "zero"

    @property
    def is_empty(self) -> bool:
        return not self.heads and not self.mlps

    def describe(self) -> str:
        """e.g. "heads 0.1, 1.3 (layer.head) and the MLP of layer 2 set to zero"."""
        parts = []
        if self.heads:
            names = ", ".join(f"{layer}.{head}" for layer, head in self.heads)
            parts.append(f"head{'s' if len(self.heads) > 1 else ''} {names} (layer.head)")
        if self.mlps:
            layers = ", ".join(str(layer) for layer in self.mlps)
            parts.append(f"the MLP{'s' if len(self.mlps) > 1 else ''} of layer{'s' if len(self.mlps) > 1 else ''} {layers}")
        if not parts:
            return "nothing turned off"
        how = "set to zero" if self.mode == "zero" else "replaced by their mean over the positions up to each token"
        return f"{' and '.join(parts)} {how}"


def _whole_number(value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{field} must be whole numbers, got {value!r}")
    return int(value)


def _in_range(value, field: str, count: int, what: str) -> int:
    number = _whole_number(value, field)
    if not 0 <= number < count:
        raise ValueError(f"{field}: {what} {number} does not exist; this model has {what}s 0–{count - 1}")
    return number


def make_ablation(config: GPTConfig, heads: Iterable = (), mlps: Iterable = (), mode: str = "zero") -> Ablation:
    """Check what a caller asks to turn off against the model's shape; a ValueError names the field."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    heads, mlps = list(heads or ()), list(mlps or ())
    n_heads = config.n_layer * config.n_head
    if len(heads) > n_heads:
        raise ValueError(f"heads: at most {n_heads} (layer, head) pairs, this model's every head; got {len(heads)}")
    if len(mlps) > config.n_layer:
        raise ValueError(f"mlps: at most {config.n_layer} layers; got {len(mlps)}")
    pairs = set()
    for pair in heads:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"heads must be (layer, head) pairs, got {pair!r}")
        pairs.add((_in_range(pair[0], "heads", config.n_layer, "layer"),
                   _in_range(pair[1], "heads", config.n_head, "head")))
    layers = {_in_range(layer, "mlps", config.n_layer, "layer") for layer in mlps}
    return Ablation(tuple(sorted(pairs)), tuple(sorted(layers)), mode)


def causal_mean(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Position i gets the mean of positions 0..i along `dim` (the last one: the mean of all)."""
    count = torch.arange(1, x.shape[dim] + 1, dtype=x.dtype, device=x.device)
    shape = [1] * x.ndim
    shape[dim] = -1
    return x.cumsum(dim) / count.view(shape)


def _replace(x: torch.Tensor, mode: str) -> torch.Tensor:
    return torch.zeros_like(x) if mode == "zero" else causal_mean(x, dim=1)


def _replacement_hooks(model: GPT2, ablation: Ablation) -> list:
    """(hook point, forward hook) pairs; each hook returns the tensor the model continues with."""
    thread = threading.get_ident()

    def heads_hook(heads: list[int]):
        def hook(module, inputs, z):  # z: (B, T, n_head, d_head)
            if threading.get_ident() != thread:
                return None  # another thread's forward pass: leave it alone
            z = z.clone()
            z[:, :, heads] = _replace(z[:, :, heads], ablation.mode)
            return z
        return hook

    def mlp_hook(module, inputs, out):  # out: (B, T, d_model)
        return _replace(out, ablation.mode) if threading.get_ident() == thread else None

    hooks = []
    for layer in sorted({layer for layer, _ in ablation.heads}):
        heads = [head for l, head in ablation.heads if l == layer]
        hooks.append((model.h[layer].attn.hook_z, heads_hook(heads)))
    hooks += [(model.h[layer].hook_mlp_out, mlp_hook) for layer in ablation.mlps]
    return hooks


@dataclass
class AblationResult:
    """The model's answer with the ablation in place."""

    ablation: Ablation
    probs: np.ndarray  # [n_vocab] next-token probabilities at the last position, float64
    token_surprise: np.ndarray  # [pos - 1] -ln p(t_{i+1} | t_<=i) in nats, as Trace.token_surprise


@torch.inference_mode()
def run_ablation(model: GPT2, ids, heads: Iterable = (), mlps: Iterable = (), mode: str = "zero") -> AblationResult:
    """One forward pass with the given heads and MLPs turned off: next-token probabilities and surprise."""
    ablation = make_ablation(model.config, heads, mlps, mode)
    ids = check_prompt(model, ids)
    thread, final = threading.get_ident(), []

    def keep_final_stream(module, inputs, x):  # x_L at every position, after all replacements
        if threading.get_ident() == thread:
            final.append(x[0].detach().clone())

    hooks = _replacement_hooks(model, ablation) + [(model.h[-1].hook_resid_post, keep_final_stream)]
    device = model.wte.weight.device
    with hooks_lock, hooks_attached(hooks):
        logits = model(torch.tensor([ids], device=device), last_only=True)[0, -1]
    z = logits.double()
    probs = torch.softmax(z, dim=-1).cpu().numpy()
    return AblationResult(ablation, probs, token_surprise(model, final[0], ids))  # x_L stays on the device


def ablate(model: GPT2, ids, heads: Iterable = (), mlps: Iterable = (), mode: str = "zero") -> np.ndarray:
    """Next-token probabilities [n_vocab] with those heads' and MLPs' outputs removed (see the module docstring)."""
    return run_ablation(model, ids, heads, mlps, mode).probs


# ---- which heads: what the app's "turn off" buttons mean ----

SCOPES = ("this head", "this layer's heads", "all heads of this kind")


def heads_in_scope(labels: list[list[str]], scope: str, layer: int, head: int) -> list[tuple[int, int]]:
    """The (layer, head) pairs a scope names, around the selected head.

    `labels[layer][head]` is each head's label (HeadScores.labels): "all heads of this kind"
    is every head that carries the selected head's label, in every layer.
    """
    if scope not in SCOPES:
        raise ValueError(f"Turn off must be one of: {', '.join(SCOPES)}; got {scope!r}")
    layer, head = validation.layer_and_head(layer, head, len(labels), len(labels[0]))
    if scope == "this head":
        return [(layer, head)]
    if scope == "this layer's heads":
        return [(layer, h) for h in range(len(labels[layer]))]
    kind = labels[layer][head]
    return [(l, h) for l, row in enumerate(labels) for h, label in enumerate(row) if label == kind]


# ---- what changed ----

@dataclass
class MovedToken:
    token_id: int
    before: float
    after: float

    @property
    def change(self) -> float:
        return self.after - self.before


def moved_most(before: np.ndarray, after: np.ndarray, n: int = 10) -> list[MovedToken]:
    """The n tokens whose probability changed most (in absolute terms), biggest change first.

    Every token of the vocabulary is considered, not only the top ones before: a token
    can rise from far down the list. Equal changes are listed in id order.
    """
    before, after = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    if before.shape != after.shape or before.ndim != 1:
        raise ValueError(f"before and after must be two distributions of the same length, got {before.shape} and {after.shape}")
    if not 1 <= n <= len(before):
        raise ValueError(f"n must be 1 to {len(before)}, got {n}")
    change = np.abs(after - before)
    threshold = np.partition(change, len(change) - n)[len(change) - n]  # the n-th largest change
    candidates = np.flatnonzero(change >= threshold)  # ascending ids, ties at the threshold included
    order = candidates[np.argsort(-change[candidates], kind="stable")][:n]
    return [MovedToken(int(i), float(before[i]), float(after[i])) for i in order]


@dataclass
class SurpriseChange:
    """The loss on the prompt before and after an intervention."""

    before: np.ndarray  # [pos - 1] nats
    after: np.ndarray  # [pos - 1] nats

    @property
    def mean_before(self) -> float:
        return float(np.mean(self.before)) if len(self.before) else float("nan")

    @property
    def mean_after(self) -> float:
        return float(np.mean(self.after)) if len(self.after) else float("nan")

    @property
    def perplexity_before(self) -> float:
        return float(np.exp(self.mean_before))

    @property
    def perplexity_after(self) -> float:
        return float(np.exp(self.mean_after))

    def most_hurt(self, n: int = 5) -> np.ndarray:
        """Positions i (predicting token i + 1) whose surprise rose most, largest rise first."""
        rise = np.asarray(self.after, dtype=np.float64) - self.before
        return np.argsort(-rise, kind="stable")[: max(0, n)]


def surprise_change(before: np.ndarray, after: np.ndarray) -> SurpriseChange:
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape:
        raise ValueError(f"surprise before and after must cover the same tokens, got {before.shape} and {after.shape}")
    return SurpriseChange(before, after)
