"""Linear layers that can keep a second copy of their weight, laid out for the CPU's matrix multiply.

Almost all of GPT-2's arithmetic is y = x W^T + b: the four projections in every block
(c_attn, attn.c_proj, c_fc, mlp.c_proj) and the tied output head h W_te^T. A CPU
matrix-multiply kernel reads W in small tiles that fit its registers and caches, and by
default it rearranges W into that tile order on every call. oneDNN (the CPU library inside
PyTorch, also used by torch.compile) can do that rearrangement once, ahead of time:
"prepacking". On the 2-core x86 machines this project is measured on, a prepacked weight
makes the prompt's forward pass ~20 % faster and one decoded token's matrix-vector
products ~25 % faster (benchmarks/). The arithmetic is the same float32 multiply-adds,
only summed in a different order, so results agree with F.linear to ~1e-6.

The packed copy is a cache, never the source of truth:

    * `weight` stays an ordinary Parameter: checkpoints, state_dict, the explorer's
      analysis and training all read it as before;
    * the copy is used only in float32 on the CPU without autograd, and only while W is
      the very tensor that was packed and unchanged since (checked on every call through
      its storage address and PyTorch's version counter, which every in-place edit bumps);
    * copying or pickling a module drops it (oneDNN's opaque tensors cannot be copied).

It costs memory: one more float32 copy of every packed matrix (~0.5 GB for 124M, ~6 GB
for 1558M), so packing is a choice the caller makes (`GPT2.prepack()`), not a default.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn


def _key(weight: torch.Tensor) -> tuple[int, int]:
    return weight.data_ptr(), weight._version


class PackedWeight:
    """W reordered once for oneDNN, valid while W is the same, unchanged float32 CPU tensor."""

    __slots__ = ("tensor", "key")

    def __init__(self, tensor: torch.Tensor, key: tuple[int, int]):
        self.tensor, self.key = tensor, key

    @classmethod
    def of(cls, weight: torch.Tensor) -> "PackedWeight | None":
        """Pack `weight` (out, in); None where oneDNN cannot, so callers fall back to F.linear."""
        if not can_pack(weight):
            return None
        w = weight.detach()
        try:
            packed = torch.ops.mkldnn._reorder_linear_weight(w, None)
            probe = torch.linspace(-1.0, 1.0, w.shape[1]).unsqueeze(0)
            got = torch.ops.mkldnn._linear_pointwise(probe, packed, None, "none", [], "")
        except Exception:  # a build or platform without these oneDNN ops: packing is optional, never fatal
            return None
        if not torch.allclose(got, F.linear(probe, w), rtol=1e-4, atol=1e-4):
            return None  # never trust a kernel that disagrees with the plain product
        return cls(packed, _key(weight))

    def __deepcopy__(self, memo):
        return None  # a cache: the copy repacks if asked to

    def __reduce__(self):
        return type(None), ()  # pickles as None: the unpickled model simply runs unpacked


def can_pack(weight: torch.Tensor) -> bool:
    return (weight.dtype == torch.float32 and weight.device.type == "cpu" and weight.dim() == 2
            and torch.backends.mkldnn.is_available())


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
           packed: PackedWeight | None) -> torch.Tensor:
    """x W^T + b, through the packed copy of W when it is still valid for this call."""
    if (packed is not None and x.dtype == torch.float32 and packed.key == _key(weight)
            and not (torch.is_grad_enabled() and (weight.requires_grad or x.requires_grad))):
        return torch.ops.mkldnn._linear_pointwise(x, packed.tensor, bias, "none", [], "")
    return F.linear(x, weight, bias)


class Linear(nn.Linear):
    """nn.Linear (y = x W^T + b, W stored (out, in)) that uses a packed W once `pack()` made one."""

    packed: PackedWeight | None = None

    def pack(self) -> bool:
        """Make (or refresh) the packed copy of W. Returns whether one is in use."""
        self.packed = PackedWeight.of(self.weight)
        return self.packed is not None

    def unpack(self) -> None:
        self.packed = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias, self.packed)


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


def prepack_if_it_fits(model: nn.Module, share: float = 0.25) -> bool:
    """Prepack the model's weights (`GPT2.prepack`) if the extra copy is cheap enough.

    The packed copy makes every forward pass ~20 % faster but doubles the memory of the
    projection weights (0.5 GB for 124M, 6 GB for 1558M). It is made only while it takes
    at most `share` of the memory still available, so a large model on a small Space
    stays unpacked rather than pushing the machine into swapping.
    """
    extra = sum(p.numel() * p.element_size() for n, p in model.named_parameters()
                if n.endswith(".weight") and p.dim() == 2 and not n.startswith("wpe"))
    free = available_memory()
    return free is not None and extra <= share * free and model.prepack()
