"""Every forward pass the app asks of its big models, as plain functions (no Gradio here).

Each function takes the model store and plain values (names, token ids, numpy arrays) and
returns plain values. That is what lets the app run them anywhere: in the web server's own
process on a CPU or a GPU, or, on a ZeroGPU Space, in the short-lived worker process that
holds a GPU, which receives its arguments and sends its result back pickled (see
tabs/parts/shared.py, `Shared.run`). So none of them keeps state between calls or changes an
object it was given: what the app keeps, it keeps from the return value.

Figures are never built here: on ZeroGPU the visitor's GPU quota counts every second spent
inside these functions.

The small per-position views (one attention row, one block at one position, one head's
walk) are not here: they read `LoadedModel.view_model` directly, which on ZeroGPU is a copy
on the CPU (store.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch

import gpt2
from gpt2.device import model_device

from .analysis import LENS_TOP_K, Analysis, analyze
from .attribution import Attribution, Patching, logit_attribution, patch
from .compare import Comparison, compare
from .interventions import AblationResult, run_ablation
from .lens import LensResult, lens_of_rows
from .store import PARAMETERS, ModelStore

# What one call may take on a ZeroGPU Space (spaces.GPU's duration): a fixed part for the worker's
# start and the weights' move onto the GPU, then the work at a rate far below a GPU's, so that a
# busy GPU still finishes inside it. ZeroGPU schedules short calls first, so it is kept tight.
BASE_SECONDS = 10
FLOPS_PER_SECOND = 2e12
SECONDS_PER_TOKEN_GENERATED = 0.05  # one pass of one token is launch-bound on a GPU, not FLOP-bound
MAX_SECONDS = 120


def gpu_seconds(store: ModelStore, model_names, tokens: int, passes: int = 1, generated: int = 0) -> int:
    """The duration to ask ZeroGPU for: the models' size times the tokens they run, with room to spare."""
    names = [model_names] if isinstance(model_names, str) else list(model_names)
    params = sum(_parameters(store, name) for name in names)
    work = 2 * params * max(1, tokens) * max(1, passes) / FLOPS_PER_SECOND  # 2 FLOPs per weight per token
    return int(min(MAX_SECONDS, math.ceil(BASE_SECONDS + work + generated * SECONDS_PER_TOKEN_GENERATED)))


def _parameters(store: ModelStore, name: str) -> int:
    if name in PARAMETERS:
        return PARAMETERS[name]
    loaded = store.loaded(name)
    return loaded.model.num_parameters() if loaded is not None else PARAMETERS["124M"]


def analysis(store: ModelStore, model_name: str, prompt: str, lens_positions: int | None = None) -> Analysis:
    """One forward pass with hooks and the head statistics (and the logit lens of the last `lens_positions`
    positions, if given: on a GPU the app asks for it here; on a CPU it asks for it after Analyze's answer,
    with `lens`).

    Each token's surprise stays lazy where the model is at hand (it costs a T x n_vocab product
    that only the Surprise tab and some story cards read); an analysis pickled back from a ZeroGPU
    worker computes it there first (capture.Trace.__getstate__).
    """
    return analyze(store.get(model_name), prompt, lens_positions)


def lens(store: ModelStore, model_name: str, rows: np.ndarray, positions: np.ndarray) -> LensResult:
    """The logit lens of every layer's residual vectors at `positions`, rows [layer + 1, P, d_model]:
    only these rows travel to the GPU, not the whole stream."""
    return lens_of_rows(store.get(model_name).model, rows, np.arange(len(rows)), positions, k=LENS_TOP_K)


def ablation(store: ModelStore, model_name: str, token_ids: list[int], heads, mode: str) -> AblationResult:
    """The prompt again with some heads turned off (interventions.py)."""
    return run_ablation(store.get(model_name).model, token_ids, heads, mode=mode)


def attribution(store: ModelStore, model_name: str, token_ids: list[int], target: int | None,
                foil: int | None) -> Attribution:
    """The last position's logit of `target` (or its difference with `foil`'s) split into parts (attribution.py)."""
    return logit_attribution(store.get(model_name).model, token_ids, target, foil)


def patching(store: ModelStore, model_name: str, clean: list[int], corrupted: list[int], target: int, foil: int,
             site: str) -> Patching:
    """Every site of one kind patched from the clean run into the corrupted one (attribution.py)."""
    loaded = store.get(model_name)
    return patch(loaded.model, clean, corrupted, target, foil, site=site, tokenizer=loaded.tokenizer)


def comparison(store: ModelStore, name_a: str, name_b: str, prompt: str) -> Comparison:
    """One prompt through two models (compare.py); either may be a training snapshot (store.compare_choices)."""
    return compare(store.compare_model(name_a), store.compare_model(name_b), prompt)


@torch.inference_mode()
def next_logits(store: ModelStore, model_name: str, window: list[int]) -> np.ndarray:
    """The raw next-token logits [n_vocab] after a window of token ids: one step of step-by-step generation."""
    model = store.get(model_name).model
    ids = torch.tensor([window], device=model_device(model))
    return model(ids, last_only=True)[0, -1].float().cpu().numpy()


def generation(store: ModelStore, model_name: str, ids: list[int], max_new_tokens: int, temperature: float,
               top_k: int | None, top_p: float | None, seed: int | None):
    """The new tokens of a sampled continuation, one at a time, as gpt2.generate makes them."""
    model = store.get(model_name).model
    yield from gpt2.generate(model, ids, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                             seed=seed)
