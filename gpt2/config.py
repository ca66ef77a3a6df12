"""The shape of a GPT-2 model.

`GPTConfig` uses the field names of OpenAI's `hparams.json`, so a released model's
config is read straight from that file:

    n_vocab  size of the BPE vocabulary (50257: 50000 merges + 256 bytes + <|endoftext|>)
    n_ctx    longest sequence the model can see (1024 learned positions)
    n_embd   width of the residual stream, d_model
    n_head   attention heads per layer; each head works in d_head = n_embd / n_head dimensions
    n_layer  number of transformer blocks

The remaining fields are variations a learner may want to try on a fresh model;
OpenAI's released models all use the defaults.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

# The four released sizes, named as OpenAI names them in its storage bucket.
SIZES = ("124M", "355M", "774M", "1558M")


@dataclass(frozen=True)
class GPTConfig:
    n_vocab: int = 50257
    n_ctx: int = 1024
    n_embd: int = 768
    n_head: int = 12
    n_layer: int = 12
    # Variations (the defaults are GPT-2's own).
    dropout: float = 0.0  # applied to embeddings, attention weights and residual branches while training
    qkv_bias: bool = True  # GPT-2's c_attn has a bias; many later models drop it
    layer_norm_eps: float = 1e-5  # OpenAI's value, added to the variance inside LayerNorm
    mlp_ratio: int = 4  # the MLP's hidden width is mlp_ratio * n_embd

    def __post_init__(self) -> None:
        for name in ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer", "mlp_ratio"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): "
                "each head gets an equal slice of the residual stream"
            )
        for name in ("dropout", "layer_norm_eps"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"GPTConfig.{name} must be a finite number, got {value!r}")
        if not isinstance(self.qkv_bias, bool):
            raise ValueError(f"GPTConfig.qkv_bias must be true or false, got {self.qkv_bias!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}")

    @property
    def d_head(self) -> int:
        return self.n_embd // self.n_head

    @classmethod
    def preset(cls, size: str) -> "GPTConfig":
        """The config of one of OpenAI's released sizes: "124M", "355M", "774M" or "1558M"."""
        if size not in PRESETS:
            raise ValueError(f"unknown GPT-2 size {size!r}; choose one of {', '.join(SIZES)}")
        return PRESETS[size]

    @classmethod
    def from_hparams(cls, source: str | Path | dict) -> "GPTConfig":
        """Build a config from OpenAI's hparams.json (a path to it, or its parsed dict)."""
        if isinstance(source, dict):
            hparams = source
        else:
            try:
                hparams = json.loads(Path(source).read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise ValueError(f"{source} is not valid JSON: {err}") from None
        required = ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer")
        missing = [key for key in required if key not in hparams]
        if missing:
            raise ValueError(f"hparams is missing {', '.join(missing)}")
        known = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in hparams.items() if key in known})

    def to_hparams(self) -> dict:
        """OpenAI's five hparams.json fields."""
        fields = asdict(self)
        return {key: fields[key] for key in ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer")}

    def with_(self, **changes) -> "GPTConfig":
        """A copy with some fields changed (validated like a new config)."""
        return replace(self, **changes)


PRESETS = {
    "124M": GPTConfig(n_embd=768, n_head=12, n_layer=12),
    "355M": GPTConfig(n_embd=1024, n_head=16, n_layer=24),
    "774M": GPTConfig(n_embd=1280, n_head=20, n_layer=36),
    "1558M": GPTConfig(n_embd=1600, n_head=25, n_layer=48),
}
