"""The same GPT-2, faster on a CPU: `make_fast(model)`.

`gpt2/model.py` is the reference a learner reads. This module holds every speed-up the
app, the CLI and the benchmarks use, behind one call:

    model = make_fast(gpt2.load_pretrained("124M"))

`make_fast` works in place: it changes the class of the model's modules to the subclasses
below (the objects, their parameters, their names and any hooks already attached stay as
they are) and returns the same model. The fast model computes the same function (tests
compare every hook point's tensor and the logits with the reference's) and keeps every
hook point; what changes is how the numbers are computed:

    * attention runs PyTorch's fused `scaled_dot_product_attention` while no hook watches
      `hook_scores` or `hook_pattern`. When one does, the pattern is formed explicitly; if
      only the pattern is watched, a block of queries at a time, so the masked future of
      each block is never computed;
    * GELU is computed as x * sigmoid(2u), in place in one new tensor (the same function as
      the tanh formula, which as written makes a new temporary tensor at every step);
    * hook points, and dropout outside training, skip nn.Module.__call__ while no hook is
      attached to them (for a hook point, and for dropout in eval mode, the call would only
      return x);
    * in float32, every projection's weight and the head's W_te are "prepacked" for oneDNN,
      the CPU library inside PyTorch, if the extra copy fits in memory (see below).

Prepacking. Almost all of GPT-2's arithmetic is y = x W^T + b. A CPU matrix-multiply kernel
reads W in small tiles that fit its registers and caches, and by default it rearranges W
into that tile order on every call; oneDNN can do that once, ahead of time. The result is
the same float32 multiply-adds summed in a different order (agreeing with F.linear to ~1e-6).
The packed copy is a cache, never the source of truth: `weight` stays an ordinary
Parameter; the copy is used only in float32 on the CPU without autograd, and only while W is
the very tensor that was packed and unchanged since (checked on every call through its
storage address and PyTorch's version counter, which every in-place edit bumps); copying or
pickling the model drops it. It costs one more float32 copy of every matrix (~0.5 GB for
124M, ~6 GB for 1558M), so it is made only while it takes at most `memory_share` of the
memory still available. The oneDNN operators it uses are private to PyTorch: where they are
missing or give wrong numbers, `make_fast` logs one warning and the model runs unpacked.

How much each speed-up gains is measured in benchmarks/README.md, not claimed here.
"""

from __future__ import annotations

import functools
import logging
import math
import os

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as _module_globals

from .model import GPT2, MLP, CausalSelfAttention, HookPoint

logger = logging.getLogger(__name__)

# Queries per block in the blocked attention: small blocks pay a fixed cost per block, large
# ones compute more of the masked triangle. benchmarks/README.md has the measurements.
ATTENTION_BLOCK = 64


def make_fast(model: GPT2, memory_share: float = 0.25) -> GPT2:
    """Make `model` the fast GPT-2, in place, and return it.

    Same parameters, same hook points, same outputs. Weights are prepacked when the model
    is float32 on the CPU and the packed copy takes at most `memory_share` of the memory
    still available. Calling it again repacks (do so after replacing weights in place:
    until then a changed weight is simply multiplied unpacked). CPU only: on a GPU the
    reference model is used as it is, and this raises ValueError.
    """
    device = next(model.parameters()).device
    if device.type != "cpu":  # fused CPU kernels and oneDNN packing: a GPU runs the reference model
        raise ValueError(f"make_fast speeds up the CPU only; this model is on {device}. Use it as it is there "
                         "(gpt2.device.place does the right thing for each device).")
    fast_classes = _fast_classes()
    for module in model.modules():
        if type(module) in fast_classes:  # exact type: a module made fast before is left as it is
            module.__class__ = fast_classes[type(module)]
    _prepack_if_it_fits(model, memory_share)
    return model


