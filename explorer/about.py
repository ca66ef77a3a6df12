"""About this model: where its parameters are, how it differs from the 2017 Transformer,
and how OpenAI's checkpoint names map onto its modules. All numbers come from the
loaded model's own parameters, so the page is right for every size (and for a
model trained here).

For GPT-2 124M (d_model C = 768, 12 blocks, 50,257 tokens, 1024 positions):

    wte    50,257 x 768                          38,597,376
    wpe     1,024 x 768                             786,432
    block  2C (ln_1) + 3C^2+3C (c_attn) + C^2+C (c_proj)
           + 2C (ln_2) + 4C^2+4C (c_fc) + 4C^2+C (c_proj)   7,087,872, x 12
    ln_f   2C                                         1,536
    total                                       124,439,808

The output head is W_te itself (tied), so it adds nothing; a separate head would add
another 50,257 x 768.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

import gpt2
from gpt2 import GPT2

from .model_facts import BYTE_TOKENS, GPT2_TRAINING_DATA, ModelFacts


@dataclass(frozen=True)
class ParameterCount:
    wte: int
    wpe: int
    per_block: int
    n_blocks: int
    ln_f: int
    block_parts: dict  # name inside a block ("ln_1", "attn.c_attn", ...) -> parameters

    @property
    def total(self) -> int:
        return self.wte + self.wpe + self.n_blocks * self.per_block + self.ln_f

    @property
    def untied_total(self) -> int:
        """The count with a separate output head of the same shape as W_te."""
        return self.total + self.wte


def parameter_count(model: GPT2) -> ParameterCount:
    """Parameters by module, read from the model (works on the meta device too: only shapes are used)."""
    params = dict(model.named_parameters())  # a tied tensor is listed once
    def size(prefix: str) -> int:
        return sum(p.numel() for name, p in params.items() if name.startswith(prefix + "."))
    block = model.h[0]
    parts = {}
    for name, p in block.named_parameters():
        module = name.rsplit(".", 1)[0]
        parts[module] = parts.get(module, 0) + p.numel()
    per_block = sum(parts.values())
    if any(size(f"h.{l}") != per_block for l in range(len(model.h))):
        raise ValueError("blocks of different sizes: this model is not GPT-2 shaped")
    return ParameterCount(wte=size("wte"), wpe=size("wpe"), per_block=per_block, n_blocks=len(model.h),
                          ln_f=size("ln_f"), block_parts=parts)


def openai_name(name: str, module: nn.Module) -> str:
    """Our parameter name -> OpenAI's variable: `h.3.attn.c_attn.weight` -> `model/h3/attn/c_attn/w`.

    The inverse of `gpt2.checkpoint.torch_name`: LayerNorm's weight is OpenAI's gain `g`,
    a projection's weight `w`, and the embeddings are bare variables.
    """
    scopes = name.split(".")
    leaf = scopes.pop()
    if scopes[0] == "h":
        scopes = [f"h{scopes[1]}", *scopes[2:]]
    if isinstance(module, nn.Embedding):
        return "model/" + "/".join(scopes)
    short = "b" if leaf == "bias" else ("g" if isinstance(module, nn.LayerNorm) else "w")
    return "model/" + "/".join([*scopes, short])


def checkpoint_rows(model: GPT2) -> list[tuple[str, tuple, str, tuple, bool]]:
    """(OpenAI variable, its shape, our parameter, its shape, transposed?) for the globals and block 0."""
    modules = dict(model.named_modules())
    rows = []
    for name, p in model.named_parameters():
        if name.startswith("h.") and not name.startswith("h.0."):
            continue
        module = modules[name.rsplit(".", 1)[0]]
        ours = tuple(p.shape)
        transposed = isinstance(module, nn.Linear) and name.endswith(".weight")
        theirs = (1, ours[1], ours[0]) if transposed else ours  # conv1d keeps [1, in, out]
        rows.append((openai_name(name, module), theirs, name, ours, transposed))
    return rows


def _n(x: int) -> str:
    return f"{x:,}"


def parameter_table(model: GPT2) -> str:
    c, count = model.config, parameter_count(model)
    C, V, P = c.n_embd, c.n_vocab, c.n_ctx
    lines = ["| where | shape | parameters |", "|---|---|---:|",
             f"| token embedding `wte` (also the output head) | {_n(V)} × {C} | {_n(count.wte)} |",
             f"| position embedding `wpe` | {_n(P)} × {C} | {_n(count.wpe)} |"]
    for part, n in count.block_parts.items():
        lines.append(f"| &nbsp;&nbsp;one block: `{part}` | | {_n(n)} |")
    lines += [f"| {count.n_blocks} blocks × {_n(count.per_block)} | | {_n(count.n_blocks * count.per_block)} |",
              f"| final LayerNorm `ln_f` | 2 × {C} | {_n(count.ln_f)} |",
              f"| **total** | | **{_n(count.total)}** |"]
    return "\n".join(lines)


def tying_text(model: GPT2) -> str:
    count, c = parameter_count(model), model.config
    share = count.wte / count.total
    return (f"**Weight tying.** The output head turns the final vector into {_n(c.n_vocab)} logits with the same "
            f"matrix W_te that embeds the tokens: logits = LN_f(x_L) · W_teᵀ. A separate head of that shape would "
            f"add {_n(count.wte)} parameters, {_n(count.untied_total)} in all instead of {_n(count.total)}. "
            f"W_te alone is {share:.0%} of this model. (Vaswani et al. 2017, section 3.4, share this matrix too.)")


# Each row: what, the 2017 Transformer (Vaswani et al., base model), GPT-2 (Radford et al. 2019), and where
# GPT-2's choice comes from. GPT-2 section 2.3 lists its own changes to GPT-1 (Radford et al. 2018): LayerNorm
# at the input of each sub-block and after the last block, residual weights scaled by 1/sqrt(N) at init, a
# 50,257-token vocabulary and a 1024-token context. Decoder-only blocks, learned positions and GELU were
# already GPT-1's (its section 4.1). Tying the output head to W_te is GPT-1's equation 2 too.
GPT1, GPT2_23 = "from GPT-1, section 4.1", "GPT-2 section 2.3"
GPT2_DATA_SOURCE = "GPT-2 section 2.1"


def _comparison_rows(facts: ModelFacts) -> list[tuple[str, str, str, str]]:
    released = [gpt2.GPTConfig.preset(size) for size in gpt2.SIZES]
    if facts.is_gpt2:  # GPT-2's column is the loaded size's own numbers
        blocks, n_ctx = f"{facts.n_layer} blocks", facts.n_ctx
        width = f"d_model {facts.n_embd}, {facts.n_head} heads of {facts.d_head}, MLP {_n(facts.d_mlp)}"
    else:  # this is not GPT-2: its column gives the released sizes, this model's has its own numbers
        blocks = f"{released[0].n_layer} to {released[-1].n_layer} blocks"
        n_ctx = released[0].n_ctx
        width = f"d_model {released[0].n_embd} to {released[-1].n_embd}, heads of {released[0].d_head}, MLP 4 × d_model"
    return [
        ("shape", "encoder + decoder (6 + 6 layers), decoder attends to the encoder",
         f"decoder only: {blocks} of masked self-attention, no encoder, no cross-attention", GPT1),
        ("task", "translation (WMT English–German, English–French)",
         f"next-token prediction on {GPT2_TRAINING_DATA}", GPT2_DATA_SOURCE),
        ("positions", "fixed sinusoids added to the embeddings",
         f"a learned vector per position, W_pe: {_n(n_ctx)} positions, so at most {_n(n_ctx)} tokens of context",
         GPT1),
        ("LayerNorm", "after each sub-layer: LN(x + Sublayer(x))",
         "before each sub-layer: x + Sublayer(LN(x)), plus a final LN_f after the last block", GPT2_23),
        ("activation", "ReLU", "GELU (its tanh approximation)", GPT1),
        ("width", "d_model 512, 8 heads, feed-forward 2,048", width, "GPT-2 table 2 (layers, d_model)"),
        ("vocabulary", "BPE of ~37,000 tokens (En–De) shared by both languages",
         "byte-level BPE, 50,257 tokens: 256 bytes + 50,000 merges + <|endoftext|>", GPT2_23),
        ("embeddings", "scaled by √d_model; shared with the output layer", "not scaled; shared with the output head",
         "from GPT-1, equation 2"),
        ("initialisation", "not described in the paper",
         "weights of the layers that write into the residual stream scaled by 1/√N, N the number of residual layers",
         GPT2_23),
    ]


def _this_model_column(facts: ModelFacts) -> dict[str, str]:
    """The rows where a model that is not GPT-2 differs from it, in its own numbers."""
    data = facts.data
    task = (f"next-token prediction on {data.corpus}" if data is not None
            else "next-token prediction; its folder does not record on what")
    if data is not None and data.repeat_share:
        task += f", {data.repeat_share:.0%} of the windows holding a repeated random sequence"
    return {
        "shape": f"decoder only: {facts.n_layer} block{'' if facts.n_layer == 1 else 's'}",
        "task": task,
        "positions": f"learned, {_n(facts.n_ctx)} positions",
        "width": f"d_model {facts.n_embd}, {facts.n_head} heads of {facts.d_head}, MLP {_n(facts.d_mlp)}",
        "vocabulary": (f"byte-level BPE, {_n(facts.tokenizer_tokens)} tokens: {BYTE_TOKENS} bytes + "
                       f"{_n(facts.n_merges)} merges + {facts.special_token}"),
    }


def comparison_table(facts: ModelFacts) -> str:
    rows = _comparison_rows(facts)
    if facts.is_gpt2:
        lines = ["| | Transformer (2017) | GPT-2 (2019) | GPT-2's choice is |", "|---|---|---|---|"]
        lines += [f"| {what} | {then} | {now} | {source} |" for what, then, now, source in rows]
        return "\n".join(lines)
    ours = _this_model_column(facts)
    lines = [f"| | Transformer (2017) | GPT-2 (2019) | GPT-2's choice is | {facts.name} |", "|---|---|---|---|---|"]
    lines += [f"| {what} | {then} | {now} | {source} | {ours.get(what, 'as GPT-2')} |"
              for what, then, now, source in rows]
    return "\n".join(lines)


def checkpoint_table(model: GPT2) -> str:
    lines = ["| OpenAI's variable | its shape | our parameter | our shape |", "|---|---|---|---|"]
    for theirs, their_shape, ours, our_shape, transposed in checkpoint_rows(model):
        mark = " (transposed)" if transposed else ""
        lines.append(f"| `{theirs}` | {their_shape} | `{ours}` | {our_shape}{mark} |")
    n_layer = model.config.n_layer
    lines.append(f"| … `model/h1` to `model/h{n_layer - 1}` the same | | `h.1` to `h.{n_layer - 1}` | |")
    return "\n".join(lines)


CHECKPOINT_RULE = (
    "OpenAI's TensorFlow checkpoint of GPT-2 names each tensor by its scope. Our modules carry the same names, so "
    "`gpt2/checkpoint.py` maps every variable with one rule: `model/h3/attn/c_attn/w` → "
    "`h.3.attn.c_attn.weight`, `g` (LayerNorm gain) and `w` → `weight`, `b` → `bias`. OpenAI stored "
    "each projection as a 1×1 convolution (`conv1d`), weight [1, in, out] and y = x·w + b; PyTorch's "
    "`nn.Linear` keeps (out, in) and computes y = x·Wᵀ + b, so those weights are squeezed and transposed "
    "on loading. There is no output-head variable: the head reads `wte`.")


def checkpoint_section(model: GPT2, facts: ModelFacts) -> list[str]:
    """OpenAI's variable names, mapped onto this model's weights only where they were stored under them."""
    if facts.openai_names:
        return ["### OpenAI's checkpoint, mapped onto the modules", CHECKPOINT_RULE, checkpoint_table(model)]
    return ["### How GPT-2's checkpoint maps onto the same modules",
            f"{facts.name} was not released by OpenAI: its weights are stored under our module names "
            "(`h.0.attn.c_attn.weight`, ...), which are the scopes of GPT-2's checkpoint. " + CHECKPOINT_RULE]


def about_markdown(model: GPT2, facts: ModelFacts) -> str:
    """The About page for the loaded model (its weights for the counts, its facts for everything said)."""
    c, count = model.config, parameter_count(model)
    return "\n\n".join([
        f"### {facts.name}: {_n(count.total)} parameters",
        f"{c.n_layer} blocks, d_model {c.n_embd}, {c.n_head} heads, a context of {_n(c.n_ctx)} tokens and a "
        f"vocabulary of {_n(c.n_vocab)}. Where the parameters are:",
        parameter_table(model),
        tying_text(model),
        facts.trained_on + (f" {facts.repeats}" if facts.repeats else ""),
        "### GPT-2 next to the 2017 Transformer",
        "GPT-2 (Radford et al. 2019) largely follows GPT-1 (Radford et al. 2018), which had already kept only the "
        "Transformer's decoder, with learned positions and GELU. GPT-2's own changes (its section 2.3) are "
        "LayerNorm at the input of each sub-block and after the last block, residual weights scaled by 1/√N at "
        "initialisation, a vocabulary of 50,257 tokens and a context of 1,024. The last column says where each of "
        "GPT-2's choices comes from" + ("." if facts.is_gpt2 else f"; the column {facts.name} gives this model's."),
        comparison_table(facts),
        *checkpoint_section(model, facts),
    ])
