"""The guided story: thirteen cards that walk a learner through the model in the order data flows.

Each card is data: the tab it opens, the explanation it expands, and a rule that picks
its controls from the analysed prompt (the head with the highest previous-token score,
the query where an induction head fires, ...), plus a text filled with this prompt's
numbers. `story_card(index, analysis, loaded)` returns one card as a plain dict the UI
applies; nothing here runs a forward pass.

Control keys a card may set (the UI maps them onto its components):

    layer, head, query, mean_heads      Attention tab (layer and head also pick the head-walk)
    position                            Block tab: the position opened (layer from `layer`)
    lens_positions                      Layers tab: logit-lens window
    temperature, top_k, top_p, seed     Next token tab (top_k 0 and top_p 1 mean off)
    max_new_tokens                      Generate tab

Example prompts (assets/examples.json) carry a `why` and a `target` card id: clicking
one runs it and opens the story at that card (`card_for_example`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpt2.resources import ASSETS

from .block import open_block
from .heads import LABEL_RULES, ordinary_token_range
from .store import LoadedModel
from .analysis import LENS_POSITIONS, MAX_LENS_POSITIONS, Analysis
from .panels import most_likely, norm_change, percent
from .sampling import sampling_anatomy

EXAMPLES_FILE = ASSETS / "examples.json"
INDUCTION_THRESHOLD = dict((field, t) for _, field, t in LABEL_RULES)["induction"]
PREVIOUS_TOKEN_LABEL = dict((field, t) for _, field, t in LABEL_RULES)["previous_token"]
MIN_KEYS = 4  # the previous-token card outlines a row with at least this many keys to choose from
STORY_SAMPLING = dict(temperature=0.8, top_k=40, top_p=0.95, seed=0)  # the sampling card's settings
TOP_TOKENS = 5
MAX_NEW_TOKENS = 40


def _perplexity(mean_nats: float) -> str:
    """e^loss as a reader wants it: 3.4 or 27.3, but 68,935 rather than 68,934.7."""
    value = float(np.exp(mean_nats))
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


# ---------------------------------------------------------------------------- picks from the analysis

def previous_token_head(analysis: Analysis) -> tuple[int, int, float]:
    """(layer, head, score) of the head that puts the most attention on the token just before."""
    scores = analysis.scores.previous_token
    layer, head = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(layer), int(head), float(scores[layer, head])


def induction_head(analysis: Analysis, loaded: LoadedModel) -> tuple[int, int, float] | None:
    """(layer, head, score) of the head with the highest induction score, or None without a test."""
    scores = analysis.scores.induction if analysis.scores.induction is not None else loaded.induction
    if scores is None:
        return None
    layer, head = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(layer), int(head), float(scores[layer, head])


def induction_query(analysis: Analysis, layer: int, head: int) -> tuple[int, int, float] | None:
    """Where this head copies on this prompt: (query i, key j + 1, weight) with token j equal to token i, j < i.

    Among all queries whose token occurred before, the one that puts the most attention on the
    token right after an earlier occurrence. None when no token repeats.
    """
    ids, pattern = analysis.trace.token_ids, analysis.trace.attention[layer, head]
    best = None
    for i in range(1, len(ids)):
        earlier = np.flatnonzero(ids[:i] == ids[i])  # j < i with t_j = t_i; j + 1 <= i is visible
        if len(earlier):
            keys = earlier + 1
            weights = pattern[i, keys].astype(np.float64)
            k = int(np.argmax(weights))
            if best is None or weights[k] > best[2]:
                best = (i, int(keys[k]), float(weights[k]))
    return best


def token_surprise(analysis: Analysis, loaded: LoadedModel) -> np.ndarray:
    """−ln p(t_{i+1} | t_≤i) in nats, [T − 1]: the Trace's own (projected the first time it is asked for)."""
    return np.asarray(analysis.trace.token_surprise, dtype=np.float64)


