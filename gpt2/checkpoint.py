"""Load GPT-2 weights into `gpt2.GPT2` from a folder in one of three layouts.

    OpenAI's       hparams.json, model.ckpt.*           the TensorFlow checkpoint OpenAI released
    Hugging Face   config.json, model.safetensors       what transformers' save_pretrained writes and
                                                        the Hub's openai-community repos hold (hf_format.py)
    the project's  model.safetensors, hparams.json ...  a model trained here (`save_checkpoint`)

`load_checkpoint(folder)` tells them apart and reads any of them. What all three share (the
safetensors format, name and shape checks, an empty model to read into) is in weights.py.

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

A model trained here is saved in the project's own folder format (`save_checkpoint`):

    model.safetensors     the weights, float32, named as our modules are
    hparams.json          every GPTConfig field (OpenAI's five first)
    tokenizer.tiktoken    the model's own BPE ranks (see bpe.py and tokenizer.py)
    training_log.json     how it was trained: command, config, losses, tokens seen
    training_state.pt     optimizer, step and random states, for `train --resume`

A save survives a kill at any moment: the folder always holds weights and a training state
of the same step (see `save_checkpoint`), and `resume_point` finds that pair.

Loading builds the model without initialising it (on the meta device) and reads each
tensor from the file straight into its parameter, so it peaks at about one copy of the
weights, not two.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from collections.abc import Callable
from pathlib import Path

import torch

from .config import GPTConfig
from .durable import flush_folder, replace_durably, write_text_atomically
from .model import GPT2
from .resources import ASSETS
from .hf_format import is_hf_folder, load_hf_folder
from .tokenizer import TOKENIZER_NAME
from .errors import CheckpointError, MissingFile
from .weights import (HPARAMS_NAME, PROJECT_FORMAT, SAFETENSORS_NAME, _copy_each, check_config_fits, empty_model,
                      is_project_checkpoint, load_safetensors, read_safetensors_header, write_weights)

log = logging.getLogger(__name__)

LOG_NAME = "training_log.json"
STATE_NAME = "training_state.pt"
NEXT_STATE_NAME = "training_state.next.pt"  # a save's training state, until the weights it goes with are in place
_BLOCK_SCOPE = re.compile(r"h(\d+)")
_LEAF_NAMES = {"w": "weight", "g": "weight", "b": "bias"}


# Small models trained by this project (`python -m gpt2 train`, see README) and shipped in assets/.
SHIPPED_MODELS = {"tiny": ASSETS / "models" / "tiny"}


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
    """Every variable of a TensorFlow checkpoint, renamed and re-laid-out for `GPT2` (all in memory)."""
    shapes, read = _openai_reader(prefix)
    return {name: read(name) for name in shapes}


def _openai_reader(prefix: str) -> tuple[dict[str, tuple[int, ...]], Callable[[str], torch.Tensor]]:
    """The checkpoint's {our name: shape in our layout} and a function reading one tensor by our name."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter is not for learners
    import tensorflow as tf  # imported here only: the rest of the project never needs it

    reader = tf.train.load_checkpoint(prefix)  # the reader behind tf.train.load_variable, opened once
    shapes, openai_names = {}, {}
    for openai_name, shape in sorted(reader.get_variable_to_shape_map().items()):
        name = torch_name(openai_name)
        openai_names[name] = openai_name
        shapes[name] = tuple(reversed(shape[1:])) if openai_name.endswith("/w") else tuple(shape)
    return shapes, lambda name: to_torch_layout(openai_names[name], reader.get_tensor(openai_names[name]))


def _save_safetensors(model: GPT2, path: Path, index_sha256: str) -> None:
    metadata = {"source_index_sha256": index_sha256, "hparams": json.dumps(model.config.to_hparams())}
    try:
        write_weights(model, path, metadata)
    except OSError as err:  # a read-only or full disk only costs speed next time
        log.warning("could not write %s (%s); the next load will read the checkpoint again", path, err)


