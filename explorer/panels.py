"""What each panel of the app shows, computed from an analysis (analysis.py; no Gradio here).

Each function turns an Analysis plus the learner's current selection (layer, head, sampling
settings) into figures and filled-in teaching text. None runs the model's forward pass: these
are what sliders call, so they stay cheap. A few read the model's weights for one position
(the attention scores of one query row, the embeddings' cosine baseline), through
`LoadedModel.view_model`.
"""

from __future__ import annotations

import html
import weakref

import numpy as np
import torch

import gpt2
from gpt2.generate import slide_keep

from . import plots, teaching, validation
from .analysis import MAX_LENS_POSITIONS, Analysis, TokenLabels
from .capture import Trace
from .embeddings import cosine_similarity
from .heads import BROAD_ENTROPY, LABEL_RULES, HeadScores, attention_scores_row
from .interventions import moved_most, surprise_change
from .model_facts import ModelFacts
from .store import LoadedModel
from .sampling import sampling_anatomy
from .tokens import describe_bytes

BAR_TOKENS = 25  # tokens drawn in the next-token bar chart


def status_line(loaded: LoadedModel, analysis: Analysis | None = None) -> str:
    line = loaded.describe()
    if analysis is not None:
        n = analysis.trace.n_tokens
        line += f" · prompt: {n} token{'' if n == 1 else 's'}"
        if analysis.notice:
            line += f"\n\n{analysis.notice}"
    return line


# ---- tokens ----

def token_chips(trace: Trace) -> str:
    """The prompt as coloured chips; hovering one shows its id and bytes."""
    chips = []
    for position, (token_id, piece, text) in enumerate(zip(trace.token_ids, trace.token_bytes, trace.tokens)):
        tip = html.escape(f"position {position} · id {token_id} · bytes {describe_bytes(piece)}", quote=True)
        chips.append(f'<span class="token-chip c{position % 6}" title="{tip}">'
                     f'<span class="token-text">{html.escape(text)}</span>'
                     f'<span class="token-id">{token_id}</span></span>')
    return f'<div class="token-chips">{"".join(chips)}</div>'


def _plural(n: int) -> str:
    return "" if n == 1 else "s"


def tokens_text(trace: Trace, facts: ModelFacts) -> str:
    """How BPE cut the prompt, with the merges and the special token of this model's own tokenizer."""
    # Show the first token that has a leading space, if any: it teaches the most.
    spaced = [i for i, piece in enumerate(trace.token_bytes) if piece.startswith(b" ")]
    example = spaced[0] if spaced else 0
    partial = [text for text in trace.tokens if "⟨" in text]  # display_token marks incomplete UTF-8 in hex
    return teaching.render(
        "tokens", when={"has_space": bool(spaced), "has_partial": bool(partial)},
        n_chars=len(b"".join(trace.token_bytes).decode("utf-8", "replace")), n_tokens=trace.n_tokens,
        tokens_plural=_plural(trace.n_tokens), n_vocab=trace.config.n_vocab, example_token=trace.tokens[example],
        example_id=int(trace.token_ids[example]), example_bytes=describe_bytes(trace.token_bytes[example]),
        partial_token=partial[0] if partial else "", n_merges=facts.n_merges, tokenizer_words=facts.tokenizer_words,
        n_special=facts.n_special, special_plural=_plural(facts.n_special), special_token=facts.special_token,
        special_id=facts.special_id)


# ---- embeddings ----

def embedding_figures(analysis: Analysis, loaded: LoadedModel) -> dict:
    trace, tokens = analysis.trace, analysis.trace.tokens
    return {
        "token": plots.embedding_heatmap(trace.tok_embed, tokens, "Token embeddings W_te[t]"),
        "position": plots.embedding_heatmap(trace.pos_embed, tokens, "Position embeddings W_pe[i]"),
        "sum": plots.embedding_heatmap(trace.embed, tokens, "Their sum x₀ = W_te[t] + W_pe[i]"),
        "pca": plots.embedding_pca(trace.tok_embed, tokens, "Your tokens' embeddings, 2-D PCA", pca=analysis.token_pca),
        "curve": plots.position_embedding_curve(loaded.wpe, trace.n_tokens, pca=loaded.position_pca),
        "cosine": plots.cosine_similarity_heatmap(trace.tok_embed, tokens, "Cosine similarity of token embeddings"),
    }


RANDOM_PAIRS = 2000  # token pairs drawn to measure the cosine of unrelated tokens