def is_prepacked(model: nn.Module) -> bool:
    """Whether the model's head and every projection hold a packed copy of their weight."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return (getattr(model, "packed_head", None) is not None
            and all(isinstance(m, PackedLinear) and m.packed is not None for m in linears))


# ----------------------------------------------------------------------------- call shortcuts

_GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                 "_global_backward_pre_hooks")
_OWN_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def _call_shortcuts_available() -> bool:
    """Whether this torch keeps its hooks where `_has_hooks` looks (private, so checked)."""
    probe = nn.Module()
    return all(hasattr(_module_globals, name) for name in _GLOBAL_HOOKS) and all(
        hasattr(probe, name) for name in _OWN_HOOKS)


def _has_hooks(module: nn.Module) -> bool:
    """Whether calling `module` would run any hook: its own, or one registered for every module."""
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or module._backward_pre_hooks or _module_globals._global_forward_hooks
                or _module_globals._global_forward_pre_hooks or _module_globals._global_backward_hooks
                or _module_globals._global_backward_pre_hooks)


class FastHookPoint(HookPoint):
    """A hook point that returns x directly while no hook could run (hooks fire as usual otherwise)."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return super().__call__(x) if _has_hooks(self) else x


class FastDropout(nn.Dropout):
    """nn.Dropout that, in eval mode with no hook attached, returns x without nn.Module.__call__."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return super().__call__(x) if self.training or _has_hooks(self) else x


# ----------------------------------------------------------------------------- attention

@functools.lru_cache(maxsize=8)
def causal_mask(q_len: int, k_len: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """True where query i (the last q_len of k_len positions) may attend to key j, j <= i."""
    offset = k_len - q_len
    q_pos = torch.arange(q_len, device=device).unsqueeze(1) + offset
    k_pos = torch.arange(k_len, device=device).unsqueeze(0)
    return k_pos <= q_pos  # (T, T_k)


@functools.lru_cache(maxsize=8)
def causal_bias(q_len: int, k_len: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The mask M as numbers to add: 0 where query i may see key j, -inf where j is in its future."""
    zeros = torch.zeros(q_len, k_len, device=device)
    return zeros.masked_fill_(~causal_mask(q_len, k_len, device), float("-inf"))  # (T, T_k)


@functools.lru_cache(maxsize=4)
def _no_bias(device: torch.device | str) -> torch.Tensor:
    """baddbmm's `input` when beta=0: ignored, so the scores are only alpha * (q @ k^T)."""
    return torch.zeros((), device=device)


