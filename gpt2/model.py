"""GPT-2 in PyTorch, written to be read next to the paper.

For a sequence of token ids t_1..t_T the model computes (Radford et al. 2019, which
follows Vaswani et al. 2017 with LayerNorm moved to the start of each block):

    x_0    = W_te[t] + W_pe[0..T-1]                        embeddings, (T, d_model)
    for each block l = 1..L:
        a  = Attn(LN_1(x_{l-1}))                           causal multi-head self-attention
        x' = x_{l-1} + a                                   residual
        m  = MLP(LN_2(x'))                                 W_proj · GELU(W_fc · .)
        x_l = x' + m                                       residual
    logits = LN_f(x_L) · W_te^T                            the output head reuses W_te ("tied")

Submodules carry the names of the scopes in OpenAI's TensorFlow checkpoint
(`wte`, `wpe`, `h.{l}.ln_1`, `attn.c_attn`, `attn.c_proj`, `ln_2`, `mlp.c_fc`,
`mlp.c_proj`, `ln_f`), so loading released weights is a name mapping.

Every tensor the explorer shows passes through a `HookPoint`, an identity module that
forward hooks attach to (the idea comes from TransformerLens). Names and shapes:

    hook_tok_embed              [batch, pos, d_model]     W_te[t]
    hook_pos_embed              [1, pos, d_model]         W_pe[i] (the same for every sequence)
    h.{l}.hook_resid_pre        [batch, pos, d_model]     x_{l-1}
    h.{l}.attn.hook_q/k/v       [batch, head, pos, d_head]
    h.{l}.attn.hook_scores      [batch, head, query, key] q·k/sqrt(d_head), -inf above the diagonal
    h.{l}.attn.hook_pattern     [batch, head, query, key] softmax of the scores
    h.{l}.attn.hook_z           [batch, pos, head, d_head] each head's weighted sum of values
    h.{l}.hook_attn_out         [batch, pos, d_model]     a
    h.{l}.hook_resid_mid        [batch, pos, d_model]     x'
    h.{l}.mlp.hook_pre          [batch, pos, d_mlp]       W_fc · LN_2(x') + b  (before GELU)
    h.{l}.mlp.hook_post         [batch, pos, d_mlp]       after GELU
    h.{l}.hook_mlp_out          [batch, pos, d_model]     m
    h.{l}.hook_resid_post       [batch, pos, d_model]     x_l
    hook_final                  [batch, pos, d_model]     LN_f(x_L)
    hook_logits                 [batch, pos, n_vocab]

Attention runs through PyTorch's fused `scaled_dot_product_attention` unless a hook
watches the scores or the pattern; then it forms the T x T pattern explicitly so the
hook can see it, a block of 64 queries at a time so the masked future is skipped. All
paths compute the same function (tests check they agree).

The projections are `packing.Linear`, an nn.Linear that can also keep its weight packed
for the CPU's matrix multiply (`GPT2.prepack()`; see packing.py).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as _module_globals

from .config import GPTConfig
from .packing import Linear, PackedWeight, linear


def _has_hooks(module: nn.Module) -> bool:
    """Whether calling `module` would run any hook: its own, or one registered for every module."""
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or module._backward_pre_hooks or _module_globals._global_forward_hooks
                or _module_globals._global_forward_pre_hooks or _module_globals._global_backward_hooks
                or _module_globals._global_backward_pre_hooks)


class HookPoint(nn.Module):
    """An identity function with a name, so forward hooks can read (or replace) a tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # A decoded token passes ~180 hook points. With no hook to run, nn.Module.__call__
        # would only return forward(x), i.e. x: skip its bookkeeping. With a hook, take the
        # normal path, so hooks fire exactly as on any module.
        return super().__call__(x) if _has_hooks(self) else x

    def is_watched(self) -> bool:
        return bool(self._forward_hooks or self._forward_pre_hooks)


class Dropout(nn.Dropout):
    """nn.Dropout, minus the cost of calling it where it does nothing.

    Outside training dropout is the identity, yet decoding calls it twice per block for every
    token. In eval mode, with no hook to run, this returns x without nn.Module.__call__.
    """

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return super().__call__(x) if self.training or _has_hooks(self) else x


