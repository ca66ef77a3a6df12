"""What a text may say about the loaded model, read from the model, its tokenizer and its training log.

The app shows GPT-2 (OpenAI's released sizes), the small model this project trained and ships,
and any model trained with `python -m gpt2 train`. A sentence such as "50,000 merges" or
"trained on WebText" is true of one of them only. So every text that states a fact about the
model takes it from a `ModelFacts`, built once when the model is loaded:

    vocabulary, merges, special token   from the tokenizer (merges = its tokens - 256 bytes - specials)
    context, layers, heads, widths      from the model's config
    parameters                          counted from the model
    training data                       GPT-2: WebText (GPT-2 paper, section 2.1), said as GPT-2's;
                                        a model trained here: its training_log.json
    OpenAI's variable names             only where they are the names the weights were stored under

GPT-2's own history is kept here as `GPT2_TRAINING_DATA`, and a text says it about GPT-2.
"""

from __future__ import annotations

from dataclasses import dataclass

import gpt2

BYTE_TOKENS = 256  # byte-level BPE starts from one token per byte value
# GPT-2 paper (Radford et al. 2019), section 2.1: "slightly over 8 million documents for a total of 40 GB of text".
GPT2_TRAINING_DATA = "WebText, about 8 million web pages (40 GB of text)"
STDLIB_SOURCE = "python-stdlib"  # the name `python -m gpt2 train` logs when it reads the standard library itself

# Where the weights came from.
RELEASED = "released"  # one of OpenAI's released GPT-2 sizes
TRAINED_HERE = "trained here"  # a folder with the training_log.json of `python -m gpt2 train`
FOLDER = "folder"  # any other checkpoint folder: its training is not recorded


@dataclass(frozen=True)
class TrainingData:
    """What a model trained here was trained on, as its training log records it."""

    corpus: str  # said in words: "the Python standard library's text", "the file notes.txt"
    characters: int
    train_tokens: int
    tokens_seen: int
    repeat_share: float  # the share of training windows that held a sequence written twice (0: none)
    repeat_vocab: int | None  # random sequences drew from this many most frequent tokens; 0 or None: every token
    repeat_text_share: float = 0.0  # the share of those windows whose sequence was a span of the training text

    @property
    def repeat_pool(self) -> str:
        """Where the random repeated sequences came from, in words."""
        if self.repeat_vocab:
            return f"its {self.repeat_vocab:,} most frequent tokens"
        return "its whole vocabulary, every token equally likely"

    @property
    def repeat_kinds(self) -> str:
        """What the repeated sequences were, in words: "random tokens of ..." and, if any, spans of its text."""
        random_part = f"random tokens drawn from {self.repeat_pool}"
        if not self.repeat_text_share:
            return random_part
        return (f"{random_part} or, in {self.repeat_text_share:.0%} of those windows, a span of its own training "
                "text written again")