def random_pair_cosine(wte: torch.Tensor, n_pairs: int = RANDOM_PAIRS, seed: int = 0) -> float:
    """Mean cosine between the embeddings of random pairs of different tokens: the baseline for "similar"."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randint(0, len(wte), (n_pairs,), generator=generator)
    b = (a + torch.randint(1, len(wte), (n_pairs,), generator=generator)) % len(wte)  # never the same token
    x, y = wte[a.to(wte.device)].double(), wte[b.to(wte.device)].double()
    return float(torch.nn.functional.cosine_similarity(x, y, dim=-1).mean())


def position_neighbour_cosines(wpe: np.ndarray) -> tuple[float, float, int]:
    """Mean cosine of neighbouring position vectors, of vectors `gap` positions apart, and that gap."""
    unit = wpe / np.maximum(np.linalg.norm(wpe, axis=-1, keepdims=True), 1e-12)
    gap = max(1, len(wpe) // 2)
    near = float((unit[:-1] * unit[1:]).sum(-1).mean()) if len(wpe) > 1 else float("nan")
    far = float((unit[:-gap] * unit[gap:]).sum(-1).mean()) if len(wpe) > gap else float("nan")
    return near, far, gap


# W_te and W_pe rarely change, so their measurements are kept per model, and remade when
# an in-place edit (training) bumps either tensor's version counter.
_embedding_baselines: "weakref.WeakKeyDictionary[gpt2.GPT2, tuple]" = weakref.WeakKeyDictionary()


def embedding_baselines(loaded: LoadedModel) -> tuple[float, tuple[float, float, int]]:
    """(random-pair cosine of W_te, position_neighbour_cosines of W_pe) for the loaded model, cached."""
    model = loaded.view_model  # read where the weights are readable (on ZeroGPU, the CPU copy)
    version = (model.wte.weight._version, model.wpe.weight._version)
    kept = _embedding_baselines.get(model)
    if kept is None or kept[0] != version:
        kept = (version, random_pair_cosine(model.wte.weight.detach()), position_neighbour_cosines(loaded.wpe))
        _embedding_baselines[model] = kept
    return kept[1], kept[2]


def _position_sentence(loaded: LoadedModel | None) -> str:
    if loaded is None:
        return "The curve shows whether it learned similar vectors for neighbouring positions."
    near, far, gap = embedding_baselines(loaded)[1]
    measured = (f"In this model neighbouring positions have cosine {near:.2f} on average, positions {gap:,} "
                f"apart {far:.2f}")
    if near > far + 0.1:
        return measured + ": it learned similar vectors for neighbouring positions, so the curve is smooth."
    return measured + ": neighbours are no more alike than distant positions (as in an untrained model)."


def _baseline_sentence(loaded: LoadedModel | None) -> str:
    if loaded is None:
        return ""
    baseline = embedding_baselines(loaded)[0]
    sentence = f"For scale: two tokens drawn at random from the vocabulary have cosine {baseline:.2f} on average here"
    if baseline > 0.1:
        return sentence + " (the token vectors share a common direction), so compare with that, not with 0."
    return sentence + ", so a cosine near 0 means unrelated."


def embeddings_text(analysis: Analysis, loaded: LoadedModel | None = None) -> str:
    """The embeddings explanation; with the loaded model it also measures W_pe and a cosine baseline."""
    trace = analysis.trace
    similarity = cosine_similarity(trace.tok_embed)
    different = trace.token_ids[:, None] != trace.token_ids[None, :]
    similar_sentence = "Your prompt has only one distinct token, so there is no pair to compare."
    if different.any():
        masked = np.where(different, similarity, -np.inf)
        i, j = np.unravel_index(np.argmax(masked), masked.shape)
        similar_sentence = (f"The most similar pair of different tokens here is **{trace.tokens[i]}** and "
                            f"**{trace.tokens[j]}** ({similarity[i, j]:.2f}).")
    c = trace.config
    _, variance = analysis.token_pca
    return teaching.render(
        "embeddings", n_embd=c.n_embd, n_vocab=c.n_vocab, n_ctx=c.n_ctx, first_token=trace.tokens[0],
        first_id=int(trace.token_ids[0]), n_tokens=trace.n_tokens, pca_share=float(variance.sum()),
        tok_norm=float(np.linalg.norm(trace.tok_embed[0])), pos_norm=float(np.linalg.norm(trace.pos_embed[0])),
        similar_sentence=similar_sentence, position_sentence=_position_sentence(loaded),
        baseline_sentence=_baseline_sentence(loaded))


# ---- attention ----

def check_head(analysis: Analysis, layer, head) -> tuple[int, int]:
    """Layer and head of this analysis' model as indices, or a ValueError naming the field and its range."""
    c = analysis.trace.config
    return validation.layer_and_head(layer, head, c.n_layer, c.n_head)


