"""Where a model runs and in what precision: one rule for the CLI, the app and the trainer.

    device  "auto" (CUDA when a GPU is present, else the CPU), "cpu", "cuda" or "cuda:N"
    dtype   "float32" (the default, as OpenAI's weights are stored) or "bfloat16"

bfloat16 halves the weights' memory and doubles a GPU's matmul speed. The model keeps its
attention scores and softmax in float32 whatever the dtype (see model.py), so the patterns
a learner looks at are not rounded to bfloat16's 3 significant digits.

The explorer turns what a model computed into numpy arrays for its figures. `to_host`
moves a whole dict of tensors off the device at once, after the forward pass, so a GPU
run pays one round of copies per analysis rather than one per tensor read.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

import numpy as np
import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
DEVICE_ENV = "EXPLORER_DEVICE"
DTYPE_ENV = "EXPLORER_DTYPE"


def resolve_device(name: str | None = "auto") -> torch.device:
    """The torch device for a setting: "auto" (or None) means CUDA when present, else the CPU.

    Asking for CUDA on a machine without it is an error that says so, not a silent CPU run.
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        try:
            device = torch.device(name)
        except RuntimeError:
            raise ValueError(f"device {name!r} is not a CUDA device name like cuda or cuda:1") from None
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for, but torch finds no CUDA GPU here "
                             f"(torch {torch.__version__}); use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
        return device
    raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")


def resolve_dtype(name: str | None = "float32") -> torch.dtype:
    """torch.float32 or torch.bfloat16 from its name."""
    name = (name or "float32").strip().lower()
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[name]


def model_device(model: torch.nn.Module) -> torch.device:
    """The device a model's weights live on (a GPT2's token embedding, or its first parameter)."""
    return next(model.parameters()).device


def to_model(model: torch.nn.Module, array, dtype: torch.dtype | None = None) -> torch.Tensor:
    """An array (numpy or torch) as a tensor on the model's device, in `dtype` (default: the model's)."""
    weight = next(model.parameters())
    return torch.as_tensor(array).to(device=weight.device, dtype=dtype or weight.dtype)


def to_host(tensors: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Every tensor of a dict as a numpy array in host memory: one copy each, all after the work is done."""
    return {key: tensor.detach().cpu().numpy() for key, tensor in tensors.items()}


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """One tensor as a numpy array in host memory (bfloat16, which numpy lacks, as float32)."""
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.cpu().numpy()


def place(model: torch.nn.Module, device: torch.device | str = "cpu",
          dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """Put a model on its device in its dtype, in place, and return it.

    On the CPU it also becomes the fast GPT-2 (gpt2/fast.py: the same outputs, faster there);
    on a GPU it stays the reference model of model.py, whose plain matmuls the GPU runs well.
    """
    from .fast import make_fast

    device = torch.device(device)
    model.to(device=device, dtype=dtype)
    if device.type == "cpu":
        make_fast(model)
    return model


def device_memory(device: torch.device) -> int | None:
    """Bytes of memory on a CUDA device (None for the CPU: the machine's memory is counted elsewhere)."""
    if device.type != "cuda":
        return None
    return torch.cuda.get_device_properties(device).total_memory


def device_name(device: torch.device) -> str:
    """A device as a person would name it: "CPU" or the GPU's name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "CPU"


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """--device and --dtype, the same for every command that runs a model (see gpt2/device.py)."""
    parser.add_argument("--device", default=os.environ.get(DEVICE_ENV, "auto"),
                        help=f"{' | '.join(DEVICE_CHOICES)} | cuda:N: where the model runs (default: ${DEVICE_ENV}, "
                             "else auto: CUDA when present, else the CPU)")
    parser.add_argument("--dtype", default=os.environ.get(DTYPE_ENV, "float32"), choices=list(DTYPES),
                        help="precision of the weights (default float32; attention scores and softmax stay float32)")
