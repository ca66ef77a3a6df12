"""Load OpenAI's released GPT-2 weights (a TensorFlow checkpoint) into `gpt2.GPT2`.

OpenAI's checkpoint stores one variable per tensor, named by TensorFlow scope:

    model/wte                  [n_vocab, n_embd]
    model/wpe                  [n_ctx, n_embd]
    model/h{l}/ln_1/g, /b      [n_embd]                 LayerNorm gain and bias
    model/h{l}/attn/c_attn/w   [1, n_embd, 3*n_embd]    a "conv1d": y = x @ w[0] + b
    model/h{l}/attn/c_proj/w   [1, n_embd, n_embd]
    model/h{l}/mlp/c_fc/w      [1, n_embd, 4*n_embd]
    model/h{l}/mlp/c_proj/w    [1, 4*n_embd, n_embd]
    model/ln_f/g, /b           [n_embd]

Our modules carry the same names, so one rule maps every variable:
`model/h3/attn/c_attn/w` -> `h.3.attn.c_attn.weight`. The only change of layout is
that nn.Linear keeps its weight as (out, in) while OpenAI's conv1d keeps (in, out):
such weights are squeezed and transposed. There is no separate output head in the
checkpoint: logits reuse wte, and loading copies into the existing parameters so the
model's head stays tied to the embedding.

Reading the checkpoint needs TensorFlow, which is slow to import. After the first load
the weights are saved beside the checkpoint as `model.safetensors`; later loads read
that file (in seconds, no TensorFlow) as long as it was made from the same checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .config import GPTConfig
from .model import GPT2

log = logging.getLogger(__name__)

SAFETENSORS_NAME = "model.safetensors"
_BLOCK_SCOPE = re.compile(r"h(\d+)")
_LEAF_NAMES = {"w": "weight", "g": "weight", "b": "bias"}


class CheckpointError(ValueError):
    """The checkpoint does not fit the model: names every variable that is wrong."""


def torch_name(openai_name: str) -> str:
    """`model/h3/attn/c_attn/w` -> `h.3.attn.c_attn.weight`; `model/wte` -> `wte.weight`."""
    scopes = openai_name.split("/")
    if scopes[0] != "model" or len(scopes) < 2:
        raise CheckpointError(f"unexpected variable {openai_name!r}: GPT-2's variables live under 'model/'")
    scopes = scopes[1:]
    if scopes[-1] in _LEAF_NAMES:
        scopes[-1] = _LEAF_NAMES[scopes[-1]]
    else:  # wte and wpe are bare variables
        scopes.append("weight")
    scopes = [f"h.{m.group(1)}" if (m := _BLOCK_SCOPE.fullmatch(s)) else s for s in scopes]
    return ".".join(scopes)


def to_torch_layout(openai_name: str, array) -> torch.Tensor:
    """A checkpoint array in our layout: conv1d weights [1, in, out] become Linear's (out, in)."""
    tensor = torch.from_numpy(array)
    if openai_name.endswith("/w"):
        tensor = tensor.squeeze(0).T.contiguous()
    return tensor


def _checkpoint_prefix(directory: Path) -> str:
    """The path prefix of the checkpoint: what the `checkpoint` file names, else model.ckpt."""
    pointer = directory / "checkpoint"
    if pointer.exists():
        match = re.search(r'model_checkpoint_path:\s*"([^"]+)"', pointer.read_text(encoding="utf-8"))
        if match:
            name = Path(match.group(1)).name  # relative to this directory, wherever it was written
            return str(directory / name)
    return str(directory / "model.ckpt")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_openai_variables(prefix: str) -> dict[str, torch.Tensor]:
    """Every variable of a TensorFlow checkpoint, renamed and re-laid-out for `GPT2`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter is not for learners
    import tensorflow as tf  # imported here only: the rest of the project never needs it

    reader = tf.train.load_checkpoint(prefix)  # the reader behind tf.train.load_variable, opened once
    names = sorted(reader.get_variable_to_shape_map())
    return {torch_name(name): to_torch_layout(name, reader.get_tensor(name)) for name in names}


def assign_weights(model: GPT2, weights: dict[str, torch.Tensor]) -> None:
    """Copy `weights` into the model's own parameters after checking every name and shape."""
    params = dict(model.named_parameters())
    missing = sorted(set(params) - set(weights))
    extra = sorted(set(weights) - set(params))
    misshaped = [f"{name}: checkpoint {tuple(weights[name].shape)}, model {tuple(params[name].shape)}"
                 for name in sorted(set(params) & set(weights)) if weights[name].shape != params[name].shape]
    problems = ([f"missing from checkpoint: {name}" for name in missing]
                + [f"not in the model: {name}" for name in extra]
                + [f"wrong shape: {line}" for line in misshaped])
    if problems:
        raise CheckpointError("the checkpoint does not fit the model:\n  " + "\n  ".join(problems))
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(weights[name])  # in place: wte stays the one tensor the head reads


def _save_safetensors(model: GPT2, path: Path, index_sha256: str) -> None:
    metadata = {"source_index_sha256": index_sha256, "hparams": json.dumps(model.config.to_hparams())}
    tmp = path.with_suffix(".safetensors.partial")
    try:
        save_file({name: p.detach().contiguous() for name, p in model.named_parameters()}, str(tmp), metadata)
        os.replace(tmp, path)
    except OSError as err:  # a read-only or full disk only costs speed next time
        tmp.unlink(missing_ok=True)
        log.warning("could not write %s (%s); the next load will read the checkpoint again", path, err)


def _load_safetensors(path: Path, index_sha256: str | None) -> dict[str, torch.Tensor] | None:
    """The cached weights, or None if the cache is absent or was made from another checkpoint."""
    if not path.exists():
        return None
    with safe_open(str(path), framework="pt") as f:
        if index_sha256 is not None and f.metadata().get("source_index_sha256") != index_sha256:
            return None
        return {name: f.get_tensor(name) for name in f.keys()}


def load_openai_checkpoint(path: str | Path, config: GPTConfig | None = None) -> GPT2:
    """A GPT2 with the weights of OpenAI's checkpoint in directory `path`, in eval mode.

    The config comes from the directory's hparams.json unless given. Raises
    CheckpointError naming each missing, extra or mis-shaped variable.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"no checkpoint directory at {directory}")
    hparams = directory / "hparams.json"
    if config is None:
        if not hparams.exists():
            raise FileNotFoundError(f"{directory} has no hparams.json, so the model's shape is unknown")
        config = GPTConfig.from_hparams(hparams)
    model = GPT2(config)

    prefix = _checkpoint_prefix(directory)
    index = Path(prefix + ".index")
    index_sha256 = _sha256(index) if index.exists() else None
    cache = directory / SAFETENSORS_NAME
    weights = _load_safetensors(cache, index_sha256)
    if weights is None:
        if index_sha256 is None:
            raise FileNotFoundError(f"no TensorFlow checkpoint ({index.name}) and no {cache.name} in {directory}")
        weights = read_openai_variables(prefix)
        assign_weights(model, weights)
        _save_safetensors(model, cache, index_sha256)
    else:
        assign_weights(model, weights)
    return model.eval()


def load_pretrained(size: str = "124M", cache_dir: str | Path | None = None, **download_options) -> GPT2:
    """OpenAI's released model of this size: downloaded on first use, then loaded from the cache."""
    from .download import download_model

    return load_openai_checkpoint(download_model(size, cache_dir, **download_options))
