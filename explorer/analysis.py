"""One analysed prompt: `analyze` runs the model once and computes what every panel needs (no Gradio here).

An `Analysis` holds the Trace of one forward pass (capture.py), every head's scores (heads.py)
and the logit lens of the last positions (lens.py). The app keeps it in the memory budget
(budget.py) and every panel (panels.py) redraws from it without running the model again;
only the lens window and a dropped analysis are computed anew. On ZeroGPU an Analysis is made
in the GPU worker and travels back pickled (model_runs.py), without the app's label cache.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

import gpt2

from . import plots
from .capture import Trace, capture
from .embeddings import pca_2d
from .heads import HeadScores, head_scores, pattern_scores
from .lens import LensResult, logit_lens
from .store import LoadedModel
from .tokens import display_token

# The logit lens projects (n_layer + 1) x positions vectors onto all 50,257 tokens: for 124M and
# 8 positions that is ~8 GFLOP, more than the forward pass of a 32-token prompt. So it covers the
# most recent positions, as many as the learner asks for (the Layers tab's window slider).
LENS_POSITIONS = 8


MAX_LENS_POSITIONS = 32


LENS_TOP_K = 5


@dataclass(eq=False)
class Analysis:
    """One analysed prompt: the trace, head statistics and logit lens, per user."""

    model_name: str
    prompt: str
    trace: Trace
    scores: HeadScores
    lens: LensResult | None  # None until a view asks for it (analyze's lens_positions)
    notice: str = ""  # e.g. that the prompt was truncated to the context
    lens_labels: list[list[list[str]]] = field(default_factory=list)
    label: TokenLabels | None = None  # the model's token labels (shared, not counted in the analysis' size)

    def __getstate__(self) -> dict:
        """Pickled (on ZeroGPU, from the GPU worker back to the app) without the label cache, which
        belongs to the app's tokenizer: `with_labels` puts it back."""
        state = dict(self.__dict__)
        state["label"] = None
        state.pop("overview_tiles", None)  # a figure's cache, made where figures are made
        return state

    def with_labels(self, tokenizer) -> "Analysis":
        """Give an analysis that travelled without it the shared label cache of its model's tokenizer."""
        if self.label is None:
            self.label = labels_for(tokenizer)
        return self

    @functools.cached_property
    def token_pca(self) -> tuple[np.ndarray, np.ndarray]:
        """The prompt's token embeddings on their first two principal components, and each one's share of the
        variance (embeddings.pca_2d): made once, for the Embeddings figure and its text."""
        return pca_2d(self.trace.tok_embed)

    @functools.cached_property
    def overview_tiles(self) -> np.ndarray:
        """Every head's pattern shrunk for the overview: made once, as the selected head does not change it."""
        return plots.overview_tiles(self.trace.attention)


class TokenLabels:
    """Display labels of one tokenizer's ids, cached: the lens and the bars ask for the same ids again and again.

    One instance per tokenizer (`labels_for`), so two models with different vocabularies never share labels.
    Slots and no __dict__: an analysis points at it without its size (budget.nbytes) counting the cache.
    """

    __slots__ = ("tokenizer", "_label")

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._label = functools.lru_cache(maxsize=1 << 16)(
            lambda token_id: display_token(tokenizer.decode_single_token_bytes(token_id)))

    def __call__(self, token_id: int) -> str:
        return self._label(int(token_id))


_labels_by_tokenizer: dict[int, TokenLabels] = {}


def labels_for(tokenizer) -> TokenLabels:
    labels = _labels_by_tokenizer.get(id(tokenizer))
    if labels is None or labels.tokenizer is not tokenizer:
        labels = _labels_by_tokenizer[id(tokenizer)] = TokenLabels(tokenizer)
    return labels


def encode_prompt(tokenizer, prompt: str, n_ctx: int) -> tuple[list[int], str]:
    """Token ids of a prompt, cut to the context if needed, and a notice saying so."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("Prompt: the prompt is empty: type some text first.")
    ids = tokenizer.encode(prompt)
    if len(ids) <= n_ctx:
        return ids, ""
    notice = (f"⚠️ The prompt has {len(ids)} tokens but GPT-2 reads at most {n_ctx}: "
              f"only the last {n_ctx} tokens are analysed.")
    return ids[-n_ctx:], notice


def analyze(loaded: LoadedModel, prompt: str, lens_positions: int | None = LENS_POSITIONS) -> Analysis:
    """Run the prompt through the model once and compute the statistics the panels show.

    With `lens_positions=None` the logit lens is left for later (`update_lens`): it projects every
    layer onto the whole vocabulary, which costs as much as the forward pass of a short prompt, and
    only the Layers tab shows it. On a CPU the app makes it right after Analyze's answer (ui.py's
    follow-up)."""
    tokenizer = loaded.tokenizer
    ids, notice = encode_prompt(tokenizer, prompt, loaded.model.config.n_ctx)
    trace = capture(loaded.model, ids, tokenizer, score_patterns=pattern_scores)
    analysis = Analysis(loaded.name, prompt, trace, head_scores(trace, loaded.induction), None, notice,
                        label=labels_for(tokenizer))
    return analysis if lens_positions is None else update_lens(loaded, analysis, lens_positions)


def analysis_bytes(config: gpt2.GPTConfig, n_tokens: int) -> int:
    """About what an analysis of `n_tokens` tokens will hold: the attention pattern (float16) and the
    residual stream before, between and after blocks (float32), the embeddings and the last position's
    logits; for the budget."""
    attention = config.n_layer * config.n_head * n_tokens * n_tokens * 2
    streams = (2 * config.n_layer + 3) * n_tokens * config.n_embd * 4
    return attention + streams + config.n_vocab * 4


def lens_window(analysis: Analysis, n_positions) -> np.ndarray:
    """The positions the logit lens covers: the last `n_positions` (1 to MAX_LENS_POSITIONS)."""
    try:
        n_positions = int(n_positions)
    except (TypeError, ValueError):
        raise ValueError("the logit-lens window must be a whole number of positions") from None
    if not 1 <= n_positions <= MAX_LENS_POSITIONS:
        raise ValueError(f"the logit-lens window must be 1 to {MAX_LENS_POSITIONS} positions")
    n_tokens = analysis.trace.n_tokens
    return np.arange(max(0, n_tokens - n_positions), n_tokens)


def set_lens(analysis: Analysis, lens: LensResult) -> Analysis:
    """Keep a lens on the analysis, with its tokens' labels."""
    analysis.lens = lens
    analysis.lens_labels = [[[analysis.label(i) for i in cell] for cell in row] for row in lens.top_ids]
    return analysis


def update_lens(loaded: LoadedModel, analysis: Analysis, n_positions) -> Analysis:
    """Compute the logit lens for the last `n_positions` positions (1 to MAX_LENS_POSITIONS)."""
    positions = lens_window(analysis, n_positions)
    return set_lens(analysis, logit_lens(loaded.model, analysis.trace, positions=positions, k=LENS_TOP_K))