def _cache_is_current(path: Path, index_sha256: str | None) -> bool:
    """Whether the safetensors cache exists and was made from this checkpoint."""
    if not path.exists():
        return False
    _, metadata, _ = read_safetensors_header(path)
    return index_sha256 is None or metadata.get("source_index_sha256") == index_sha256


def has_current_safetensors(directory: Path) -> bool:
    """Whether an OpenAI folder holds hparams.json and a usable `model.safetensors` made from its
    checkpoint (so it loads without TensorFlow, even if the TensorFlow files are gone)."""
    index = directory / "model.ckpt.index"
    if not (directory / HPARAMS_NAME).is_file():
        return False
    try:
        return _cache_is_current(directory / SAFETENSORS_NAME, _sha256(index) if index.is_file() else None)
    except (CheckpointError, ValueError):  # a damaged file is no usable copy
        return False


def load_openai_checkpoint(path: str | Path, config: GPTConfig | None = None) -> GPT2:
    """A GPT2 with the weights of OpenAI's checkpoint in directory `path`, in eval mode.

    The config comes from the directory's hparams.json unless given. Raises
    CheckpointError naming each missing, extra or mis-shaped variable.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"no checkpoint directory at {directory}")
    config_file = "the config given" if config is not None else HPARAMS_NAME
    config = config or read_hparams(directory)
    prefix = _checkpoint_prefix(directory)
    index = Path(prefix + ".index")
    index_sha256 = _sha256(index) if index.exists() else None
    cache = directory / SAFETENSORS_NAME
    if _cache_is_current(cache, index_sha256):
        return load_safetensors(config, cache, config_file).eval()
    if index_sha256 is None:
        raise MissingFile(f"the model's weights are missing: the folder holds neither OpenAI's TensorFlow checkpoint "
                          f"({index.name}) nor {cache.name}", directory)
    shapes, read = _openai_reader(prefix)
    check_config_fits(config, shapes, config_file, Path(prefix).name, directory)
    model = empty_model(config, shapes, Path(prefix).name, directory)
    _copy_each(model, read)
    _save_safetensors(model, cache, index_sha256)
    return model.eval()


def read_hparams(directory: Path) -> GPTConfig:
    """The model's shape from the folder's hparams.json; a CheckpointError names the file and what is wrong."""
    path = directory / HPARAMS_NAME
    if not path.is_file():
        raise MissingFile(f"{HPARAMS_NAME} is missing, so the model's shape is unknown", directory)
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{HPARAMS_NAME} is not UTF-8 text, so it is not JSON", directory) from None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{HPARAMS_NAME} is not valid JSON ({err.msg} at line {err.lineno}, "
                              f"column {err.colno})", directory) from None
    return config_from_fields(fields, HPARAMS_NAME, directory)


def config_from_fields(fields, source: str, folder: Path | None = None) -> GPTConfig:
    """A GPTConfig from hparams' parsed JSON, which came from `source`; a CheckpointError says what is wrong."""
    if not isinstance(fields, dict):
        raise CheckpointError(f"{source} must hold a JSON object (n_vocab, n_ctx, n_embd, n_head, n_layer); "
                              f"it holds a {type(fields).__name__}", folder)
    try:
        return GPTConfig.from_hparams(fields)
    except ValueError as err:
        raise CheckpointError(f"{source}: {err}", folder) from None


def project_hparams(config: GPTConfig) -> dict:
    """Every GPTConfig field, OpenAI's five first (so OpenAI's tools can read the file too)."""
    fields = config.to_hparams()
    fields.update({key: value for key, value in asdict(config).items() if key not in fields})
    return fields


