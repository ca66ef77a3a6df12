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

from gpt2 import GPT2


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


# Each row: what, the 2017 Transformer (Vaswani et al., base model), GPT-2 (Radford et al. 2019).
# Where GPT-2's number depends on the size, it is filled in from the loaded model's config.
def comparison_table(model: GPT2) -> str:
    c = model.config
    rows = [
        ("shape", "encoder + decoder (6 + 6 layers), decoder attends to the encoder",
         f"decoder only: {c.n_layer} blocks of masked self-attention, no encoder, no cross-attention"),
        ("task", "translation (WMT English–German, English–French)",
         "next-token prediction on WebText (8 million documents, 40 GB of text)"),
        ("positions", "fixed sinusoids added to the embeddings",
         f"a learned vector per position, W_pe: {_n(c.n_ctx)} positions, so at most {_n(c.n_ctx)} tokens of context"),
        ("LayerNorm", "after each sub-layer: LN(x + Sublayer(x))",
         "before each sub-layer: x + Sublayer(LN(x)), plus a final LN_f after the last block"),
        ("activation", "ReLU", "GELU (its tanh approximation)"),
        ("width", "d_model 512, 8 heads, feed-forward 2,048",
         f"d_model {c.n_embd}, {c.n_head} heads of {c.d_head}, MLP {_n(c.mlp_ratio * c.n_embd)}"),
        ("vocabulary", "BPE of ~37,000 tokens (En–De) shared by both languages",
         f"byte-level BPE, {_n(c.n_vocab)} tokens: 256 bytes + 50,000 merges + <|endoftext|>"),
        ("embeddings", "scaled by √d_model; shared with the output layer", "not scaled; shared with the output head"),
        ("initialisation", "not described in the paper",
         "weights of the layers that write into the residual stream scaled by 1/√N, N the number of residual layers"),
    ]
    lines = ["| | Transformer (2017) | GPT-2 (2019) |", "|---|---|---|"]
    lines += [f"| {what} | {then} | {now} |" for what, then, now in rows]
    return "\n".join(lines)


def checkpoint_table(model: GPT2) -> str:
    lines = ["| OpenAI's variable | its shape | our parameter | our shape |", "|---|---|---|---|"]
    for theirs, their_shape, ours, our_shape, transposed in checkpoint_rows(model):
        mark = " (transposed)" if transposed else ""
        lines.append(f"| `{theirs}` | {their_shape} | `{ours}` | {our_shape}{mark} |")
    n_layer = model.config.n_layer
    lines.append(f"| … `model/h1` to `model/h{n_layer - 1}` the same | | `h.1` to `h.{n_layer - 1}` | |")
    return "\n".join(lines)


def about_markdown(model: GPT2, name: str = "this model") -> str:
    """The About page for the loaded model."""
    c, count = model.config, parameter_count(model)
    return "\n\n".join([
        f"### {name}: {_n(count.total)} parameters",
        f"{c.n_layer} blocks, d_model {c.n_embd}, {c.n_head} heads, a context of {_n(c.n_ctx)} tokens and a "
        f"vocabulary of {_n(c.n_vocab)}. Where the parameters are:",
        parameter_table(model),
        tying_text(model),
        "### GPT-2 next to the 2017 Transformer",
        "GPT-2 (Radford et al. 2019, section 2.3) keeps the Transformer's attention and MLP blocks and changes "
        "the rest:",
        comparison_table(model),
        "### OpenAI's checkpoint, mapped onto the modules",
        "OpenAI's TensorFlow checkpoint names each tensor by its scope. Our modules carry the same names, so "
        "`gpt2/checkpoint.py` maps every variable with one rule: `model/h3/attn/c_attn/w` → "
        "`h.3.attn.c_attn.weight`, `g` (LayerNorm gain) and `w` → `weight`, `b` → `bias`. OpenAI stored "
        "each projection as a 1×1 convolution (`conv1d`), weight [1, in, out] and y = x·w + b; PyTorch's "
        "`nn.Linear` keeps (out, in) and computes y = x·Wᵀ + b, so those weights are squeezed and transposed "
        "on loading. There is no output-head variable: the head reads `wte`.",
        checkpoint_table(model),
    ])