def suggested_head(analysis: Analysis, loaded: LoadedModel) -> dict:
    """Where the Attention tab should open for this prompt, instead of layer 0, head 0.

    A clear induction head where it fires on a repeated token, if the prompt has one; else
    the strongest previous-token head at its clearest row. Returns layer, head and query.
    """
    found = induction_head(analysis, loaded)
    if found is not None and found[2] >= INDUCTION_THRESHOLD:
        fires = induction_query(analysis, found[0], found[1])
        if fires is not None:
            return dict(layer=found[0], head=found[1], query=fires[0])
    _, controls = _card_previous_token(analysis, loaded)
    return {key: controls[key] for key in ("layer", "head", "query")}


# ---------------------------------------------------------------------------- the cards

@dataclass(frozen=True)
class Card:
    id: str
    title: str
    tab: str  # tokens, embeddings, attention, block, layers, next_token, attribution, surprise, generate
    explanation: str  # the teaching panel to open (teaching.PANELS)
    fill: Callable[[Analysis, LoadedModel], tuple[str, dict]]  # -> (markdown, controls)


def _top_tokens(analysis: Analysis, n: int = TOP_TOKENS) -> str:
    probs = analysis.trace.next_token_probs
    return ", ".join(f"**{analysis.label(i)}** {percent(float(probs[i]))}" for i in most_likely(probs, n))


def _card_top(analysis: Analysis, loaded: LoadedModel):
    trace, c = analysis.trace, analysis.trace.config
    text = (f"GPT-2 does one thing: **it predicts the next token.** Given your {_plural(trace.n_tokens, 'token')}, "
            f"it gives each of the {c.n_vocab:,} tokens of its vocabulary a probability of coming next. After "
            f"**{trace.tokens[-1]}** the most likely are {_top_tokens(analysis)}.\n\n"
            f"**Everything below explains these numbers**: how the text becomes tokens, the tokens become vectors, "
            f"and {_plural(c.n_layer, 'block')} of attention and MLPs turn those vectors into this list. "
            "Look at the bars: the longest is the model's first choice.")
    return text, dict(temperature=1.0, top_k=0, top_p=1.0)


def _card_tokens(analysis: Analysis, loaded: LoadedModel):
    trace = analysis.trace
    chars = len(b"".join(trace.token_bytes).decode("utf-8", "replace"))
    longest = max(range(trace.n_tokens), key=lambda i: len(trace.token_bytes[i]))
    each = "an id" if trace.n_tokens == 1 else "each an id"
    text = (f"The model never sees letters. Your {_plural(chars, 'character')} became "
            f"{_plural(trace.n_tokens, 'token')}, {each} from 0 to {trace.config.n_vocab - 1:,}. "
            f"The longest here is **{trace.tokens[longest]}** (id {trace.token_ids[longest]}, "
            f"{_plural(len(trace.token_bytes[longest]), 'byte')}). Look at the chips: hover one for its id and bytes; "
            "`␣` is a space, which belongs to the word after it.")
    return text, {}


def _card_embeddings(analysis: Analysis, loaded: LoadedModel):
    trace, c = analysis.trace, analysis.trace.config
    text = (f"Each token id picks a row of W_te ({c.n_embd} numbers) and each position a row of W_pe; their sum "
            f"x₀ is where the **residual stream** starts: one vector of {c.n_embd} numbers per position, which "
            f"every block reads and adds to. Look at the *Sum* heatmap: one column per token. The first token, "
            f"**{trace.tokens[0]}**, has a token vector of norm {np.linalg.norm(trace.tok_embed[0]):.2f} and a "
            f"position vector of norm {np.linalg.norm(trace.pos_embed[0]):.2f}.")
    return text, {}


