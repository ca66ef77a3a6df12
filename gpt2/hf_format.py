"""Read GPT-2 in the Hugging Face layout: a folder with `config.json` and `model.safetensors`.

That is what transformers' `GPT2LMHeadModel.save_pretrained` writes, and what the Hub's
openai-community repos (gpt2, gpt2-medium, gpt2-large, gpt2-xl) hold:

    config.json          {"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024,
                          "n_embd": 768, "n_head": 12, "n_layer": 12, "layer_norm_epsilon": 1e-05,
                          "activation_function": "gelu_new", ...}
    model.safetensors    wte.weight [n_vocab, n_embd], h.0.attn.c_attn.weight [n_embd, 3*n_embd], ...

transformers kept OpenAI's scope names, so the tensors are named as our modules are, except:
- save_pretrained puts them under `transformer.` (`transformer.h.0.ln_1.weight`); the Hub's
  own files, written by an older transformers, do not;
- HF's `Conv1D` keeps its weight as (in, out), as OpenAI's conv1d did, while nn.Linear keeps
  (out, in): those four weights per block are transposed;
- older files store the causal mask as if it were a weight (`h.N.attn.bias`, `h.N.attn.masked_bias`):
  it is a constant, not learned, so it is skipped;
- a file may carry `lm_head.weight`, the output head. GPT-2 ties it to wte (logits = h @ wte^T),
  so it is accepted only if it equals wte.

The tokenizer of such a folder is GPT-2's: `gpt2.get_tokenizer(folder)` finds no
`tokenizer.tiktoken` there and returns GPT-2's BPE (the vocab.json/merges.txt beside it are the same table).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from .errors import CheckpointError
from .weights import (HPARAMS_NAME, SAFETENSORS_NAME, check_config_fits, empty_model, read_entries_into,
                      read_safetensors_header, read_tensor)
from .config import GPTConfig
from .model import GPT2

CONFIG_NAME = "config.json"
_PREFIX = "transformer."
_MASK_BUFFER = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")
_CONV1D_WEIGHT = re.compile(r"h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight")
_HEAD = "lm_head.weight"

# config.json field -> GPTConfig field. transformers' GPT2Config defaults apply to a field left out.
_SHAPE_FIELDS = {"vocab_size": "n_vocab", "n_positions": "n_ctx", "n_embd": "n_embd", "n_head": "n_head",
                 "n_layer": "n_layer", "layer_norm_epsilon": "layer_norm_eps"}
_GPT2CONFIG_DEFAULTS = {"vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12,
                        "layer_norm_epsilon": 1e-5}
# Variations of HF's GPT2 that our model does not compute: (field, the value GPT-2 has, what it would change).
_MUST_MATCH = (
    ("activation_function", "gelu_new", "GPT-2's MLP uses the tanh approximation of GELU"),
    ("scale_attn_weights", True, "GPT-2 divides attention scores by sqrt(d_head)"),
    ("scale_attn_by_inverse_layer_idx", False, "GPT-2 scales every layer's attention alike"),
    ("add_cross_attention", False, "GPT-2 is a decoder alone, with no cross-attention"),
)


def is_hf_folder(directory: Path) -> bool:
    """Whether `directory` looks like a Hugging Face GPT-2 folder (and not OpenAI's, which has hparams.json)."""
    return ((directory / CONFIG_NAME).is_file() and (directory / SAFETENSORS_NAME).is_file()
            and not (directory / HPARAMS_NAME).is_file())


def config_from_hf(fields: dict, source: str = CONFIG_NAME, folder: Path | None = None) -> GPTConfig:
    """The GPTConfig of a GPT2Config (config.json's dict); CheckpointError names a field we can't honour."""
    if not isinstance(fields, dict):
        raise CheckpointError(f"{source} must hold a JSON object, a GPT2Config; it holds a {type(fields).__name__}",
                              folder)
    if fields.get("model_type") != "gpt2":
        raise CheckpointError(f"{source}: model_type is {fields.get('model_type')!r}, not 'gpt2'; "
                              "only GPT-2 models load here", folder)
    for field, gpt2_value, why in _MUST_MATCH:
        if fields.get(field, gpt2_value) != gpt2_value:
            raise CheckpointError(f"{source}: {field} is {fields[field]!r}, but {why} ({field} = {gpt2_value!r})",
                                  folder)
    values = {key: fields.get(key, default) for key, default in _GPT2CONFIG_DEFAULTS.items()}
    if "n_positions" not in fields and "n_ctx" in fields:  # very old configs name the context n_ctx only
        values["n_positions"] = fields["n_ctx"]
    mlp_ratio = 4
    n_inner = fields.get("n_inner")
    if n_inner is not None:  # None means 4 * n_embd
        if not isinstance(n_inner, int) or n_inner % values["n_embd"]:
            raise CheckpointError(f"{source}: n_inner is {n_inner!r}; the MLP's width must be a whole multiple "
                                  f"of n_embd ({values['n_embd']})", folder)
        mlp_ratio = n_inner // values["n_embd"]
    try:
        return GPTConfig(**{ours: values[theirs] for theirs, ours in _SHAPE_FIELDS.items()}, mlp_ratio=mlp_ratio)
    except ValueError as err:
        raise CheckpointError(f"{source}: {err}", folder) from None


def load_hf_folder(directory: str | Path) -> GPT2:
    """A GPT2 from a Hugging Face GPT-2 folder (config.json + model.safetensors), in eval mode.

    Reads one tensor at a time into the model's parameters. Raises CheckpointError for a config
    the model can't represent and, naming every one, for missing, extra or misshaped tensors.
    """
    directory = Path(directory)
    config_path, weights = directory / CONFIG_NAME, directory / SAFETENSORS_NAME
    try:
        fields = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{CONFIG_NAME} is not valid JSON ({err})", directory) from None
    config = config_from_hf(fields, CONFIG_NAME, directory)
    header, _, data_start = read_safetensors_header(weights)
    entries = {}
    for stored_name, entry in header.items():
        name = stored_name.removeprefix(_PREFIX)
        if not _MASK_BUFFER.fullmatch(name):
            entries[name] = entry
    head = entries.pop(_HEAD, None)
    if head is None and fields.get("tie_word_embeddings") is False:
        raise CheckpointError(f"{CONFIG_NAME}: tie_word_embeddings is false but {weights.name} has no {_HEAD}",
                              directory)
    transposed = {name for name in entries if _CONV1D_WEIGHT.fullmatch(name)}
    shapes = {name: tuple(reversed(entry["shape"])) if name in transposed else tuple(entry["shape"])
              for name, entry in entries.items()}
    check_config_fits(config, shapes, CONFIG_NAME, weights.name, directory)  # before anything is allocated
    model = empty_model(config, shapes, weights.name, directory)
    read_entries_into(model, weights, entries, data_start, transposed=transposed)
    if head is not None:
        _check_head_is_wte(model, weights, head, data_start)
    return model.eval()


def _check_head_is_wte(model: GPT2, weights: Path, head: dict, data_start: int) -> None:
    # Our head *is* wte; a different head would be silently replaced, so refuse it instead.
    with open(weights, "rb") as f:
        f.seek(data_start + head["data_offsets"][0])
        stored = read_tensor(f, weights, head, _HEAD)
    if stored.shape != model.wte.weight.shape or not torch.equal(stored.to(model.wte.weight.dtype),
                                                                 model.wte.weight):
        raise CheckpointError(f"{weights.name}: {_HEAD} differs from wte.weight, but GPT-2's output head is the "
                              "token embedding itself (tied weights): this model can't be represented", weights.parent)
