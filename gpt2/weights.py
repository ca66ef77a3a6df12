"""Reading and writing a GPT2's weights: the safetensors format, name and shape checks, an empty model.

Every checkpoint layout (checkpoint.py: OpenAI's and the project's own; hf_format.py: Hugging
Face's) reads through these. A safetensors file is 8 bytes (the little-endian length of a JSON
header), the header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then the raw
little-endian tensor bytes; reading its header alone says what the file holds.
"""

from __future__ import annotations

import json
import math
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
PROJECT_FORMAT = "gpt2-explorer/1"  # safetensors metadata that marks the project's own folder (checkpoint.py)


def check_fits(model: GPT2, shapes: Mapping[str, tuple[int, ...]], source: str = "the checkpoint",
               folder: Path | None = None) -> None:
    """Raise CheckpointError naming every missing, extra and mis-shaped tensor of `source` at once."""
    params = dict(model.named_parameters())
    missing = sorted(set(params) - set(shapes))
    extra = sorted(set(shapes) - set(params))
    misshaped = [f"{name}: checkpoint {tuple(shapes[name])}, model {tuple(params[name].shape)}"
                 for name in sorted(set(params) & set(shapes)) if tuple(shapes[name]) != tuple(params[name].shape)]
    problems = ([f"missing from checkpoint: {name}" for name in missing]
                + [f"not in the model: {name}" for name in extra]
                + [f"wrong shape: {line}" for line in misshaped])
    if problems:
        raise CheckpointError(f"{source} does not fit the model:\n  " + "\n  ".join(problems), folder)


def assign_weights(model: GPT2, weights: Mapping[str, torch.Tensor]) -> None:
    """Copy `weights` into the model's own parameters after checking every name and shape."""
    check_fits(model, {name: tuple(w.shape) for name, w in weights.items()})
    _copy_each(model, lambda name: weights[name])