def head_pattern(analysis: Analysis, layer: int, head: int, mean_over_heads: bool) -> np.ndarray:
    attention = analysis.trace.attention[layer]
    return attention.astype(np.float32).mean(0) if mean_over_heads else attention[head]


def attention_heatmap(analysis: Analysis, layer: int, head: int, mean_over_heads: bool, query: int):
    trace = analysis.trace
    name = f"mean of {trace.config.n_head} heads" if mean_over_heads else f"head {head}"
    title = f"Layer {layer}, {name}" + ("" if mean_over_heads else f" ({head_title_label(analysis.scores, layer, head)})")
    pattern = head_pattern(analysis, layer, head, mean_over_heads)
    return plots.attention_heatmap(pattern, trace.tokens, title, query=query,
                                   exact_weights_at="the outlined row's largest, in the score table")


def attention_overview(analysis: Analysis, layer: int, head: int):
    return plots.attention_overview(analysis.trace.attention, analysis.scores.labels(), selected=(layer, head),
                                    tiles=analysis.overview_tiles)


def attention_figures(analysis: Analysis, layer: int, head: int, mean_over_heads: bool, query: int) -> tuple:
    """The selected head's heatmap and the overview of all heads, with the selected one framed."""
    return (attention_heatmap(analysis, layer, head, mean_over_heads, query),
            attention_overview(analysis, layer, head))


def head_scores_figure(analysis: Analysis):
    s = analysis.scores
    return plots.head_scores_heatmap({"previous_token": s.previous_token, "first_token": s.first_token,
                                      "self": s.self, "induction": s.induction, "entropy": s.entropy})


def clamp_query(analysis: Analysis, query) -> int:
    """A query position inside the prompt; None or anything past the end means the last token."""
    try:
        query = int(query)
    except (TypeError, ValueError):
        return analysis.trace.n_tokens - 1
    return min(max(query, 0), analysis.trace.n_tokens - 1)


def _score_table(trace: Trace, weights: np.ndarray, scores: np.ndarray | None, rows: int = 6) -> str:
    """A markdown table of the keys with the largest weights, and what the rest share."""
    order = np.argsort(-weights, kind="stable")[:rows]
    header = "| key j | token | score qᵢ·kⱼ/√d | weight |\n|---:|---|---:|---:|"
    lines = [f"| {j} | {trace.tokens[j]} | {'—' if scores is None else f'{scores[j]:.2f}'} | {weights[j]:.3f} |"
             for j in order]
    rest = len(weights) - len(order)
    if rest > 0:
        lines.append(f"| … | {rest} more keys | | {max(0.0, 1 - weights[order].sum()):.3f} |")
    return "\n".join([header, *lines])


def attention_text(loaded: LoadedModel, analysis: Analysis, layer: int, head: int, mean_over_heads: bool,
                   query: int) -> str:
    trace = analysis.trace
    weights = head_pattern(analysis, layer, head, mean_over_heads)[query, : query + 1].astype(np.float64)
    # An average of softmaxes has no single score row: the table then shows weights only.
    scores = None if mean_over_heads else attention_scores_row(loaded.view_model, trace, layer, head, query)
    nonzero = weights[weights > 0]
    entropy = float(-(nonzero * np.log2(nonzero)).sum())
    c = trace.config
    n_rows = max(0, trace.n_tokens - 2)  # heads.pattern_scores averages over queries 2 .. T-1
    return teaching.render(
        "attention", when={"few_rows": 0 < n_rows < FEW_SCORE_ROWS, "no_rows": n_rows == 0},
        n_head=c.n_head, n_layer=c.n_layer, d_head=c.d_head, layer=layer,
        head_name=f"the mean of all {c.n_head} heads" if mean_over_heads else f"head {head}",
        query_token=trace.tokens[query], query_pos=query, score_table=_score_table(trace, weights, scores),
        entropy_bits=entropy, effective_keys=2**entropy,
        label_sentence="" if mean_over_heads else head_label_sentence(analysis.scores, layer, head),
        label_rules=label_rules_text(), n_rows=n_rows, rows_plural=_plural(n_rows),
        rows_span="query 2" if n_rows == 1 else f"queries 2 to {trace.n_tokens - 1}",
        n_tokens=trace.n_tokens, tokens_plural=_plural(trace.n_tokens))


FEW_SCORE_ROWS = 8  # fewer query rows than this: the head scores are an average of too little
# What each head score measures, for the label rules (heads.LABEL_RULES holds the thresholds).
SCORE_MEANINGS = {
    "induction": "mean weight on the token after the earlier copy, measured on a random token sequence "
                 "repeated twice, not on your prompt",
    "previous_token": "mean weight on position i − 1",
    "first_token": "mean weight on position 0",
    "self": "mean weight on its own position",
}