class FastCausalSelfAttention(CausalSelfAttention):
    """The reference attention, computed by the cheapest path that still feeds every watched hook."""

    def forward(self, x: torch.Tensor, kv_cache=None, layer: int | None = None) -> torch.Tensor:
        B, T, C = x.shape
        # c_attn's output is [q | k | v]: one view and one permute give the three
        # (B, n_head, T, d_head) views that the reference's split, views and transposes give.
        qkv = self.c_attn(x).view(B, T, 3, self.n_head, self.d_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        if kv_cache is not None:
            k, v = kv_cache.append(layer, k, v)  # (B, n_head, T_k, d_head)
        if _has_hooks(self.hook_scores) or _has_hooks(self.hook_pattern):
            z = self._explicit_attention(q, k, v)
        else:
            z = self._fused_attention(q, k, v)  # (B, n_head, T, d_head)
        z = self.hook_z(z.transpose(1, 2))  # (B, T, n_head, d_head)
        return self.c_proj(z.reshape(B, T, C))

    def _fused_attention(self, q, k, v):
        T, T_k = q.shape[2], k.shape[2]
        dropout = self.attn_dropout.p if self.training else 0.0
        if T == 1:  # one new token sees every cached key: no mask needed
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        if T == T_k:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        mask = causal_mask(T, T_k, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)

    def _explicit_attention(self, q, k, v):
        T, T_k = q.shape[2], k.shape[2]
        if T >= 2 * ATTENTION_BLOCK and not self.training and not _has_hooks(self.hook_scores):
            return self._blocked_attention(q, k, v)
        scale = 1.0 / math.sqrt(self.d_head)
        scores = (q.float() @ k.float().transpose(-2, -1)).mul_(scale)
        scores = self.hook_scores(scores.add_(causal_bias(T, T_k, q.device)))  # (B, n_head, T, T_k)
        pattern = self.hook_pattern(torch.softmax(scores, dim=-1))
        return self.attn_dropout(pattern).to(v.dtype) @ v  # (B, n_head, T, d_head)

    def _blocked_attention(self, q, k, v):
        """The same pattern and output, computed a block of queries at a time.

        Query i sees keys 0..i only, so the block of queries [start, end) needs keys
        [0, end) and the rest of its rows are exactly 0: skipping them skips most of the
        masked triangle. Inside a block only its last square of keys, [start, end), can lie
        in some query's future, so the -inf mask is added to that square alone. The full
        (B, n_head, T, T_k) pattern is still formed for hook_pattern; if a hook hands back a
        different tensor, the output is computed from all of that tensor.
        """
        B, H, T, d_head = q.shape
        T_k = k.shape[2]
        offset = T_k - T  # queries are the last T positions when a cache holds earlier keys
        scale = 1.0 / math.sqrt(d_head)
        qf, kf = q.float(), k.float()  # no copies for a float32 model
        pattern = qf.new_empty(B, H, T, T_k)  # each block writes its rows, zeros included
        z = v.new_empty(B, T, H, d_head).transpose(1, 2)  # (B, H, T, d_head), stored as hook_z wants it
        for b in range(B):
            # q, k and v stay strided views into c_attn's output: the matrix products read them
            # in place, and the 1/sqrt(d_head) scale rides along as the product's alpha.
            q_b, k_t, v_b = qf[b], kf[b].transpose(-2, -1), v[b]  # (H, T, d), (H, d, T_k), (H, T_k, d)
            for start in range(0, T, ATTENTION_BLOCK):
                end = min(start + ATTENTION_BLOCK, T)
                size, seen = end - start, offset + end  # keys 0..seen-1 are visible to some query here
                scores = torch.baddbmm(_no_bias(q.device), q_b[:, start:end], k_t[:, :, :seen],
                                       beta=0, alpha=scale)
                scores[:, :, seen - size:].add_(causal_bias(size, size, q.device))  # (H, size, seen)
                probs = torch.softmax(scores, dim=-1)
                pattern[b, :, start:end, :seen] = probs
                pattern[b, :, start:end, seen:] = 0.0  # keys no query of this block may see
                z[b, :, start:end] = torch.bmm(probs.to(v.dtype), v_b[:, :seen])  # while probs are in cache
        watched = self.hook_pattern(pattern)
        if watched is not pattern:  # a hook replaced the pattern: the output follows the new one
            return watched.to(v.dtype) @ v
        return z  # (B, n_head, T, d_head)


# ----------------------------------------------------------------------------- MLP

_GELU_C = 2.0 * math.sqrt(2.0 / math.pi)


def gelu_in_place(x: torch.Tensor) -> torch.Tensor:
    """model.gelu(x), computed as x * sigmoid(2u) with u = sqrt(2/pi) (x + 0.044715 x^3).

    The same function: 0.5 (1 + tanh(u)) = sigmoid(2u). x is left unchanged; the result is
    built in one new tensor, in place. In-place steps would break autograd, so while
    gradients are recorded this uses PyTorch's own tanh GELU.
    """
    if torch.is_grad_enabled() and x.requires_grad:
        return F.gelu(x, approximate="tanh")
    u = x * x
    torch.addcmul(x, u, x, value=0.044715, out=u)  # x + 0.044715 x^3
    return torch.sigmoid_(u.mul_(_GELU_C)).mul_(x)


class FastMLP(MLP):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.hook_pre(self.c_fc(x))
        post = self.hook_post(gelu_in_place(pre))
        return self.c_proj(post)


# ----------------------------------------------------------------------------- prepacking

class PackingUnavailable(RuntimeError):
    """This torch's oneDNN operators are missing or disagree with F.linear."""


def _version_key(weight: torch.Tensor) -> tuple[int, int]:
    return weight.data_ptr(), weight._version


class PackedWeight:
    """W reordered once for oneDNN, valid while W is the same, unchanged float32 CPU tensor."""

    __slots__ = ("tensor", "key")

    def __init__(self, tensor: torch.Tensor, key: tuple[int, int]):
        self.tensor, self.key = tensor, key

    @classmethod
    def of(cls, weight: torch.Tensor) -> "PackedWeight | None":
        """Pack `weight` (out, in); None when it is not a float32 CPU matrix.

        Raises PackingUnavailable when oneDNN's operators fail or give different numbers.
        """
        if not can_pack(weight):
            return None
        w = weight.detach()
        try:
            packed = torch.ops.mkldnn._reorder_linear_weight(w, None)
            probe = torch.linspace(-1.0, 1.0, w.shape[1]).unsqueeze(0)
            got = torch.ops.mkldnn._linear_pointwise(probe, packed, None, "none", [], "")
            agrees = torch.allclose(got, F.linear(probe, w), rtol=1e-4, atol=1e-4)
        except Exception as err:  # a build or platform without these private ops
            raise PackingUnavailable(f"{type(err).__name__}: {err}") from err
        if not agrees:
            raise PackingUnavailable("the packed product disagrees with F.linear")
        return cls(packed, _version_key(weight))

    def __deepcopy__(self, memo):
        return None  # a cache: the copy runs unpacked until make_fast is called on it

    def __reduce__(self):
        return type(None), ()  # pickles as None: the unpickled model runs unpacked


def can_pack(weight: torch.Tensor) -> bool:
    return weight.dtype == torch.float32 and weight.device.type == "cpu" and weight.dim() == 2


def packed_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  packed: PackedWeight | None) -> torch.Tensor:
    """x W^T + b, through the packed copy of W when it is still valid for this call."""
    if (packed is not None and x.dtype == torch.float32 and packed.key == _version_key(weight)
            and not (torch.is_grad_enabled() and (weight.requires_grad or x.requires_grad))):
        return torch.ops.mkldnn._linear_pointwise(x, packed.tensor, bias, "none", [], "")
    return F.linear(x, weight, bias)