def _card_previous_token(analysis: Analysis, loaded: LoadedModel):
    trace = analysis.trace
    layer, head, score = previous_token_head(analysis)
    # The row where this head looks back hardest, among rows with at least MIN_KEYS keys to choose from
    # (in row 1 the token before is one of only two keys, so any head gives it a large share).
    back = trace.attention[layer, head].astype(np.float32).diagonal(offset=-1)  # A[i, i-1] for i = 1..T-1
    first = min(MIN_KEYS - 1, len(back))  # rows i >= MIN_KEYS - 1 have i + 1 >= MIN_KEYS keys
    query = first + int(np.argmax(back[first - 1:])) if len(back) else 0
    if trace.n_tokens < 3:
        text = ("Attention lets each position read from earlier ones. In a trained model some heads mostly read "
                "the token just before; the head scores need at least 3 tokens to find them: try a longer prompt.")
        return text, dict(layer=layer, head=head, query=query, mean_heads=False)
    n_heads = trace.config.n_layer * trace.config.n_head
    weight = float(trace.attention[layer, head, query, query - 1])
    row = (f" In the outlined row, **{trace.tokens[query]}** gives {weight:.0%} of its attention to "
           f"**{trace.tokens[query - 1]}** (out of {_plural(query + 1, 'token')} it can see)")
    if score >= PREVIOUS_TOKEN_LABEL:
        text = (f"Attention lets each position read from earlier ones. Of all {n_heads} heads, **layer {layer}, "
                f"head {head}** looks most at the token just before: {score:.0%} of its attention on average "
                f"(query rows from position 2 on), enough for the app to label it a previous-token head." + row
                + ", the most of any row with that many choices. Look for the bright diagonal just below the "
                "grey triangle.")
    else:
        text = (f"Attention lets each position read from earlier ones. Trained models usually have a head that "
                f"mostly reads the token just before. On this prompt no head of this model does: the closest, "
                f"**layer {layer}, head {head}**, puts {score:.0%} of its attention there on average, under the "
                f"{PREVIOUS_TOKEN_LABEL:.0%} the app asks before it labels a head previous-token." + row
                + ". Its pattern shows no clear diagonal; try a longer prompt, or one the model knows well.")
    return text, dict(layer=layer, head=head, query=query, mean_heads=False)


def _card_induction(analysis: Analysis, loaded: LoadedModel):
    trace = analysis.trace
    found = induction_head(analysis, loaded)
    if found is None:
        return "This model has no induction scores, so there is no induction head to show.", {}
    layer, head, score = found
    controls = dict(layer=layer, head=head, query=trace.n_tokens - 1, mean_heads=False)
    data = loaded.facts.data if loaded.facts is not None else None
    grown = data is not None and data.repeat_share > 0  # its training repeated sequences on purpose
    drilled = grown and loaded.induction_any_token is not None  # ... drawn from a pool of frequent tokens only
    pool = (f"of its {data.repeat_vocab:,} most frequent tokens" if drilled and data.repeat_vocab
            else "of the tokens its training repeated" if drilled else "")
    measured = (f"on a random sequence{' ' + pool if pool else ' of tokens'} written twice, it puts {score:.0%} of its "
                "attention on the token that followed the current token's earlier copy")
    if score >= INDUCTION_THRESHOLD:
        text = f"**Layer {layer}, head {head}** is an induction head: {measured}."
    else:  # the test sequence may be unlike the model's training text; the prompt below is the better evidence
        text = (f"**Layer {layer}, head {head}** has this model's highest induction score: {measured} "
                f"(a clear induction head passes {INDUCTION_THRESHOLD:g}).")
    text += (" That lets the model continue a pattern it has seen" if score >= INDUCTION_THRESHOLD
             else " A head that did this would let the model continue a pattern it has seen")
    text += ": after *A B … A*, predict *B*."
    if drilled:  # say how the head was grown, and where it works and where it does not
        anywhere = float(loaded.induction_any_token[layer, head])
        low, high = ordinary_token_range(trace.config)
        text += (f" **How it grew:** {data.repeat_share:.0%} of this model's training windows held such a "
                 f"sequence, drawn from that pool, so copying them paid. On a random sequence of any of its "
                 f"ordinary tokens (ids {low:,}–{high - 1:,}) the same head puts {anywhere:.0%} there: "
                 + ("it copies any token, as GPT-2's induction heads do."
                    if anywhere >= INDUCTION_THRESHOLD else
                    "it learned to copy the tokens it was drilled on, not any token (GPT-2's induction heads "
                    "copy any token)."))
    elif grown:
        low, high = ordinary_token_range(trace.config)
        text += (f" **How it grew:** {data.repeat_share:.0%} of this model's training windows held a sequence "
                 f"written twice ({data.repeat_kinds}), so copying paid. The random sequence above draws ordinary "
                 f"tokens (ids {low:,}–{high - 1:,}) from across its vocabulary: "
                 + ("it copies any token, as GPT-2's induction heads do."
                    if score >= INDUCTION_THRESHOLD else "on such tokens this head does not copy reliably."))
    fires = induction_query(analysis, layer, head)
    if fires is None:
        speaks_python = loaded.facts is not None and not loaded.facts.gpt2_tokenizer
        example = next(e["prompt"] for e in load_examples()
                       if e["target"] == "induction" and e["for"] == ("trained" if speaks_python else "gpt2"))
        text += (" No token of your prompt repeats, so it has nothing to copy here: try the example "
                 f"*{example.splitlines()[0]} …*." if "\n" in example else
                 f" No token of your prompt repeats, so it has nothing to copy here: try the example *{example}*.")
    else:
        query, key, weight = fires
        controls["query"] = query
        text += (f" In your prompt **{trace.tokens[query]}** at position {query} occurred before, and this head "
                 f"gives {weight:.0%} of its attention to **{trace.tokens[key]}** at position {key}, the token that "
                 "came after it. Look at the outlined row.")
    return text, controls