def save_checkpoint(directory: str | Path, model: GPT2, tokenizer_ranks: Path | None = None,
                    training_log: dict | None = None, training_state: dict | None = None, step: int = 0) -> Path:
    """Save a model in the project's folder format (see the module docstring); returns the folder.

    A kill at any moment of a save leaves a folder that loads and resumes. Each file is written
    under a temporary name and renamed over the old one (durable.py), in this order:

        1. hparams.json, tokenizer.tiktoken     the same for a whole run
        2. training_state.next.pt               the new training state, step and log
        3. model.safetensors                    the new weights, carrying `step`
        4. training_state.next.pt -> training_state.pt
        5. training_log.json

    Before 3 the previous weights pair with the previous training_state.pt; from 3 to 4 the new
    weights pair with training_state.next.pt. `resume_point` picks the state whose step is the
    weights'. The training state carries the log too, so a resumed run never mixes the log of
    one save with the weights of another.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    hparams = project_hparams(model.config)
    write_text_atomically(directory / HPARAMS_NAME, json.dumps(hparams, indent=2) + "\n")
    if tokenizer_ranks is not None and Path(tokenizer_ranks).resolve() != (directory / TOKENIZER_NAME).resolve():
        write_text_atomically(directory / TOKENIZER_NAME, Path(tokenizer_ranks).read_text(encoding="ascii"))
    if training_state is not None:
        # The log goes as its JSON text: the state file then holds only what torch.load(weights_only=True) reads.
        _write_state({**training_state, "step": step, "log": json.dumps(training_log)}, directory / NEXT_STATE_NAME)
    metadata = {"format": PROJECT_FORMAT, "step": str(step), "hparams": json.dumps(hparams)}
    write_weights(model, directory / SAFETENSORS_NAME, metadata)
    if training_state is not None:
        os.replace(directory / NEXT_STATE_NAME, directory / STATE_NAME)
        flush_folder(directory)
    if training_log is not None:
        write_text_atomically(directory / LOG_NAME, json.dumps(training_log, indent=1) + "\n")
    return directory


def _write_state(state: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".partial")
    try:
        torch.save(state, tmp)
        replace_durably(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class ResumePoint:
    """The training state that goes with a folder's weights, as `save_checkpoint` left it."""
    step: int
    state: dict  # optimizer, random states, tokens seen... (what `train.Run.state` gave)
    log: dict  # the training log as it was at that save
    note: str  # which step a resumed run starts from, and why not a newer one


def resume_point(directory: str | Path) -> ResumePoint:
    """The newest training state whose step is the step of the folder's weights.

    After a kill during a save (see `save_checkpoint`) that is training_state.next.pt when the
    new weights were already in place, else training_state.pt, the previous save's. Raises
    CheckpointError when no state goes with the weights.
    """
    directory = Path(directory)
    saved = [path for path in (directory / NEXT_STATE_NAME, directory / STATE_NAME) if path.is_file()]
    if not saved:
        raise CheckpointError(f"{STATE_NAME} is missing: no save of a training run finished in this folder; "
                              "train into it without --resume to start again", directory)
    if not (directory / SAFETENSORS_NAME).is_file():
        raise CheckpointError(f"{SAFETENSORS_NAME} is missing: the first save of this run was cut off before its "
                              "weights were written; train into the folder without --resume to start again",
                              directory)
    weights_step = checkpoint_step(directory)
    newest_step, damaged = None, []
    for path in saved:  # the newer one first; one state in memory at a time (they hold the optimizer's moments)
        try:
            state = _read_state(path)
        except CheckpointError as err:  # not left by a kill (a state is renamed into place whole): a damaged disk
            damaged.append(err)
            continue
        newest_step = state["step"] if newest_step is None else newest_step
        if state["step"] == weights_step:
            log = state.pop("log", None)
            if log is None:  # a state saved before the log travelled with it: then training_log.json is its log
                log = read_training_log(directory)
            if log is None:
                raise CheckpointError(f"{LOG_NAME} is missing: it holds the run's settings, which resuming needs",
                                      directory)
            if newest_step == weights_step:
                note = f"resuming from step {weights_step}, the last save"
            else:
                note = (f"resuming from step {weights_step}: the save of step {newest_step} was cut off before "
                        f"its weights were written, so step {weights_step} is the last complete save")
            if damaged:
                note += f" (skipped: {damaged[0].public})"
            return ResumePoint(weights_step, state, log, note)
    if damaged:
        raise damaged[0]
    raise CheckpointError(f"{SAFETENSORS_NAME} is from step {weights_step} but the training state "
                          f"({', '.join(path.name for path in saved)}) is from step {newest_step}: a save was cut off "
                          "by a version of this project that wrote the state first, and the matching state is "
                          "lost. The weights still load; to train on, start a new run", directory)