class PackedLinear(nn.Linear):
    """nn.Linear that multiplies by a packed copy of W while it has a valid one."""

    packed: PackedWeight | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return packed_linear(x, self.weight, self.bias, self.packed)


class FastGPT2(GPT2):
    """GPT2 whose head multiplies by a packed copy of W_te while it has a valid one."""

    packed_head: PackedWeight | None = None

    def unembed(self, x: torch.Tensor) -> torch.Tensor:
        return packed_linear(x, self.wte.weight, None, self.packed_head)


def available_memory() -> int | None:
    """Bytes of memory the system could still hand out, or None where that cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _unpack(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, PackedLinear):
            module.packed = None
    if isinstance(model, FastGPT2):
        model.packed_head = None


def _prepack_if_it_fits(model: nn.Module, share: float) -> bool:
    """Pack every projection's weight and the head's, if the copies take at most `share` of free memory."""
    _unpack(model)  # any earlier copies are stale or about to be replaced
    linears = [m for m in model.modules() if isinstance(m, PackedLinear)]
    weights = [m.weight for m in linears] + [model.wte.weight]
    if not all(can_pack(w) for w in weights):
        return False  # bfloat16, or not on the CPU: nothing to pack
    extra = sum(w.numel() * w.element_size() for w in weights)
    free = available_memory()
    if free is None or extra > share * free:
        logger.info("not prepacking: %.0f MB of packed weights would exceed %.0f%% of the free memory",
                    extra / 1e6, 100 * share)
        return False
    try:
        packed = [PackedWeight.of(w) for w in weights]
    except PackingUnavailable as err:
        logger.warning("this PyTorch cannot prepack weights with oneDNN (%s); the model runs unpacked", err)
        return False
    for module, weight in zip(linears, packed):
        module.packed = weight
    model.packed_head = packed[-1]
    return True


def _fast_classes() -> dict[type, type]:
    """Each reference class and the fast subclass that replaces it."""
    classes = {nn.Linear: PackedLinear, CausalSelfAttention: FastCausalSelfAttention, MLP: FastMLP,
               GPT2: FastGPT2}
    if _call_shortcuts_available():  # otherwise hook points and dropout keep the ordinary call
        classes |= {HookPoint: FastHookPoint, nn.Dropout: FastDropout}
    return classes
