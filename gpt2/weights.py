"""Reading and writing a GPT2's weights: the safetensors format, name and shape checks, an empty model.

Every checkpoint layout (checkpoint.py: OpenAI's and the project's own; hf_format.py: Hugging
Face's) reads through these. A safetensors file is 8 bytes (the little-endian length of a JSON
header), the header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then the raw
little-endian tensor bytes; reading its header alone says what the file holds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import BinaryIO

import torch
from safetensors.torch import save_file

from .config import GPTConfig
from .durable import replace_durably
from .errors import CheckpointError
from .model import GPT2

SAFETENSORS_NAME = "model.safetensors"
HPARAMS_NAME = "hparams.json"


def check_fits(model: GPT2, shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Raise CheckpointError naming every missing, extra and mis-shaped tensor at once."""
    params = dict(model.named_parameters())
    missing = sorted(set(params) - set(shapes))
    extra = sorted(set(shapes) - set(params))
    misshaped = [f"{name}: checkpoint {tuple(shapes[name])}, model {tuple(params[name].shape)}"
                 for name in sorted(set(params) & set(shapes)) if tuple(shapes[name]) != tuple(params[name].shape)]
    problems = ([f"missing from checkpoint: {name}" for name in missing]
                + [f"not in the model: {name}" for name in extra]
                + [f"wrong shape: {line}" for line in misshaped])
    if problems:
        raise CheckpointError("the checkpoint does not fit the model:\n  " + "\n  ".join(problems))


def assign_weights(model: GPT2, weights: Mapping[str, torch.Tensor]) -> None:
    """Copy `weights` into the model's own parameters after checking every name and shape."""
    check_fits(model, {name: tuple(w.shape) for name, w in weights.items()})
    _copy_each(model, lambda name: weights[name])


def _copy_each(model: GPT2, read: Callable[[str], torch.Tensor]) -> None:
    """Fill each parameter from `read(name)`, one tensor at a time (at most one extra tensor alive)."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(read(name))  # in place: wte stays the one tensor the head reads


def empty_model(config: GPTConfig) -> GPT2:
    """A GPT2 whose parameters are allocated but not initialised: loading overwrites every one."""
    with torch.device("meta"):
        model = GPT2(config)
    if any(True for _ in model.buffers()):  # a buffer is computed in __init__, not loaded: build it for real
        return GPT2(config)
    return model.to_empty(device="cpu")


# safetensors: 8 bytes (little-endian header length), a JSON header {name: {dtype, shape,
# data_offsets}, "__metadata__": {...}}, then the raw little-endian tensor bytes.
_SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


def read_safetensors_header(path: Path) -> tuple[dict, dict[str, str], int]:
    """({tensor name: entry}, metadata, offset of the data) of a safetensors file, reading only its header."""
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        if not 2 <= length <= 100_000_000:
            raise CheckpointError(f"{path} is not a safetensors file")
        header = json.loads(f.read(length))
    metadata = header.pop("__metadata__", None) or {}
    return header, metadata, 8 + length


def read_safetensors_into(model: GPT2, path: Path) -> dict[str, str]:
    """Check the file fits the model, then read each tensor straight into its parameter; returns the metadata."""
    header, metadata, data_start = read_safetensors_header(path)
    read_entries_into(model, path, header, data_start)
    return metadata


def read_entries_into(model: GPT2, path: Path, entries: Mapping[str, dict], data_start: int,
                      transposed: Collection[str] = ()) -> None:
    """Read the safetensors `entries` ({parameter name: header entry}) of `path` into the model's parameters.

    Names in `transposed` are stored (in, out), as a "conv1d" keeps them, and are
    checked and copied as their transpose. Everything is checked before anything is read.
    Unlike `safe_open(...).get_tensor`, which makes a second copy (and maps the whole
    file into memory), float32 data in our layout lands directly in the parameter's storage.
    """
    unknown = sorted({entry["dtype"] for entry in entries.values()} - set(_SAFETENSORS_DTYPES))
    if unknown:
        raise CheckpointError(f"{path} holds tensors of type {', '.join(unknown)}; only float tensors load")
    check_fits(model, {name: tuple(reversed(entry["shape"])) if name in transposed else tuple(entry["shape"])
                       for name, entry in entries.items()})
    with open(path, "rb") as f, torch.no_grad():
        for name, param in model.named_parameters():
            entry = entries[name]
            begin, end = entry["data_offsets"]
            f.seek(data_start + begin)
            dtype = _SAFETENSORS_DTYPES[entry["dtype"]]
            if name not in transposed and dtype == param.dtype and param.is_contiguous() and param.device.type == "cpu":
                target = param.data.view(-1).view(torch.uint8).numpy()
                if f.readinto(memoryview(target)) != end - begin:
                    raise CheckpointError(f"{path} is truncated inside {name}")
            else:
                stored = read_tensor(f, path, entry, name)
                param.copy_(stored.T if name in transposed else stored)  # casts F16/BF16 to float32


def read_tensor(f: BinaryIO, path: Path, entry: dict, name: str) -> torch.Tensor:
    """The tensor an entry describes, read from the open file `f` at its current position, as stored."""
    if entry["dtype"] not in _SAFETENSORS_DTYPES:
        raise CheckpointError(f"{path} holds {name} as {entry['dtype']}; only float tensors load")
    begin, end = entry["data_offsets"]
    raw = bytearray(f.read(end - begin))
    if len(raw) != end - begin:
        raise CheckpointError(f"{path} is truncated inside {name}")
    return torch.frombuffer(raw, dtype=_SAFETENSORS_DTYPES[entry["dtype"]]).view(entry["shape"])


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read the umask is to set it; put it straight back
    os.umask(mask)
    return mask


def write_weights(model: GPT2, path: Path, metadata: dict[str, str], dtype: torch.dtype = torch.float32) -> None:
    """The model's parameters as safetensors at `path` (float32 unless `dtype` says otherwise),
    written to a temp file then renamed over `path` (durable.py): a kill leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".partial")
    try:
        tensors = {name: p.detach().to("cpu", dtype).contiguous() for name, p in model.named_parameters()}
        save_file(tensors, str(tmp), metadata)
        os.chmod(tmp, 0o666 & ~_umask())  # safetensors creates the file private; make it like any other
        replace_durably(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
