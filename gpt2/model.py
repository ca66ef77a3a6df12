"""GPT-2 in PyTorch, written to be read next to the paper.

For a sequence of token ids t_0..t_{T-1} the model computes (Radford et al. 2019):

    x_0     = W_te[t] + W_pe[0..T-1]                      embeddings, (T, d_model)
    for each block l = 0..L-1:
        a_l     = Attn(LN_1(x_l))                         causal multi-head self-attention
        x'_l    = x_l + a_l                               residual
        m_l     = MLP(LN_2(x'_l))                         W_proj · GELU(W_fc · .)
        x_{l+1} = x'_l + m_l                              residual
    logits  = LN_f(x_L) · W_te^T                          the output head reuses W_te ("tied")

How GPT-2 differs from the Transformer of Vaswani et al. (2017):

    * decoder only: no encoder and no cross-attention; each position attends to itself and
      the positions before it, and the model is trained to predict the next token;
    * learned position embeddings W_pe (1024 of them, the context length) instead of sines;
    * GELU (its tanh approximation) instead of ReLU in the MLP;
    * pre-LN: LayerNorm at the start of each sub-block, inside the residual branch, rather
      than after the addition, plus a final LayerNorm LN_f after the last block;
    * the residual projections (attn.c_proj, mlp.c_proj) start with weights scaled by
      1/sqrt(N), N the number of residual layers (see `GPT2._init_weights`);
    * a byte-level BPE vocabulary of 50,257 tokens, whose embedding matrix is also the head.

Submodules carry the names of the scopes in OpenAI's TensorFlow checkpoint
(`wte`, `wpe`, `h.{l}.ln_1`, `attn.c_attn`, `attn.c_proj`, `ln_2`, `mlp.c_fc`,
`mlp.c_proj`, `ln_f`), so loading released weights is a name mapping.

Every tensor the explorer shows passes through a `HookPoint`, an identity module that
forward hooks attach to (the idea comes from TransformerLens). Names and shapes, with
B = batch, T = positions (T_k = keys: with a KV cache, the cached positions and the T new
ones), C = d_model, as in the shape comments of the code:

    hook_tok_embed              (B, T, C)                 W_te[t]
    hook_pos_embed              (1, T, C)                 W_pe[i] (the same for every sequence)
    h.{l}.hook_resid_pre        (B, T, C)                 x_l (h.0 reads x_0, the embeddings)
    h.{l}.attn.hook_q/k/v       (B, n_head, T, d_head)    k and v before the cache adds earlier positions
    h.{l}.attn.hook_scores      (B, n_head, T, T_k)       q·k/sqrt(d_head), -inf above the diagonal
    h.{l}.attn.hook_pattern     (B, n_head, T, T_k)       softmax of the scores: rows are queries, columns keys
    h.{l}.attn.hook_z           (B, T, n_head, d_head)    each head's weighted sum of values
    h.{l}.hook_attn_out         (B, T, C)                 a_l
    h.{l}.hook_resid_mid        (B, T, C)                 x'_l
    h.{l}.mlp.hook_pre          (B, T, d_mlp)             LN_2(x'_l) W_fc + b_fc  (before GELU)
    h.{l}.mlp.hook_post         (B, T, d_mlp)             after GELU
    h.{l}.hook_mlp_out          (B, T, C)                 m_l
    h.{l}.hook_resid_post       (B, T, C)                 x_{l+1}
    hook_final                  (B, T, C)                 LN_f(x_L)
    hook_logits                 (B, T, n_vocab)

This file is the reference: plain PyTorch, one way to compute each step. `gpt2/fast.py`
turns a model built here into one that computes the same numbers faster on a CPU.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .config import GPTConfig


class HookPoint(nn.Module):
    """An identity function with a name, so forward hooks can read (or replace) a tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class KVCache:
    """Keys and values of the tokens seen so far, one pair of buffers per layer.

    When decoding, attention is causal, so nothing a block computed for an earlier
    position ever changes when a new token arrives. A decoder therefore only runs the new
    token through the model: its embeddings, projections and MLP, and its query against
    the keys and values kept here. Without the cache every step would redo all of that
    for every earlier position. Buffers are allocated once for `max_len` positions.

    Each layer appends its new keys and values; when the last layer has, the new positions
    count as filled (`length`), so the next forward pass starts after them.
    """

    def __init__(self, config: GPTConfig, batch_size: int = 1, max_len: int | None = None,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        self.max_len = max_len or config.n_ctx
        shape = (batch_size, config.n_head, self.max_len, config.d_head)  # (B, n_head, T_max, d_head)
        self.n_layer = config.n_layer
        self.keys = [torch.empty(shape, dtype=dtype, device=device) for _ in range(config.n_layer)]
        self.values = [torch.empty(shape, dtype=dtype, device=device) for _ in range(config.n_layer)]
        self.length = 0  # number of positions filled

    def reset(self) -> None:
        self.length = 0

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's k, v (B, n_head, T, d_head); return all keys and values so far (B, n_head, T_k, d_head)."""
        if not isinstance(layer, int) or not 0 <= layer < self.n_layer:
            raise ValueError(f"a KV cache append needs the block's layer, 0 to {self.n_layer - 1}; got {layer!r}")
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions; this step would need {end}")
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        keys, values = self.keys[layer][:, :, :end], self.values[layer][:, :, :end]
        if layer == self.n_layer - 1:  # every layer has these positions now
            self.length = end
        return keys, values


class CausalSelfAttention(nn.Module):
    """Multi-head attention where each position sees only itself and earlier positions.

        q, k, v = split(x W_attn + b_attn)                   one matmul, split in that order
        head_h  = softmax(q_h k_h^T / sqrt(d_head) + M) v_h  M = -inf above the diagonal
        out     = concat(head_1..head_H) W_proj + b_proj

    The mask M is what makes GPT-2 a decoder: query i gets no weight on keys j > i, so the
    prediction at position i depends on tokens 0..i only. Vaswani et al.'s encoder has no M,
    and their decoder adds a second, cross-attention to an encoder, which GPT-2 drops.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.d_head = config.n_head, config.d_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.qkv_bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()  # (B, n_head, T, d_head)
        self.hook_scores = HookPoint()  # (B, n_head, T, T_k)
        self.hook_pattern = HookPoint()  # (B, n_head, T, T_k)
        self.hook_z = HookPoint()  # (B, T, n_head, d_head)

    def forward(self, x: torch.Tensor, kv_cache: KVCache | None = None, layer: int | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # (B, T, C) each
        # Head h owns features h*d_head .. (h+1)*d_head - 1 of each: (B, T, C) -> (B, n_head, T, d_head).
        q = self.hook_q(q.view(B, T, self.n_head, self.d_head).transpose(1, 2))
        k = self.hook_k(k.view(B, T, self.n_head, self.d_head).transpose(1, 2))
        v = self.hook_v(v.view(B, T, self.n_head, self.d_head).transpose(1, 2))
        if kv_cache is not None:
            k, v = kv_cache.append(layer, k, v)  # (B, n_head, T_k, d_head), earlier positions first
        T_k = k.shape[2]

        # Scores and softmax in float32 even for a bfloat16 model: the pattern is what learners read.
        scores = q.float() @ k.float().transpose(-2, -1) / math.sqrt(self.d_head)  # (B, n_head, T, T_k)
        # The queries are the last T of the T_k positions: query i sits at position T_k - T + i.
        future = torch.ones(T, T_k, dtype=torch.bool, device=x.device).triu(diagonal=T_k - T + 1)
        scores = self.hook_scores(scores.masked_fill(future, float("-inf")))
        pattern = self.hook_pattern(torch.softmax(scores, dim=-1))  # each row sums to 1
        z = self.attn_dropout(pattern).to(v.dtype) @ v  # (B, n_head, T, d_head)

        z = self.hook_z(z.transpose(1, 2))  # (B, T, n_head, d_head)
        return self.c_proj(z.reshape(B, T, C))  # concatenate the heads, then W_proj


def gelu(x: torch.Tensor) -> torch.Tensor:
    """GPT-2's GELU, the tanh approximation of x * Phi(x) (Hendrycks and Gimpel 2016):

        GELU(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))

    Like ReLU it passes large positive x and silences large negative x, but smoothly, with
    a small negative dip around x = -0.75.
    """
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


class MLP(nn.Module):
    """The position-wise feed-forward network: MLP(x) = GELU(x W_fc + b_fc) W_proj + b_proj.

    As in Vaswani et al. the hidden layer is 4 * d_model wide (3072 for GPT-2 124M) and each
    position is transformed on its own; GPT-2 uses GELU where they used ReLU.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        d_mlp = config.mlp_ratio * config.n_embd
        self.c_fc = nn.Linear(config.n_embd, d_mlp)
        self.c_proj = nn.Linear(d_mlp, config.n_embd)
        self.hook_pre = HookPoint()  # (B, T, d_mlp)
        self.hook_post = HookPoint()  # (B, T, d_mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.hook_pre(self.c_fc(x))  # (B, T, d_mlp)
        post = self.hook_post(gelu(pre))  # (B, T, d_mlp)
        return self.c_proj(post)  # (B, T, C)