def label_rules_text() -> str:
    """The label rules as a learner reads them, from heads.LABEL_RULES: the first rule that holds wins."""
    rules = [f"- **{name}**: score ≥ {threshold:g}, the {SCORE_MEANINGS[field]}"
             for name, field, threshold in LABEL_RULES]
    return "\n".join([
        "A head gets the first of these labels whose score passes its threshold (position scores average over "
        "the query rows from position 2 on):", "", *rules,
        f"- otherwise **broad** if its attention is spread nearly evenly (normalised entropy ≥ {BROAD_ENTROPY:g}), "
        "else **mixed**."])


def head_title_label(scores: HeadScores, layer: int, head: int) -> str:
    """A head's label for a figure title, saying where an induction label comes from (not this prompt)."""
    label = scores.label(layer, head)
    return "induction, on a repeated random sequence" if label == "induction" else label


def head_label_sentence(scores: HeadScores, layer: int, head: int) -> str:
    """Why the selected head has its label, with the score that earned it."""
    label = scores.label(layer, head)
    for name, field, threshold in LABEL_RULES:
        if name == label:
            value = float(getattr(scores, field)[layer, head])
            where = " (from the repeated random sequence, not from your prompt)" if field == "induction" else ""
            return f"This head is labelled **{label}**: its {field.replace('_', '-')} score is {value:.2f}{where}."
    entropy = float(scores.entropy[layer, head])
    return (f"This head is labelled **{label}**: no score passes its threshold, and its normalised entropy is "
            f"{entropy:.2f}.")


# ---- layers ----

def layer_figures(analysis: Analysis) -> tuple:
    trace, lens = analysis.trace, analysis.lens
    layer_names = plots.residual_layer_names(trace.config.n_layer)
    position_labels = [f"{p}:{trace.tokens[p]}" for p in lens.positions]
    return (
        plots.residual_norm_heatmap(trace.residual_norms, trace.tokens),
        plots.layer_contributions(trace.attn_out_norms, trace.mlp_out_norms, position=trace.n_tokens - 1),
        plots.logit_lens_grid(analysis.lens_labels, lens.top_probs, [layer_names[l] for l in lens.layers],
                              position_labels, max_positions=MAX_LENS_POSITIONS),  # every position the slider asks for
    )


def layers_text(analysis: Analysis) -> str:
    trace, lens = analysis.trace, analysis.lens
    norms = trace.residual_norms[:, -1]
    top_per_layer = lens.top_ids[:, -1, 0]  # top-1 at the last position, per layer
    final = top_per_layer[-1]
    first = int(np.argmax(top_per_layer == final))  # lens rows: 0 = embeddings, r = after block r - 1
    if first == 0:
        lens_sentence = "The lens already puts it on top when reading the embeddings."
    else:
        lens_sentence = f"The lens first puts it on top after block {first - 1}."
    mlp_layer, attn_layer = int(np.argmax(trace.mlp_out_norms[:, -1])), int(np.argmax(trace.attn_out_norms[:, -1]))
    return teaching.render(
        "layers", n_layer=trace.config.n_layer, last_block=trace.config.n_layer - 1, last_token=trace.tokens[-1],
        embed_norm=float(norms[0]), final_norm=float(norms[-1]), norm_change=norm_change(norms[0], norms[-1]),
        biggest_mlp_layer=mlp_layer, biggest_mlp_norm=float(trace.mlp_out_norms[mlp_layer, -1]),
        biggest_attn_layer=attn_layer, biggest_attn_norm=float(trace.attn_out_norms[attn_layer, -1]),
        final_top_token=f"{analysis.label(int(final))}", lens_sentence=lens_sentence)


def norm_change(start: float, end: float) -> str:
    """"grows 3.2×", "shrinks to 0.4×" or "stays about the same": the verb follows the numbers."""
    ratio = end / start if start > 0 else float("inf")
    if ratio > 1.1:
        return f"grows {ratio:.1f}×"
    if ratio < 0.9:
        return f"shrinks to {ratio:.2f}×"
    return "stays about the same"


# ---- next token ----

def parse_sampling(temperature, top_k, top_p) -> tuple[float, int | None, float | None]:
    """Slider values as sampler settings: top-k 0 and top-p 1 mean "off"."""
    try:
        temperature, top_k, top_p = float(temperature), int(top_k or 0), float(top_p if top_p is not None else 1.0)
    except (TypeError, ValueError):
        raise ValueError("temperature, top-k and top-p must be numbers") from None
    # 0 and 1 switch the filters off; other out-of-range values reach validate_sampling and are refused there.
    return temperature, (None if top_k == 0 else top_k), (None if top_p == 1.0 else top_p)


