"""Small random GPT-2 checkpoints in OpenAI's exact layout, and an independent reference.

`random_openai_weights` makes arrays named as in OpenAI's checkpoint (`model/h0/attn/c_attn/w`
with shape [1, n_embd, 3*n_embd], ...); `write_openai_checkpoint` saves them with a
TF1-style Saver, as OpenAI did, together with hparams.json. `reference_logits` is a
float64 numpy forward pass written straight from OpenAI's equations on those arrays,
sharing no code with the `gpt2` package.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def openai_shapes(hparams: dict) -> dict[str, tuple[int, ...]]:
    C, V, P = hparams["n_embd"], hparams["n_vocab"], hparams["n_ctx"]
    shapes = {"model/wte": (V, C), "model/wpe": (P, C), "model/ln_f/g": (C,), "model/ln_f/b": (C,)}
    for layer in range(hparams["n_layer"]):
        scope = f"model/h{layer}"
        shapes |= {
            f"{scope}/ln_1/g": (C,), f"{scope}/ln_1/b": (C,),
            f"{scope}/attn/c_attn/w": (1, C, 3 * C), f"{scope}/attn/c_attn/b": (3 * C,),
            f"{scope}/attn/c_proj/w": (1, C, C), f"{scope}/attn/c_proj/b": (C,),
            f"{scope}/ln_2/g": (C,), f"{scope}/ln_2/b": (C,),
            f"{scope}/mlp/c_fc/w": (1, C, 4 * C), f"{scope}/mlp/c_fc/b": (4 * C,),
            f"{scope}/mlp/c_proj/w": (1, 4 * C, C), f"{scope}/mlp/c_proj/b": (C,),
        }
    return shapes


def random_openai_weights(hparams: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 weights, large enough that attention and the output are far from uniform."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in openai_shapes(hparams).items():
        if name.endswith("/g"):
            array = 1.0 + 0.2 * rng.standard_normal(shape)
        elif name.endswith("/b"):
            array = 0.1 * rng.standard_normal(shape)
        else:
            fan_in = shape[1] if len(shape) == 3 else shape[-1]
            array = rng.standard_normal(shape) * (1.5 / np.sqrt(fan_in) if len(shape) == 3 else 0.5)
        weights[name] = array.astype(np.float32)
    return weights


def write_openai_checkpoint(directory: Path, hparams: dict, weights: dict[str, np.ndarray]) -> Path:
    """Save `weights` as OpenAI did: tf.compat.v1 variables under their scopes and a Saver."""
    import tensorflow as tf

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hparams.json").write_text(json.dumps(hparams), encoding="utf-8")
    graph = tf.Graph()
    with graph.as_default():
        variables = [tf.compat.v1.get_variable(name, initializer=tf.constant(array)) for name, array in weights.items()]
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(directory / "model.ckpt"))
    return directory


# ---- an independent float64 implementation of OpenAI's src/model.py ----

def _layer_norm(x, g, b, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * g + b


def _gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def reference_forward(weights: dict[str, np.ndarray], hparams: dict, ids: list[int]) -> dict[str, np.ndarray]:
    """logits [T, V], attention [L, H, T, T], residual [L+1, T, C] and what each block's
    attention and MLP add to the stream, attn_out and mlp_out [L, T, C], in float64."""
    w = {name: array.astype(np.float64) for name, array in weights.items()}
    T, H = len(ids), hparams["n_head"]
    x = w["model/wte"][ids] + w["model/wpe"][:T]
    mask = np.triu(np.full((T, T), -1e10), 1)
    residual, attention, attn_out, mlp_out = [x], [], [], []
    for layer in range(hparams["n_layer"]):
        p = lambda name: w[f"model/h{layer}/{name}"]  # noqa: E731
        a = _layer_norm(x, p("ln_1/g"), p("ln_1/b")) @ p("attn/c_attn/w")[0] + p("attn/c_attn/b")
        q, k, v = (m.reshape(T, H, -1).transpose(1, 0, 2) for m in np.split(a, 3, axis=-1))
        pattern = _softmax(q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1]) + mask)  # [H, T, T]
        attention.append(pattern)
        heads = (pattern @ v).transpose(1, 0, 2).reshape(T, -1)
        attn_out.append(heads @ p("attn/c_proj/w")[0] + p("attn/c_proj/b"))
        x = x + attn_out[-1]
        m = _gelu(_layer_norm(x, p("ln_2/g"), p("ln_2/b")) @ p("mlp/c_fc/w")[0] + p("mlp/c_fc/b"))
        mlp_out.append(m @ p("mlp/c_proj/w")[0] + p("mlp/c_proj/b"))
        x = x + mlp_out[-1]
        residual.append(x)
    logits = _layer_norm(x, w["model/ln_f/g"], w["model/ln_f/b"]) @ w["model/wte"].T
    return {"logits": logits, "attention": np.stack(attention), "residual": np.stack(residual),
            "attn_out": np.stack(attn_out), "mlp_out": np.stack(mlp_out)}