def _copy_each(model: GPT2, read: Callable[[str], torch.Tensor]) -> None:
    """Fill each parameter from `read(name)`, one tensor at a time (at most one extra tensor alive)."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(read(name))  # in place: wte stays the one tensor the head reads


def check_config_fits(config: GPTConfig, shapes: Mapping[str, tuple[int, ...]], config_file: str,
                      weights_file: str, folder: Path | None = None) -> None:
    """Refuse a config that makes the model bigger than the stored tensors, before a model of that size is built.

    A config file says how big the model is; the weights file says how big it was when saved. A
    damaged or absurd hparams.json (n_ctx = 10**12, n_layer = 10**9) must not cost memory or time
    before it is found out: these few sizes tie every field of the config to the file. (A config
    smaller than the file costs nothing to build; `check_fits` then names every tensor that differs.)
    """
    expected = {"wte.weight": ((config.n_vocab, config.n_embd), "n_vocab × n_embd"),
                "wpe.weight": ((config.n_ctx, config.n_embd), "n_ctx × n_embd"),
                "h.0.mlp.c_fc.weight": ((config.mlp_ratio * config.n_embd, config.n_embd),
                                        "mlp_ratio·n_embd × n_embd")}
    problems = [f"{weights_file} holds {name} as {_shape(shapes[name])}, but {config_file} makes it "
                f"{_shape(shape)} ({fields})"
                for name, (shape, fields) in expected.items()
                if name in shapes and math.prod(shape) > math.prod(shapes[name])]
    blocks = {name.split(".")[1] for name in shapes if name.startswith("h.")}
    if config.n_layer > len(blocks):
        problems.append(f"{weights_file} holds {len(blocks)} blocks, but {config_file} says n_layer = {config.n_layer}")
    if problems:
        raise CheckpointError(f"{config_file} does not fit {weights_file}: " + "; ".join(problems), folder)


def _shape(shape) -> str:
    return " × ".join(str(size) for size in shape)


def empty_model(config: GPTConfig, shapes: Mapping[str, tuple[int, ...]] | None = None, source: str = "the checkpoint",
                folder: Path | None = None) -> GPT2:
    """A GPT2 whose parameters are allocated but not initialised: loading overwrites every one.

    With `shapes` (the tensors `source` holds), they are checked against the model before anything is allocated.
    """
    with torch.device("meta"):
        model = GPT2(config)
    if shapes is not None:
        check_fits(model, shapes, source, folder)
    if any(True for _ in model.buffers()):  # a buffer is computed in __init__, not loaded: build it for real
        return GPT2(config)
    return model.to_empty(device="cpu")


# safetensors: 8 bytes (little-endian header length), a JSON header {name: {dtype, shape,
# data_offsets}, "__metadata__": {...}}, then the raw little-endian tensor bytes.
_SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


def read_safetensors_header(path: Path) -> tuple[dict, dict[str, str], int]:
    """({tensor name: entry}, metadata, offset of the data) of a safetensors file, reading only its header.

    Everything the header promises is checked against the file before anything is read or allocated:
    a tensor's bytes must lie inside the file and be as many as its shape and type need. A
    CheckpointError names the file (by its name in its folder) and what is wrong with it.
    """
    name, folder = path.name, path.parent
    size = path.stat().st_size
    if size < 8:
        raise CheckpointError(f"{name} is truncated: it holds {size} bytes, and a safetensors file starts with 8 "
                              "that give the length of its header", folder)
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        if not 2 <= length <= 100_000_000:
            raise CheckpointError(f"{name} is not a safetensors file: its first 8 bytes give a header of {length:,} "
                                  "bytes", folder)
        if 8 + length > size:
            raise CheckpointError(f"{name} is truncated: its header should be {length:,} bytes long, but the whole "
                                  f"file holds {size:,}", folder)
        raw = f.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{name} is not a safetensors file: its header is not JSON", folder) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{name} is not a safetensors file: its header is not a JSON object", folder)
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(value, str) for value in metadata.values()):
        raise CheckpointError(f"{name} is damaged: its header's __metadata__ is not a map of strings", folder)
    for tensor, entry in header.items():
        _check_entry(name, folder, tensor, entry, size - 8 - length)
    return header, metadata, 8 + length


_BYTES_PER_VALUE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def _check_entry(name: str, folder: Path, tensor: str, entry, data_size: int) -> None:
    """One header entry {dtype, shape, data_offsets}: well formed, and its bytes inside the file's data."""
    def whole(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    if (not isinstance(entry, dict) or not isinstance(entry.get("dtype"), str)
            or not isinstance(entry.get("shape"), list) or not all(whole(n) for n in entry["shape"])
            or not isinstance(entry.get("data_offsets"), list) or len(entry["data_offsets"]) != 2
            or not all(whole(n) for n in entry["data_offsets"])):
        raise CheckpointError(f"{name} is damaged: the header's entry for {tensor!r} is not "
                              "{dtype, shape, data_offsets}", folder)
    begin, end = entry["data_offsets"]
    if end > data_size:
        raise CheckpointError(f"{name} is truncated: {tensor} should end {end:,} bytes into the data, but the file "
                              f"holds {data_size:,} bytes of data", folder)
    width = _BYTES_PER_VALUE.get(entry["dtype"])
    count = 1
    for n in entry["shape"]:
        count *= n
    if begin > end or (width is not None and end - begin != count * width):
        raise CheckpointError(f"{name} is damaged: {tensor} is {entry['dtype']} of shape {entry['shape']} but "
                              f"takes {end - begin:,} bytes", folder)


def is_project_checkpoint(directory: str | Path) -> bool:
    """Whether `directory` holds a model saved by `checkpoint.save_checkpoint` (or a training snapshot)."""
    weights = Path(directory) / SAFETENSORS_NAME
    return weights.is_file() and read_safetensors_header(weights)[1].get("format") == PROJECT_FORMAT


def read_safetensors_into(model: GPT2, path: Path) -> dict[str, str]:
    """Check the file fits the model, then read each tensor straight into its parameter; returns the metadata."""
    header, metadata, data_start = read_safetensors_header(path)
    read_entries_into(model, path, header, data_start)
    return metadata


def load_safetensors(config: GPTConfig, path: Path, config_file: str) -> GPT2:
    """A GPT2 of `config` with the weights of the safetensors file `path` (stored in our names and layout).

    The config (read from `config_file` in the same folder) is checked against the file's shapes
    before the model is allocated, so a config that disagrees costs no memory.
    """
    header, _, data_start = read_safetensors_header(path)
    shapes = {tensor: tuple(entry["shape"]) for tensor, entry in header.items()}
    check_config_fits(config, shapes, config_file, path.name, path.parent)
    model = empty_model(config, shapes, path.name, path.parent)
    read_entries_into(model, path, header, data_start)
    return model


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
        raise CheckpointError(f"{path.name} holds tensors of type {', '.join(unknown)}; only float tensors load",
                              path.parent)
    check_fits(model, {name: tuple(reversed(entry["shape"])) if name in transposed else tuple(entry["shape"])
                       for name, entry in entries.items()}, path.name, path.parent)
    with open(path, "rb") as f, torch.no_grad():
        for name, param in model.named_parameters():
            entry = entries[name]
            begin, end = entry["data_offsets"]
            f.seek(data_start + begin)
            dtype = _SAFETENSORS_DTYPES[entry["dtype"]]
            if name not in transposed and dtype == param.dtype and param.is_contiguous() and param.device.type == "cpu":
                target = param.data.view(-1).view(torch.uint8).numpy()
                if f.readinto(memoryview(target)) != end - begin:
                    raise CheckpointError(f"{path.name} is truncated inside {name}", path.parent)
            else:
                stored = read_tensor(f, path, entry, name)
                param.copy_(stored.T if name in transposed else stored)  # casts F16/BF16 to float32


def read_tensor(f: BinaryIO, path: Path, entry: dict, name: str) -> torch.Tensor:
    """The tensor an entry describes, read from the open file `f` at its current position, as stored."""
    if entry["dtype"] not in _SAFETENSORS_DTYPES:
        raise CheckpointError(f"{path.name} holds {name} as {entry['dtype']}; only float tensors load", path.parent)
    begin, end = entry["data_offsets"]
    raw = bytearray(f.read(end - begin))
    if len(raw) != end - begin:
        raise CheckpointError(f"{path.name} is truncated inside {name}", path.parent)
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