def most_likely(probs: np.ndarray, n: int) -> np.ndarray:
    """Ids of the n most likely tokens, most likely first; equal probabilities in id order.

    The same order as a stable sort of the whole vocabulary, at a fraction of its cost:
    only the tokens at least as likely as the n-th are sorted.
    """
    if n >= len(probs):
        return np.argsort(-probs, kind="stable")
    threshold = np.partition(probs, len(probs) - n)[len(probs) - n]  # the n-th largest value
    candidates = np.flatnonzero(probs >= threshold)  # ascending ids, ties at the threshold included
    return candidates[np.argsort(-probs[candidates], kind="stable")][:n]


def distribution_figure(label: TokenLabels, logits: np.ndarray, temperature, top_k, top_p, seed=None, generator=None,
                        title_prefix=""):
    """Bars of the most likely tokens before and after truncation, and the anatomy behind them."""
    t, k, p = parse_sampling(temperature, top_k, top_p)
    anatomy = sampling_anatomy(logits, t, k, p, seed=validation.seed(seed), generator=generator)
    order = most_likely(anatomy.probs_tempered, BAR_TOKENS)
    chosen = None
    if anatomy.chosen is not None:
        if anatomy.chosen not in order:  # a long-shot draw: show it in the last bar so the pick is always visible
            order[-1] = anatomy.chosen
        chosen = int(np.nonzero(order == anatomy.chosen)[0][0])
    kept = f"{anatomy.n_kept:,} token{'' if anatomy.n_kept == 1 else 's'} kept"
    title = (f"{title_prefix}{kept} ({percent(anatomy.kept_mass)} of the mass) · "
             f"entropy {anatomy.entropy_before:.2f} → {anatomy.entropy_after:.2f} bits")
    figure = plots.next_token_bars([label(i) for i in order], anatomy.probs_tempered[order],
                                   anatomy.probs_final[order], anatomy.kept[order], title, chosen=chosen)
    return figure, anatomy


def percent(p: float) -> str:
    """A probability as a percentage a learner can read: "12.3%", and "0.0047%" rather than "0.0%"."""
    if p >= 0.001 or p == 0:
        return f"{p:.1%}"
    return f"{p * 100:.2g}%"


def next_token_text(trace: Trace, anatomy, label: TokenLabels) -> str:
    top = int(np.argmax(trace.next_token_probs))
    effective = 2**anatomy.entropy_after  # the perplexity of what is sampled from
    return teaching.render(
        "next_token", temperature=anatomy.temperature, top_k=anatomy.top_k or "off", top_p=anatomy.top_p or "off",
        top_token=label(top), top_prob=percent(float(trace.next_token_probs[top])), n_kept=anatomy.n_kept,
        kept_mass=percent(anatomy.kept_mass), entropy_before=anatomy.entropy_before,
        entropy_after=anatomy.entropy_after,
        effective_after=f"{effective:.1f}" if effective < 10 else f"{effective:,.0f}",
        temperature_example=temperature_example(trace.logits, anatomy.temperature, label))


def _times(x: float) -> str:
    return f"{x:,.1f}" if x < 1e6 else f"{x:.2g}"


def temperature_example(logits: np.ndarray, temperature: float, label) -> str:
    """What temperature does to this prompt's two most likely tokens (`label`: id -> display string)."""
    first, second = most_likely(logits.astype(np.float64), 2)
    gap = float(logits[first]) - float(logits[second])
    a, b = label(int(first)), label(int(second))
    text = (f"Here the two most likely tokens, **{a}** and **{b}**, differ by z₁ − z₂ = {gap:.2f}: at T = 1 "
            f"**{a}** is e^{gap:.2f} = {_times(np.exp(min(gap, 700)))} times as likely")
    if temperature == 0:
        return text + f"; at T = 0 only **{a}** remains."
    if temperature == 1:
        return text + "."
    scaled = gap / temperature
    ratio = _times(np.exp(min(scaled, 700)))
    return text + f"; at T = {temperature:g} the ratio is e^({gap:.2f}/{temperature:g}) = {ratio}."