class KVCache:
    """Keys and values of the tokens seen so far, one pair of buffers per layer.

    When decoding, token t only needs its own query against the keys and values of
    tokens 1..t, and those never change (attention is causal). Keeping them turns each
    new token into O(T) work instead of a full O(T^2) pass. Buffers are allocated once
    for `max_len` positions so a step writes in place rather than concatenating.
    """

    def __init__(self, config: GPTConfig, batch_size: int = 1, max_len: int | None = None,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        self.max_len = max_len or config.n_ctx
        shape = (batch_size, config.n_head, self.max_len, config.d_head)  # (B, n_head, T_max, d_head)
        self.keys = [torch.empty(shape, dtype=dtype, device=device) for _ in range(config.n_layer)]
        self.values = [torch.empty(shape, dtype=dtype, device=device) for _ in range(config.n_layer)]
        self.length = 0  # number of positions filled

    def reset(self) -> None:
        self.length = 0

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's k, v (B, n_head, T_new, d_head); return all keys and values so far."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions; this step would need {end}")
        keys, values = self.keys[layer], self.values[layer]
        keys.narrow(2, start, end - start).copy_(k)  # keys[:, :, start:end] = k, without parsing an index
        values.narrow(2, start, end - start).copy_(v)
        return keys.narrow(2, 0, end), values.narrow(2, 0, end)


@functools.lru_cache(maxsize=8)
def causal_mask(q_len: int, k_len: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """True where query i may attend to key j: the last q_len of k_len positions, j <= i.

    Every layer of a forward pass asks for the same mask, so the few most recent are kept.
    """
    offset = k_len - q_len  # queries are the newest positions when a cache holds earlier keys
    q_pos = torch.arange(q_len, device=device).unsqueeze(1) + offset
    k_pos = torch.arange(k_len, device=device).unsqueeze(0)
    return k_pos <= q_pos  # (q_len, k_len)


@functools.lru_cache(maxsize=8)
def causal_bias(q_len: int, k_len: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The mask M added to the scores: 0 where query i may see key j, -inf where j is in its future.

    Adding -inf before the softmax gives those keys weight exactly 0. (An addition is
    also about twice as fast on the CPU as masked_fill with a boolean mask.)
    """
    zeros = torch.zeros(q_len, k_len, device=device)
    return zeros.masked_fill_(~causal_mask(q_len, k_len, device), float("-inf"))  # (q_len, k_len)


class CausalSelfAttention(nn.Module):
    """Multi-head attention where each position sees only itself and earlier positions.

        q, k, v = split(x W_attn + b_attn)                   one matmul, split in that order
        head_h  = softmax(q_h k_h^T / sqrt(d_head) + M) v_h  M = -inf above the diagonal
        out     = concat(head_1..head_H) W_proj + b_proj
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.d_head = config.n_head, config.d_head
        self.scale = 1.0 / math.sqrt(config.d_head)  # scores are q.k / sqrt(d_head)
        self.c_attn = Linear(config.n_embd, 3 * config.n_embd, bias=config.qkv_bias)
        self.c_proj = Linear(config.n_embd, config.n_embd)
        self.dropout = config.dropout
        self.attn_dropout = Dropout(config.dropout)
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()  # (B, n_head, T, d_head)
        self.hook_scores = HookPoint()  # (B, n_head, T_q, T_k)
        self.hook_pattern = HookPoint()  # (B, n_head, T_q, T_k)
        self.hook_z = HookPoint()  # (B, T, n_head, d_head)

    def forward(self, x: torch.Tensor, kv_cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        # c_attn's output is [q | k | v], each C wide, and heads come from the last dimension:
        # (B, T, 3C) -> (B, T, 3, n_head, d_head) -> three views of shape (B, n_head, T, d_head).
        # Three ops where split + view + transpose take seven: a decoded token pays per op.
        qkv = self.c_attn(x).view(B, T, 3, self.n_head, self.d_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        if kv_cache is not None:
            k, v = kv_cache.append(layer, k, v)  # (B, n_head, T_past + T, d_head)

        if self.hook_scores.is_watched() or self.hook_pattern.is_watched():
            z = self._explicit_attention(q, k, v)
        else:
            z = self._fused_attention(q, k, v)  # (B, n_head, T, d_head)

        z = self.hook_z(z.transpose(1, 2))  # (B, T, n_head, d_head)
        return self.c_proj(z.reshape(B, T, C))

    def _fused_attention(self, q, k, v):
        T_q, T_k = q.shape[2], k.shape[2]
        dropout = self.dropout if self.training else 0.0
        if T_q == 1:  # one new token sees every cached key: no mask needed
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        if T_q == T_k:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        mask = causal_mask(T_q, T_k, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)

    def _explicit_attention(self, q, k, v):
        T_q, T_k = q.shape[2], k.shape[2]
        if T_q >= 2 * ATTENTION_BLOCK and not self.training and not self.hook_scores.is_watched():
            return self._blocked_attention(q, k, v)
        # Scores and softmax in float32 even for a bfloat16 model: the pattern is what learners read.
        scores = (q.float() @ k.float().transpose(-2, -1)).mul_(self.scale)
        scores = self.hook_scores(scores.add_(causal_bias(T_q, T_k, q.device)))  # (B, n_head, T_q, T_k)
        pattern = self.hook_pattern(torch.softmax(scores, dim=-1))
        return self.attn_dropout(pattern).to(v.dtype) @ v  # (B, n_head, T_q, d_head)

    def _blocked_attention(self, q, k, v):
        """The same pattern and output, computed a block of queries at a time.

        Query i sees keys 0..i only, so the block of queries [start, end) needs keys
        [0, end) and the rest of its rows are exactly 0. Skipping them saves ~1/3 of the
        score and value products at T = 256 and ~1/2 at T = 1024, where they dominate.
        Inside a block only its last square of keys, [start, end), can lie in some query's
        future, so the -inf mask M is added to that square alone.
        The full (B, n_head, T_q, T_k) pattern is still formed for hook_pattern; if a hook
        hands back a different tensor, the output is computed from all of that tensor.
        """
        B, H, T_q, d_head = q.shape
        T_k = k.shape[2]
        offset = T_k - T_q  # queries are the last T_q positions when a cache holds earlier keys
        qf, kf = q.float(), k.float()  # no copies for a float32 model
        pattern = qf.new_empty(B, H, T_q, T_k)  # each block writes its rows, zeros included
        z = v.new_empty(B, T_q, H, d_head).transpose(1, 2)  # (B, H, T_q, d_head), stored as hook_z wants it
        for b in range(B):
            # q, k and v stay strided views into c_attn's output: the matrix products read them
            # in place, and the 1/sqrt(d_head) scale rides along as the product's alpha.
            q_b, k_t, v_b = qf[b], kf[b].transpose(-2, -1), v[b]  # (H, T_q, d), (H, d, T_k), (H, T_k, d)
            for start in range(0, T_q, ATTENTION_BLOCK):
                end = min(start + ATTENTION_BLOCK, T_q)
                size, seen = end - start, offset + end  # keys 0..seen-1 are visible to some query here
                scores = torch.baddbmm(_no_bias(q.device), q_b[:, start:end], k_t[:, :, :seen],
                                       beta=0, alpha=self.scale)
                scores[:, :, seen - size:].add_(causal_bias(size, size, q.device))  # (H, size, seen)
                probs = torch.softmax(scores, dim=-1)
                pattern[b, :, start:end, :seen] = probs
                pattern[b, :, start:end, seen:] = 0.0  # keys no query of this block may see
                # The block's output while its probabilities are still in cache.
                z[b, :, start:end] = torch.bmm(probs.to(v.dtype), v_b[:, :seen])
        watched = self.hook_pattern(pattern)
        if watched is not pattern:  # a hook replaced the pattern: the output follows the new one
            return watched.to(v.dtype) @ v
        return z  # (B, n_head, T_q, d_head)


@functools.lru_cache(maxsize=4)
def _no_bias(device: torch.device | str) -> torch.Tensor:
    """baddbmm's `input` when beta=0: ignored, so the scores are only alpha * (q @ k^T)."""
    return torch.zeros((), device=device)


# Queries per block in CausalSelfAttention._blocked_attention: 64 was fastest at T = 256 and 1024 on
# a 2-core CPU (32 pays too much per-block overhead; 128 skips less of the masked triangle).
ATTENTION_BLOCK = 64


_GELU_C = 2.0 * math.sqrt(2.0 / math.pi)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GPT-2's GELU, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), written as x * sigmoid(2u).

    The two are the same function: 0.5 (1 + tanh(u)) = sigmoid(2u). On the CPU the sigmoid
    form, done in place in five passes over the tensor, takes about half the time of
    F.gelu(approximate="tanh") and agrees with it to ~1e-7 (tests check both). The MLP
    applies it to T x 3072 numbers per block, which made it the largest cost of a forward
    pass after the matrix multiplies. The in-place steps would break autograd, so when
    gradients are being recorded this uses PyTorch's own GELU.
    """
    if torch.is_grad_enabled() and x.requires_grad:
        return F.gelu(x, approximate="tanh")
    u = x * x
    torch.addcmul(x, u, x, value=0.044715, out=u)  # x + 0.044715 x^3
    return torch.sigmoid_(u.mul_(_GELU_C)).mul_(x)  # 2u = 2 sqrt(2/pi) (x + 0.044715 x^3)


class MLP(nn.Module):
    """The position-wise feed-forward network: MLP(x) = GELU(x W_fc + b_fc) W_proj + b_proj.

    GPT-2 uses the tanh approximation of GELU,
        GELU(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
    and a hidden width of 4 * d_model.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        d_mlp = config.mlp_ratio * config.n_embd
        self.c_fc = Linear(config.n_embd, d_mlp)
        self.c_proj = Linear(d_mlp, config.n_embd)
        self.hook_pre = HookPoint()  # (B, T, d_mlp)
        self.hook_post = HookPoint()  # (B, T, d_mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.hook_pre(self.c_fc(x))
        post = self.hook_post(gelu_tanh(pre))
        return self.c_proj(post)


class Block(nn.Module):
    """One pre-LayerNorm transformer block: x + Attn(LN_1(x)), then + MLP(LN_2(.)).

    LayerNorm(x) = g * (x - mean(x)) / sqrt(var(x) + eps) + b over the d_model features
    of each position, with eps = 1e-5.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.mlp = MLP(config)
        self.resid_dropout = Dropout(config.dropout)
        self.hook_resid_pre = HookPoint()  # (B, T, d_model)
        self.hook_attn_out = HookPoint()  # (B, T, d_model)
        self.hook_resid_mid = HookPoint()  # (B, T, d_model)
        self.hook_mlp_out = HookPoint()  # (B, T, d_model)
        self.hook_resid_post = HookPoint()  # (B, T, d_model)

    def forward(self, x: torch.Tensor, kv_cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = self.hook_resid_pre(x)
        attn_out = self.hook_attn_out(self.resid_dropout(self.attn(self.ln_1(x), kv_cache, layer)))
        x = self.hook_resid_mid(x + attn_out)
        mlp_out = self.hook_mlp_out(self.resid_dropout(self.mlp(self.ln_2(x))))
        return self.hook_resid_post(x + mlp_out)


class GPT2(nn.Module):
    """The whole model: embeddings, `n_layer` blocks, a final LayerNorm and the tied head.

    `model(ids)` maps a LongTensor (batch, T) to logits (batch, T, n_vocab): the
    unnormalised log-probabilities of the token after each position.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.n_vocab, config.n_embd)  # token embeddings, also the output head
        self.wpe = nn.Embedding(config.n_ctx, config.n_embd)  # learned absolute position embeddings
        self.drop = Dropout(config.dropout)
        self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.hook_tok_embed = HookPoint()  # (B, T, d_model)
        self.hook_pos_embed = HookPoint()  # (B, T, d_model)
        self.hook_final = HookPoint()  # (B, T, d_model)
        self.hook_logits = HookPoint()  # (B, T, n_vocab)
        self.packed_head: PackedWeight | None = None  # W_te packed for the head, see prepack()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # GPT-2's initialisation: N(0, 0.02) weights, zero biases; LayerNorm starts as identity.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def new_kv_cache(self, batch_size: int = 1, max_len: int | None = None) -> KVCache:
        weight = self.wte.weight
        return KVCache(self.config, batch_size, max_len, dtype=weight.dtype, device=weight.device)

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
        tok = self.hook_tok_embed(self.wte(ids))  # (B, T, d_model)
        pos = self.hook_pos_embed(self.wpe(positions).unsqueeze(0))  # (1, T, d_model)
        x = self.drop(tok + pos)
        for layer, block in enumerate(self.h):
            x = block(x, kv_cache, layer)
        if kv_cache is not None:
            kv_cache.length += T
        if last_only:
            x = x[:, -1:]
        x = self.hook_final(self.ln_f(x))
        return self.hook_logits(linear(x, self.wte.weight, None, self.packed_head))  # tied head: h @ W_te^T

    def prepack(self, enable: bool = True) -> bool:
        """Keep a copy of every projection's weight (and the head's) packed for the CPU.

        Faster float32 inference on the CPU for the price of one more copy of those weights
        in memory; see packing.py. Call again after replacing weights; `enable=False` frees
        the copies. Returns whether packed weights are in use (False where oneDNN cannot pack).
        """
        linears = [m for m in self.modules() if isinstance(m, Linear)]
        if not enable:
            for m in linears:
                m.unpack()
            self.packed_head = None
            return False
        packed = [m.pack() for m in linears]
        self.packed_head = PackedWeight.of(self.wte.weight)
        return all(packed) and self.packed_head is not None

    def hook_points(self) -> dict[str, HookPoint]:
        """Every hook point by its dotted name, e.g. 'h.3.attn.hook_pattern'."""
        return {name: module for name, module in self.named_modules() if isinstance(module, HookPoint)}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