def _card_block(analysis: Analysis, loaded: LoadedModel):
    trace = analysis.trace
    layer, position = trace.config.n_layer // 2, trace.n_tokens - 1
    view = open_block(loaded.view_model, trace, layer, position)
    text = (f"Inside **block {layer}** at **{trace.tokens[position]}**: attention moves information between "
            f"positions (it adds a vector of norm {view.attn_out_norm:.1f} here); the MLP works on each position "
            f"alone (norm {view.mlp_out_norm:.1f}). Both read the stream through a LayerNorm, which turns this "
            f"position's numbers (mean {view.ln_1.mean:.2f}, std {view.ln_1.std:.2f}) into mean 0, std 1 before "
            f"its learned γ and β. Look at the GELU curve: {int((view.mlp_pre > 0).sum()):,} of the "
            f"{view.d_mlp:,} MLP neurons have a positive input and pass it on.")
    return text, dict(layer=layer, position=position)


def _card_layers(analysis: Analysis, loaded: LoadedModel):
    trace, lens = analysis.trace, analysis.lens
    norms = trace.residual_norms[:, -1]
    text = (f"Block by block, each adds to the residual stream: for **{trace.tokens[-1]}** its norm (the vector's "
            f"length, ‖x‖) {norm_change(norms[0], norms[-1])} from {norms[0]:.1f} to {norms[-1]:.1f}.")
    if lens is not None:
        tops = lens.top_ids[:, -1, 0]
        first = int(np.argmax(tops == tops[-1]))
        where = "already in the embeddings" if first == 0 else f"after block {first - 1}"
        text += (" At the end the model turns the stream into one **logit** per token of its vocabulary, a score "
                 "that softmax makes a probability (card 8 shows how).")
        text += (f" The **logit lens** reads the stream after each block as if it were the last: the final answer "
                 f"**{analysis.label(tops[-1])}** is first on top {where}. Look at the last column of the lens, top to bottom.")
    return text, dict(lens_positions=int(min(max(trace.n_tokens, 1), MAX_LENS_POSITIONS, LENS_POSITIONS)))


def _card_sampling(analysis: Analysis, loaded: LoadedModel):
    s = STORY_SAMPLING
    anatomy = sampling_anatomy(analysis.trace.logits, s["temperature"], s["top_k"], s["top_p"], seed=s["seed"])
    text = (f"The last position's vector becomes one **logit** (a score) per token; softmax makes them "
            f"probabilities. To write text, the model draws from them: temperature {s['temperature']:g} sharpens "
            f"them; top-k {s['top_k']} keeps the {s['top_k']} most likely and rescales them to add up to 1; "
            f"top-p {s['top_p']:g} then keeps the fewest of those whose rescaled probabilities add up to "
            f"{s['top_p']:.0%}. Here that leaves {_plural(anatomy.n_kept, 'token')}: "
            f"{percent(float(anatomy.probs_after_top_k[anatomy.kept].sum()))} after top-k, "
            f"{percent(anatomy.kept_mass)} of the whole distribution. They are rescaled once more, and seed "
            f"{s['seed']} draws **{analysis.label(anatomy.chosen)}**. Move the sliders and watch the solid bars.")
    return text, dict(s)