def surprise_text(trace: Trace, surprise: np.ndarray, facts: ModelFacts, rows: int = 8) -> str:
    """Surprise = loss on the prompt itself: `surprise[i]` = −ln p(t_{i+1} | t_0..t_i) in nats, length T − 1."""
    surprise = np.asarray(surprise, dtype=np.float64)
    if len(surprise) != trace.n_tokens - 1:
        raise ValueError(f"surprise must have one value per target, {trace.n_tokens - 1}; got {len(surprise)}")
    n_vocab = trace.config.n_vocab
    if len(surprise) == 0:
        return ("**Surprise = loss.** With one token there is nothing to predict inside the prompt: add a second "
                f"token. (A model that knew nothing would have surprise ln {n_vocab:,} = {np.log(n_vocab):.2f} nats "
                "at every position.)")
    worst, best = int(np.argmax(surprise)), int(np.argmin(surprise))
    mean = float(surprise.mean())
    return teaching.render(
        "surprise", when={"repeats": bool(facts.repeats)}, trained_on=facts.trained_on, repeats=facts.repeats,
        shift_table=shift_table(trace, surprise, rows), n_targets=len(surprise),
        targets_plural=_plural(len(surprise)),
        worst_token=trace.tokens[worst + 1], worst_prob=percent(float(np.exp(-surprise[worst]))),
        worst_surprise=float(surprise[worst]), best_token=trace.tokens[best + 1],
        best_prob=percent(float(np.exp(-surprise[best]))), best_surprise=float(surprise[best]),
        mean_nats=mean, mean_bits=mean / np.log(2), perplexity=float(np.exp(mean)), n_vocab=n_vocab,
        uniform_nats=float(np.log(n_vocab)))


def shift_table(trace: Trace, surprise: np.ndarray, rows: int = 8) -> str:
    """Inputs over targets, shifted by one, with p(target) and its surprise: the first `rows` positions."""
    shown = min(rows, len(surprise))
    cells = range(shown)
    more = " … |" if shown < len(surprise) else ""
    lines = ["| position | " + " | ".join(str(i) for i in cells) + " |" + more,
             "|---|" + "---|" * shown + ("---|" if more else ""),
             "| input tᵢ | " + " | ".join(trace.tokens[i] for i in cells) + " |" + more,
             "| target tᵢ₊₁ | " + " | ".join(trace.tokens[i + 1] for i in cells) + " |" + more,
             "| p(target) | " + " | ".join(percent(float(np.exp(-surprise[i]))) for i in cells) + " |" + more,
             "| surprise | " + " | ".join(f"{surprise[i]:.2f}" for i in cells) + " |" + more]
    return "\n".join(lines)


def generate_text(config: gpt2.GPTConfig) -> str:
    return teaching.render("generate", n_ctx=config.n_ctx, window=slide_keep(config.n_ctx))


# ---- experiments ----

ABLATION_BARS = 12  # tokens in the before/after chart
MOVED_TOKENS = 10