class Block(nn.Module):
    """One pre-LN transformer block: x' = x + Attn(LN_1(x)), then x' + MLP(LN_2(x')).

    LayerNorm(x) = g * (x - mean(x)) / sqrt(var(x) + eps) + b over the d_model features
    of each position, with eps = 1e-5. Vaswani et al. normalised after each addition
    (post-LN, x = LN(x + Attn(x))); GPT-2 normalises each branch's input instead, so the
    residual stream passes from block to block un-normalised, each block adding to it, and
    LN_f normalises it once at the end.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.mlp = MLP(config)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.hook_resid_pre = HookPoint()  # (B, T, C)
        self.hook_attn_out = HookPoint()  # (B, T, C)
        self.hook_resid_mid = HookPoint()  # (B, T, C)
        self.hook_mlp_out = HookPoint()  # (B, T, C)
        self.hook_resid_post = HookPoint()  # (B, T, C)

    def forward(self, x: torch.Tensor, kv_cache: KVCache | None = None, layer: int | None = None) -> torch.Tensor:
        x = self.hook_resid_pre(x)
        attn_out = self.hook_attn_out(self.resid_dropout(self.attn(self.ln_1(x), kv_cache, layer)))
        x = self.hook_resid_mid(x + attn_out)
        mlp_out = self.hook_mlp_out(self.resid_dropout(self.mlp(self.ln_2(x))))
        return self.hook_resid_post(x + mlp_out)


class GPT2(nn.Module):
    """The whole model: embeddings, `n_layer` blocks, a final LayerNorm and the tied head.

    `model(ids)` maps a LongTensor (B, T) to logits (B, T, n_vocab): the unnormalised
    log-probabilities of the token after each position. The released models have a
    context of n_ctx = 1024 positions and a vocabulary of n_vocab = 50,257 tokens. The
    head has no weights of its own: logits = LN_f(x_L) W_te^T reuses the token
    embeddings (`unembed`), as Vaswani et al. also shared them.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.n_vocab, config.n_embd)  # token embeddings, also the output head
        self.wpe = nn.Embedding(config.n_ctx, config.n_embd)  # learned absolute position embeddings
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.hook_tok_embed = HookPoint()  # (B, T, C)
        self.hook_pos_embed = HookPoint()  # (1, T, C)
        self.hook_final = HookPoint()  # (B, T, C)
        self.hook_logits = HookPoint()  # (B, T, n_vocab)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """GPT-2's initialisation, for a model trained from scratch (loading weights overwrites it).

        Weights ~ N(0, 0.02) and biases 0, as in OpenAI's code; W_pe ~ N(0, 0.01), also from
        OpenAI's code. The paper (section 2.3) scales "the weights of residual layers at
        initialization by a factor of 1/sqrt(N) where N is the number of residual layers":
        attn.c_proj and mlp.c_proj each add their output to the residual stream, so N = 2 * n_layer.
        At the start those N outputs are roughly independent, so the stream's variance grows by
        one branch's variance per addition; the 1/sqrt(N) keeps their sum at the scale of one.
        nn.LayerNorm already starts as the identity (g = 1, b = 0).
        """
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.01 if module is self.wpe else 0.02)
        elif isinstance(module, (CausalSelfAttention, MLP)):  # apply() visits a module after its children
            nn.init.normal_(module.c_proj.weight, mean=0.0, std=0.02 / math.sqrt(2 * self.config.n_layer))

    def new_kv_cache(self, batch_size: int = 1, max_len: int | None = None) -> KVCache:
        weight = self.wte.weight
        return KVCache(self.config, batch_size, max_len, dtype=weight.dtype, device=weight.device)

    def unembed(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for final hidden states x = LN_f(x_L), (..., C) -> (..., n_vocab): x W_te^T.

        The head is the token embedding matrix itself ("tied" weights): a token's logit is
        the dot product of the hidden state with that token's embedding.
        """
        return F.linear(x, self.wte.weight)

    def forward(self, ids: torch.Tensor, kv_cache: KVCache | None = None, last_only: bool = False) -> torch.Tensor:
        """Logits (B, T, n_vocab) for token ids (B, T).

        With a `kv_cache`, `ids` are the tokens after those already cached, and their
        positions continue from there. `last_only=True` projects only the last position
        onto the vocabulary (all a decoder needs), returning (B, 1, n_vocab).
        """
        B, T = ids.shape
        start = kv_cache.length if kv_cache is not None else 0
        if start + T > self.config.n_ctx:
            raise ValueError(f"sequence of {start + T} tokens is longer than the context of {self.config.n_ctx}")
        positions = torch.arange(start, start + T, device=ids.device)  # (T,)
        tok = self.hook_tok_embed(self.wte(ids))  # (B, T, C)
        pos = self.hook_pos_embed(self.wpe(positions).unsqueeze(0))  # (1, T, C)
        x = self.drop(tok + pos)  # x_0
        for layer, block in enumerate(self.h):
            x = block(x, kv_cache, layer)  # x_{layer + 1}
        if last_only:
            x = x[:, -1:]  # (B, 1, C)
        x = self.hook_final(self.ln_f(x))
        return self.hook_logits(self.unembed(x))

    def hook_points(self) -> dict[str, HookPoint]:
        """Every hook point by its dotted name, e.g. 'h.3.attn.hook_pattern'."""
        return {name: module for name, module in self.named_modules() if isinstance(module, HookPoint)}

    def num_parameters(self) -> int:
        """Parameters counted once: W_te serves as embedding and head."""
        return sum(p.numel() for p in self.parameters())