def _card_attribution(analysis: Analysis, loaded: LoadedModel):
    trace, c = analysis.trace, analysis.trace.config
    top = int(most_likely(trace.next_token_probs, 1)[0])
    text = (f"**Who voted for {analysis.label(top)}?** Its probability, "
            f"{percent(float(trace.next_token_probs[top]))}, comes from its logit, and that logit is a sum: the "
            f"embeddings, each of the {c.n_layer * c.n_head:,} heads and each of the {c.n_layer} MLPs wrote a vector "
            "into the residual stream, and the final LayerNorm and the output matrix read their sum. The heatmap splits "
            "the logit into one number per head: **red heads pushed the token up, blue ones pushed it down**. The "
            "buttons open the largest in the Attention tab. Pick a second token as the foil to see what separates "
            "two answers. This counts only what each part wrote directly; the *Patching* view beside it measures "
            "what a part does through the layers after it.")
    return text, {}


def _card_surprise(analysis: Analysis, loaded: LoadedModel):
    trace = analysis.trace
    surprise = token_surprise(analysis, loaded)
    if len(surprise) == 0:
        return ("With one token there is nothing inside the prompt to predict. Training measures how surprised "
                "the model is by each next token: add a second token to see it."), {}
    worst = int(np.argmax(surprise))
    mean = float(surprise.mean())
    facts = loaded.facts
    repeats = f"{facts.repeats} " if facts.repeats else ""
    text = (f"How did {facts.who} learn this? At each position it predicted the next token of your own prompt; "
            f"the **surprise** −ln p of the real next token is its loss, in *nats* (natural-log units; 0 means it was "
            f"certain and right). The most surprising here is "
            f"**{trace.tokens[worst + 1]}** (p = {percent(float(np.exp(-surprise[worst])))}); the mean, "
            f"{mean:.2f} nats, is the **cross-entropy loss**, and e^{mean:.2f} = {_perplexity(mean)} the "
            f"**perplexity**. Training changed every weight to make this mean small over its training text. "
            f"{facts.trained_on} {repeats}Look at the coloured tokens: dark means surprising.")
    uniform = float(np.log(trace.config.n_vocab))
    if mean >= uniform:
        text += (f" This model does worse than a uniform guess over all {trace.config.n_vocab:,} tokens "
                 f"(ln {trace.config.n_vocab:,} = {uniform:.2f} nats): it has not learned yet.")
    return text, {}


def _card_generate(analysis: Analysis, loaded: LoadedModel):
    text = ("Generating is the last step in a loop: draw a token, append it, predict again. Press **Step** to "
            "add one token at a time and see the distribution each came from, or **Generate** for "
            f"{MAX_NEW_TOKENS} tokens with the sampling settings of the previous cards. The same seed gives the "
            "same text.")
    return text, dict(max_new_tokens=MAX_NEW_TOKENS, **STORY_SAMPLING)


def _card_training(analysis: Analysis, loaded: LoadedModel):
    facts = loaded.facts
    data = facts.data if facts is not None else None
    if data is None:
        who = facts.who if facts is not None else "this model"
        text = (f"**How did the heads you saw get there?** {who[0].upper() + who[1:]} was trained "
                "elsewhere, and its training snapshots were not published, so this tab cannot replay it. The small "
                "model trained here kept its snapshots: pick **tiny (trained here)** in the Model menu and press "
                "Analyze to watch its previous-token and induction heads appear, step by step, on your prompt.")
    else:
        text = (f"**How did the heads you saw get there?** {facts.who[0].upper() + facts.who[1:]} was trained here, from random weights, on "
                f"{data.tokens_seen:,} tokens of {data.corpus}, and kept snapshots of its weights on the way. The "
                "**Snapshot** slider replays them on *your* prompt: watch the loss curve fall, the heads get their "
                "labels, and the greedy sample turn from repeated nonsense into text. The explanation below says "
                "between which snapshots its induction head formed.")
    return text, {}


def _card_compare(analysis: Analysis, loaded: LoadedModel):
    text = ("**One prompt, two models.** Press **Compare** to run your prompt through the two models in the menus: "
            "what each predicts next, how surprised each is by every token, and where each model's heads look. "
            "A model with more parameters, trained on more text, is usually less surprised on average; one of a "
            "model's own early snapshots is more. Try a prompt that repeats itself: a model with an induction head "
            "is far less surprised by the repeat than one without.")
    return text, {}