def _read_state(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a damaged file (zip, pickle, EOF)
        raise CheckpointError(f"{path.name} is damaged: torch cannot read it ({type(err).__name__})",
                              path.parent) from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise CheckpointError(f"{path.name} is not a training state: it has no step", path.parent)
    if "log" in state:
        try:
            state["log"] = json.loads(state["log"])
        except (TypeError, json.JSONDecodeError):
            raise CheckpointError(f"{path.name} is damaged: the training log inside is not JSON", path.parent) from None
        if not isinstance(state["log"], (dict, type(None))):
            raise CheckpointError(f"{path.name} is damaged: the training log inside is not a JSON object", path.parent)
    return state


def read_training_log(directory: str | Path) -> dict | None:
    """A project checkpoint's training log (training_log.json) as a dict, or None when the folder has none."""
    path = Path(directory) / LOG_NAME
    if not path.is_file():
        return None
    try:
        log = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{LOG_NAME} is not UTF-8 text, so it is not the JSON a training run writes",
                              path.parent) from None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{LOG_NAME} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})",
                              path.parent) from None
    if not isinstance(log, dict):
        raise CheckpointError(f"{LOG_NAME} must hold a JSON object, the log of a training run; "
                              f"it holds a {type(log).__name__}", path.parent)
    return log


def load_checkpoint(path: str | Path) -> GPT2:
    """A GPT2 from a folder in any of the three layouts (the project's, Hugging Face's or OpenAI's), in eval mode.

    Its tokenizer is `gpt2.get_tokenizer(path)`. Raises FileNotFoundError for a folder with no
    model and CheckpointError for a damaged file or weights that do not fit their config, both
    checked before the model is allocated. A CheckpointError's `public` message names the file
    by its name in the folder, never its path (errors.py).
    """
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"no checkpoint directory at {directory}")
    if not is_project_checkpoint(directory):
        return load_hf_folder(directory) if is_hf_folder(directory) else load_openai_checkpoint(directory)
    weights = directory / SAFETENSORS_NAME
    if (directory / HPARAMS_NAME).is_file():
        return load_safetensors(read_hparams(directory), weights, HPARAMS_NAME).eval()
    # A snapshot folder: its config travels in the weights' metadata.
    source = f"the hparams in {SAFETENSORS_NAME}'s metadata"
    text = read_safetensors_header(weights)[1].get("hparams")
    if text is None:
        raise MissingFile(f"{HPARAMS_NAME} is missing, and {SAFETENSORS_NAME} carries no hparams in its metadata, "
                          "so the model's shape is unknown", directory)
    try:
        fields = json.loads(text)
    except json.JSONDecodeError:
        raise CheckpointError(f"{source} are not valid JSON", directory) from None
    return load_safetensors(config_from_fields(fields, source, directory), weights, source).eval()


def checkpoint_step(directory: str | Path) -> int:
    """The training step a project checkpoint's weights were saved at."""
    step = read_safetensors_header(Path(directory) / SAFETENSORS_NAME)[1].get("step", "0")
    if not (step.isascii() and step.isdigit()):
        raise CheckpointError(f"{SAFETENSORS_NAME} is damaged: the step in its metadata is {step[:20]!r}", directory)
    return int(step)
