"""Step-by-step generation: one token at a time, each drawn from a distribution the learner sees (no Gradio here).

`StepState` is the text so far and the random generator's state, kept per visitor; each step
reads the window `gpt2.generate` would read at that length, so stepping and streaming give the
same tokens for the same seed. The tree of branches a learner makes by picking other tokens is
in branching.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gpt2.device import model_device
from gpt2.generate import check_prompt, window_length

from .analysis import encode_prompt, labels_for
from .panels import distribution_figure
from .store import LoadedModel
from .validation import seed as parse_seed

@dataclass
class StepState:
    """The text being generated in step mode: its ids and the random generator's state."""

    model_name: str
    prompt: str  # the prompt it started from: another prompt starts over
    ids: list[int]
    generator_state: torch.Tensor
    prompt_length: int

    @property
    def steps_taken(self) -> int:
        return len(self.ids) - self.prompt_length


def start_steps(loaded: LoadedModel, prompt: str, seed) -> StepState:
    ids, _ = encode_prompt(loaded.tokenizer, prompt, loaded.model.config.n_ctx)
    generator = torch.Generator()
    seed = parse_seed(seed)
    generator.seed() if seed is None else generator.manual_seed(seed)
    return StepState(loaded.name, prompt, ids, generator.get_state(), len(ids))


def step_window(loaded: LoadedModel, state: StepState) -> list[int]:
    """The ids the next step reads: the window gpt2.generate sees at this length."""
    window = state.ids[-window_length(len(state.ids), loaded.model.config.n_ctx):]
    check_prompt(loaded.model, window)
    return window


@torch.inference_mode()
def next_step(loaded: LoadedModel, state: StepState, temperature, top_k, top_p, logits: np.ndarray | None = None):
    """Predict, draw and append one token; returns the figure of the distribution it came from.

    `logits` are the model's after `step_window` when they were computed elsewhere (model_runs.next_logits).
    """
    if logits is None:
        model, window = loaded.model, step_window(loaded, state)
        logits = model(torch.tensor([window], device=model_device(model)), last_only=True)[0, -1]
        logits = logits.float().cpu().numpy()
    generator = torch.Generator()
    generator.set_state(state.generator_state)
    figure, anatomy = distribution_figure(labels_for(loaded.tokenizer), logits, temperature, top_k, top_p,
                                          generator=generator,
                                          title_prefix=f"Step {state.steps_taken + 1}: ")
    state.ids.append(anatomy.chosen)
    state.generator_state = generator.get_state()
    return figure, anatomy