def ablation_figures(analysis: Analysis, result) -> dict:
    """Figures for an ablation (interventions.run_ablation on this analysis's tokens) against the clean run.

    "bars": the most likely tokens before or after, side by side; "moved": the tokens whose
    probability changed most; "surprise": each token's surprise with the ablation in place.
    """
    trace = analysis.trace
    before, after = trace.next_token_probs, result.probs
    shown = np.union1d(most_likely(before, ABLATION_BARS // 2), most_likely(after, ABLATION_BARS // 2))
    shown = shown[np.argsort(-np.maximum(before[shown], after[shown]), kind="stable")]
    moved = moved_most(before, after, MOVED_TOKENS)
    what = result.ablation.describe()
    return {
        "bars": plots.before_after_bars([analysis.label(int(i)) for i in shown], before[shown], after[shown],
                                        f"Next token with {what}", after_name="ablated"),
        "moved": plots.moved_most_bars([analysis.label(m.token_id) for m in moved], np.array([m.before for m in moved]),
                                       np.array([m.after for m in moved]), "The tokens whose probability moved most"),
        "surprise": plots.surprise_tokens(trace.tokens, result.token_surprise, f"{analysis.model_name} (ablated)"),
    }


HURT_ROWS = 6  # tokens listed in the ablation's "most hurt" table


def ablation_text(analysis: Analysis, result) -> str:
    """What turning the components off changed, in this prompt's own numbers: the next token whose
    probability moved most, the top next token, the loss on the prompt, and the tokens whose surprise
    rose most (the ones that needed them)."""
    trace, label = analysis.trace, analysis.label
    before, after = trace.next_token_probs, result.probs
    top_before, top_after = int(np.argmax(before)), int(np.argmax(after))
    lines = [f"**Turned off:** {result.ablation.describe()}. Everything else ran as before, in the same single "
             "forward pass; no weight was changed.", ""]
    # The lesson first: the next token whose probability moved most (often not the top one).
    moved = int(np.argmax(np.abs(after.astype(np.float64) - before.astype(np.float64))))
    lines.append(f"**Largest change in the next token:** p(**{label(moved)}**) {percent(float(before[moved]))} → "
                 f"{percent(float(after[moved]))}.")
    if top_before == top_after:
        lines.append(f"The most likely next token stays **{label(top_before)}**: {percent(float(before[top_before]))} "
                     f"→ {percent(float(after[top_after]))}.")
    else:
        lines.append(f"The most likely next token changes from **{label(top_before)}** "
                     f"({percent(float(before[top_before]))}) to **{label(top_after)}** "
                     f"({percent(float(after[top_after]))}).")
    change = surprise_change(trace.token_surprise, result.token_surprise)
    if not len(change.before):
        lines.append("\nWith one token there is no loss on the prompt to compare: add a few tokens.")
        return "\n".join(lines)
    lines += ["", f"**Loss on the prompt** (mean surprise per token): {change.mean_before:.3f} → "
              f"{change.mean_after:.3f} nats, perplexity {change.perplexity_before:.1f} → "
              f"{change.perplexity_after:.1f}. Look at the tokens below: their surprise rose most, so the model "
              "needed what was turned off to predict them. A head that completes repeats (induction) hurts the "
              "second copy of a repeated phrase; a previous-token head hurts almost everywhere.", "",
              "| position | token | surprise before | after | change |", "|---|---|---|---|---|"]
    for i in change.most_hurt(HURT_ROWS):
        lines.append(f"| {i + 1} | {trace.tokens[i + 1]} | {change.before[i]:.2f} | {change.after[i]:.2f} | "
                     f"{change.after[i] - change.before[i]:+.2f} |")
    return "\n".join(lines)


HEAD_KINDS = [name for name, _, _ in LABEL_RULES] + ["broad", "mixed"]  # every label HeadScores.label gives


def comparison_figures(comparison) -> dict:
    """Figures for compare.Comparison, one of each per model ("a", "b"): next-token bars, surprise, head types."""
    figures = {}
    for key, side in (("a", comparison.a), ("b", comparison.b)):
        figures[key] = {
            "bars": plots.top_token_bars(side.top_tokens, side.top_probs, f"{side.name}: next token"),
            "surprise": plots.surprise_tokens(side.tokens, side.token_surprise, side.name),
            "heads": plots.head_type_map(side.head_labels, HEAD_KINDS,
                                         f"{side.name}: where each head looks on this prompt"),
        }
    return figures


def comparison_text(comparison) -> str:
    a, b = comparison.a, comparison.b
    lines = [comparison.note, ""]
    lines += [f"*{side.notice}*" for side in (a, b) if side.notice]
    lines.append(f"Most likely next token: **{a.top_tokens[0]}** ({percent(float(a.top_probs[0]))}) for {a.name}, "
                 f"**{b.top_tokens[0]}** ({percent(float(b.top_probs[0]))}) for {b.name}. Look at the surprise maps "
                 "for the tokens one model found easy and the other hard, and at the head maps for the kinds of "
                 "head each model has on this prompt (labels from the prompt's own attention, except induction, "
                 "which comes from a repeated random sequence).")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- who voted for this token

ATTRIBUTION_CHOICES = 10  # the most likely next tokens offered as the token to split (and as its foil)
MAX_TOKEN_TEXT = 100  # characters a typed token may have


def token_choices(analysis: Analysis, n: int = ATTRIBUTION_CHOICES) -> list[tuple[str, str]]:
    """(label, value) of the n most likely next tokens, for a dropdown: the value is the token id as text."""
    probs = analysis.trace.next_token_probs
    return [(f"{analysis.label(i)} · {percent(float(probs[i]))}", str(int(i))) for i in most_likely(probs, n)]


def resolve_token(tokenizer, n_vocab: int, value, field: str, optional: bool = False) -> int | None:
    """A token the visitor picked or typed: an id from the list, or text that is exactly one token."""
    if value is None or (isinstance(value, str) and value == "" and optional):
        if optional:
            return None
        raise validation.BadInput(f"{field}: pick a token from the list, or type one")
    if not isinstance(value, str) or len(value) > MAX_TOKEN_TEXT:
        raise validation.BadInput(f"{field} must be a token: pick one from the list or type one (at most "
                                  f"{MAX_TOKEN_TEXT} characters)")
    if value.isdigit():
        token_id = int(value)
        if token_id >= n_vocab:
            raise validation.BadInput(f"{field}: token id {token_id:,} does not exist; this model's ids are "
                                      f"0–{n_vocab - 1:,}")
        return token_id
    ids = tokenizer.encode(value, allowed_special="all")
    if len(ids) != 1:
        pieces = ", ".join(repr(tokenizer.decode([i])) for i in ids) or "no token"
        raise validation.BadInput(f"{field}: {value!r} is {len(ids)} tokens for this model ({pieces}); it must be "
                                  "exactly one. Mind the leading space: ' Mary' and 'Mary' are different tokens.")
    return ids[0]


def _signed(x: float) -> str:
    return f"{x:+.2f}".replace("-", "−")


def attribution_figures(attribution, label) -> dict:
    """The heads' map and the per-layer bars of one attribution; `label` names token ids."""
    what = (f"logit({label(attribution.target)}) − logit({label(attribution.foil)})" if attribution.foil is not None
            else f"the logit of {label(attribution.target)}")
    by_layer = attribution.by_layer()
    return {
        "heads": plots.attribution_heads(attribution.heads, f"What each head wrote into {what}",
                                         note="red pushed it up, blue pushed it down; hover for the numbers"),
        "layers": plots.attribution_layers(attribution.embed, by_layer["heads"], by_layer["mlps"], attribution.rest,
                                           "The same parts, by layer"),
    }


def top_heads(attribution, n: int = 3) -> list[tuple[int, int, float]]:
    """The n heads with the largest parts in size, (layer, head, part), largest first."""
    heads = attribution.heads
    order = np.argsort(-np.abs(heads), axis=None, kind="stable")[:n]
    return [(int(i // heads.shape[1]), int(i % heads.shape[1]), float(heads.flat[i])) for i in order]


def attribution_text(attribution, label, config) -> str:
    """What the split says, with this prompt's numbers, and what it does not say (assets/teaching/attribution.md)."""
    a = attribution
    if a.foil is None:
        head = f"At the last position the model gives **{label(a.target)}** a logit of {a.logit:.2f}"
    else:
        head = (f"At the last position the model prefers **{label(a.target)}** to **{label(a.foil)}** by "
                f"{_signed(a.logit)} in logits (the difference of their two logits)")
    largest = ", ".join(f"{name} {_signed(value)}" for name, value in a.parts()[:5])
    return teaching.render("attribution", when={"no_foil": a.foil is None}, head=head,
                           n_heads=config.n_layer * config.n_head, n_layer=config.n_layer, sigma=a.sigma,
                           total=a.total, rest=_signed(a.rest), largest=largest)


def patching_figure(result, tokens: list[str]) -> object:
    """The recovery map of one patching run; `tokens` label the positions."""
    if result.by_head:
        columns = [str(h) for h in range(result.recovered.shape[1])]
        return plots.patching_heatmap(result.recovered, columns, "Each head's output copied from the clean run",
                                      "head", note="1 = the clean answer comes back, 0 = nothing changes")
    where, rows = {"resid_pre": ("the residual stream before each block", "block (the stream before it)"),
                   "resid_post": ("the residual stream after each block", "block (the stream after it)"),
                   "attn_out": ("each block's attention output", "block"),
                   "mlp_out": ("each block's MLP output", "block")}[result.site]
    return plots.patching_heatmap(result.recovered, plots.token_axis_labels(tokens),
                                  f"{where[0].upper() + where[1:]}, copied one position at a time",
                                  "token (position:token)", note="1 = the clean answer comes back, 0 = nothing changes",
                                  row_axis=rows)


def patching_text(result, label, clean_tokens: list[str], corrupted_tokens: list[str]) -> str:
    """What one patching run shows, with its numbers (assets/teaching/patching.md)."""
    r = result
    changed = [i for i, (a, b) in enumerate(zip(clean_tokens, corrupted_tokens)) if a != b]
    swaps = ", ".join(f"position {i} (**{clean_tokens[i]}** → **{corrupted_tokens[i]}**)" for i in changed[:4])
    best = np.unravel_index(int(np.argmax(r.recovered)), r.recovered.shape)
    place = (f"head {best[0]}.{best[1]}" if r.by_head
             else f"row {best[0]} at position {best[1]} (**{clean_tokens[best[1]]}**)")
    last = r.recovered[:, -1] if not r.by_head else np.zeros(0)
    moved_rows = np.flatnonzero(last > 0.5)
    moved = not r.by_head and len(moved_rows) > 0
    stays = not r.by_head and not moved and r.site in ("resid_pre", "attn_out", "mlp_out")
    return teaching.render("patching", when={"by_head": r.by_head, "moved": moved, "stays": stays},
                           moved_row=int(moved_rows[0]) if moved else 0,
                           moved=float(last[moved_rows[0]]) if moved else 0.0, target=f"**{label(r.target)}**",
                           foil=f"**{label(r.foil)}**", clean_diff=_signed(r.clean_diff),
                           corrupted_diff=_signed(r.corrupted_diff), swaps=swaps, best_place=place,
                           best=float(r.recovered[best]), first=r.first_difference, rows=r.rows, passes=r.passes)