@dataclass(frozen=True)
class ModelFacts:
    name: str
    origin: str  # RELEASED, TRAINED_HERE or FOLDER
    n_vocab: int  # rows of the model's embedding
    n_ctx: int
    n_layer: int
    n_head: int
    n_embd: int
    d_head: int
    d_mlp: int
    parameters: int
    tokenizer_tokens: int  # the tokenizer's own count: bytes + merges + special tokens
    n_special: int
    special_token: str
    special_id: int
    gpt2_tokenizer: bool  # the tokenizer is GPT-2's own
    openai_layout: bool  # the weights were read from OpenAI's TensorFlow checkpoint variables
    data: TrainingData | None  # for a model trained here

    @property
    def is_gpt2(self) -> bool:
        """OpenAI's GPT-2 itself, so GPT-2's history (WebText, the paper's numbers) is this model's."""
        return self.origin == RELEASED

    @property
    def parameters_short(self) -> str:
        """The parameter count in millions, as a status line says it: "0.9M" (not "1M") for a small model, "124M"."""
        millions = self.parameters / 1e6
        return f"{millions:.1f}M" if millions < 10 else f"{millions:,.0f}M"

    @property
    def n_merges(self) -> int:
        return self.tokenizer_tokens - BYTE_TOKENS - self.n_special

    @property
    def openai_names(self) -> bool:
        """Whether OpenAI's checkpoint variable names (`model/h0/attn/c_attn/w`) are this model's own."""
        return self.is_gpt2 or self.openai_layout

    @property
    def gpt2_size(self) -> str | None:
        """The released GPT-2 size whose shape this model has, if any."""
        shape = (self.n_vocab, self.n_ctx, self.n_embd, self.n_head, self.n_layer)
        for size in gpt2.SIZES:
            c = gpt2.GPTConfig.preset(size)
            if (c.n_vocab, c.n_ctx, c.n_embd, c.n_head, c.n_layer) == shape:
                return size
        return None

    @property
    def who(self) -> str:
        """How a sentence names the model: "GPT-2" for OpenAI's, "this model" for any other."""
        return "GPT-2" if self.is_gpt2 else "this model"

    @property
    def tokenizer_words(self) -> str:
        """Whose BPE table this is, for "a table of N merges ...": GPT-2's, or this model's own."""
        if self.gpt2_tokenizer:
            return "GPT-2's tokenizer, learned by OpenAI from its training text"
        return "this model's own tokenizer, learned by `python -m gpt2 train` from its training text"

    @property
    def trained_on(self) -> str:
        """One sentence on the training data, GPT-2's said as GPT-2's beside any other model."""
        if self.is_gpt2:
            return f"GPT-2 was trained by OpenAI on {GPT2_TRAINING_DATA} (GPT-2 paper, section 2.1)."
        gpt2_itself = f"GPT-2 itself was trained by OpenAI on {GPT2_TRAINING_DATA}"
        if self.data is None:
            if self.gpt2_size and self.gpt2_tokenizer:
                return (f"This model's folder does not record its training data. It has GPT-2 {self.gpt2_size}'s "
                        f"shape: if these are OpenAI's weights, they were trained on {GPT2_TRAINING_DATA}.")
            return f"This model's folder does not record its training data. {gpt2_itself}."
        d = self.data
        return (f"This model was trained with `python -m gpt2 train` on {d.corpus} ({d.characters:,} characters, "
                f"{d.train_tokens:,} training tokens; it read {d.tokens_seen:,} tokens in all). {gpt2_itself}.")

    @property
    def repeats(self) -> str:
        """The repeat curriculum, from the training log, or "" when there was none."""
        if self.data is None or not self.data.repeat_share:
            return ""
        return (f"Besides that text, {self.data.repeat_share:.0%} of its training windows held a sequence written "
                f"twice in a row, so that copying was worth learning: {self.data.repeat_kinds}.")


def _corpus_words(data: dict) -> str:
    if data.get("about"):
        return data["about"]
    sources = [str(source) for source in data.get("sources", [])]
    if sources == [STDLIB_SOURCE]:
        return "the Python standard library's text"
    if not sources:
        return "a text its log does not name"
    return ("the file " if len(sources) == 1 else "the files ") + ", ".join(f"`{s}`" for s in sources)


def training_data(log: dict | None) -> TrainingData | None:
    """The training data a training log records, or None without a log."""
    if log is None:
        return None
    data, repeats = log.get("data", {}), log.get("repeat_windows", {})
    return TrainingData(corpus=_corpus_words(data), characters=int(data.get("characters", 0)),
                        train_tokens=int(data.get("train_tokens", 0)), tokens_seen=int(log.get("tokens_seen", 0)),
                        repeat_share=float(repeats.get("share") or 0.0), repeat_vocab=repeats.get("vocab"),
                        repeat_text_share=float(repeats.get("text_share") or 0.0))


def model_facts(name: str, model: gpt2.GPT2, tokenizer=None, origin: str = FOLDER, openai_layout: bool = False,
                log: dict | None = None) -> ModelFacts:
    """The facts of `model` and its `tokenizer` (GPT-2's when None); `log` is its training_log.json, if any."""
    tokenizer = tokenizer if tokenizer is not None else gpt2.get_tokenizer()
    c = model.config
    special_id = tokenizer.eot_token
    return ModelFacts(
        name=name, origin=origin, n_vocab=c.n_vocab, n_ctx=c.n_ctx, n_layer=c.n_layer, n_head=c.n_head,
        n_embd=c.n_embd, d_head=c.d_head, d_mlp=c.mlp_ratio * c.n_embd, parameters=model.num_parameters(),
        tokenizer_tokens=tokenizer.n_vocab, n_special=len(tokenizer.special_tokens_set),
        special_token=tokenizer.decode_single_token_bytes(special_id).decode("utf-8"), special_id=special_id,
        gpt2_tokenizer=tokenizer is gpt2.get_tokenizer(), openai_layout=openai_layout,
        data=training_data(log))