CARDS: tuple[Card, ...] = (
    Card("top", "What GPT-2 does", "next_token", "next_token", _card_top),
    Card("tokens", "Text becomes tokens", "tokens", "tokens", _card_tokens),
    Card("embeddings", "Tokens become vectors", "embeddings", "embeddings", _card_embeddings),
    Card("previous_token", "Attention: a previous-token head", "attention", "attention", _card_previous_token),
    Card("induction", "Attention: an induction head", "attention", "head_walk", _card_induction),
    Card("block", "Inside a block: LayerNorm and MLP", "block", "block", _card_block),
    Card("layers", "Layer by layer: the logit lens", "layers", "layers", _card_layers),
    Card("sampling", "From logits to the next token", "next_token", "next_token", _card_sampling),
    Card("attribution", "Who voted for this token?", "attribution", "attribution", _card_attribution),
    Card("surprise", "Surprise = loss: how it learned", "surprise", "surprise", _card_surprise),
    Card("generate", "Generating text", "generate", "generate", _card_generate),
    Card("training", "How the heads formed", "training", "training", _card_training),
    Card("compare", "One prompt, two models", "compare", "compare", _card_compare),
)
CARD_IDS = tuple(card.id for card in CARDS)


def story_card(index, analysis: Analysis, loaded: LoadedModel) -> dict:
    """Card `index` (0-based) for this analysis: title, markdown, tab, explanation to open, control values."""
    try:
        index = int(index)
    except (TypeError, ValueError):
        raise ValueError("the story card must be a whole number") from None
    if not 0 <= index < len(CARDS):
        raise ValueError(f"the story has cards 0–{len(CARDS) - 1}")
    card = CARDS[index]
    markdown, controls = card.fill(analysis, loaded)
    return dict(index=index, count=len(CARDS), id=card.id, title=card.title, tab=card.tab,
                explanation=card.explanation, controls=controls,
                markdown=f"**{index + 1} / {len(CARDS)} · {card.title}**\n\n{markdown}")


# ---------------------------------------------------------------------------- example prompts

# Which models an example's "why" is true of: GPT-2 (English; the why says "on GPT-2"), the models trained
# here on Python (the shipped model), or any model.
EXAMPLE_MODELS = {"gpt2": "GPT-2", "trained": "the small model trained here", "any": "any model"}


def load_examples(path: Path = EXAMPLES_FILE) -> list[dict]:
    """The example prompts, each with its `why`, the story card it targets (checked against CARD_IDS) and the
    models it is for (`for`, a key of EXAMPLE_MODELS)."""
    examples = json.loads(Path(path).read_text(encoding="utf-8"))
    for example in examples:
        if example.get("target") not in CARD_IDS:
            raise ValueError(f"example {example['prompt']!r} targets {example.get('target')!r}; "
                             f"choose one of {', '.join(CARD_IDS)}")
        if example.get("for") not in EXAMPLE_MODELS:
            raise ValueError(f"example {example['prompt']!r} is for {example.get('for')!r}; "
                             f"choose one of {', '.join(EXAMPLE_MODELS)}")
    return examples


def default_prompt(speaks_gpt2: bool, examples: list[dict] | None = None) -> str:
    """The page's first prompt: the first example for GPT-2 (English) or for the models trained here (Python),
    the text each reads well."""
    kind = "gpt2" if speaks_gpt2 else "trained"
    return next(e["prompt"] for e in (examples if examples is not None else load_examples()) if e["for"] == kind)


def card_for_example(prompt: str, examples: list[dict] | None = None) -> int:
    """The story card an example prompt opens on (its target); the first card for any other prompt."""
    for example in examples if examples is not None else load_examples():
        if example["prompt"] == prompt:
            return CARD_IDS.index(example["target"])
    return 0


def example_why(prompt: str, examples: list[dict] | None = None) -> str | None:
    """Why an example prompt is worth running, or None for a prompt of the learner's own."""
    for example in examples if examples is not None else load_examples():
        if example["prompt"] == prompt:
            return example["why"]
    return None
