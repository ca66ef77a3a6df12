"""One forward pass with hooks records everything the explorer shows.

`capture(model, ids)` attaches forward hooks to the model's hook points (see
gpt2/model.py), runs the prompt through once, and always removes the hooks again,
also when the pass fails. The result is a `Trace` of numpy arrays in host memory; every
panel redraws from it without running the model again. On a GPU the hooks copy into buffers
on the GPU, and the whole trace comes back to the host in one round of copies after the pass.

What is kept, and why (budget 1.5 GB: a 1024-token prompt on GPT-2 124M keeps ~0.37 GB):

    attention   [layer, head, query, key]  float16: values are in [0, 1], where float16
                                           is exact to ~5e-4; float32 would double the
                                           largest array (12*12*1024*1024 weights)
    residual    [layer+1, pos, d_model]    float32: x_0 (embeddings) and x_l after each block
    resid_mid   [layer, pos, d_model]      float32: x'_l = x_l + a_l, the stream between
                                           block l's attention and its MLP
    logits      [n_vocab]                  raw logits at the last position
    token_surprise [pos - 1]               -ln p(t_{i+1} | t_1..t_i) in nats: how surprised
                                           the model was by each token after the first

What each sub-layer adds follows from these two by subtraction, so it is not stored
twice: a_l = x'_l - x_l and m_l = x_{l+1} - x'_l (the Trace's attn_out and mlp_out).
The subtraction undoes the model's own float32 addition, so it is exact up to one
rounding of the stream, ~6e-8 |x| per number.

Not kept: each head's output before W_O (z_h) would add another T x d_model floats per
layer to every capture, for a view no panel draws by default; heads.head_z recomputes a
layer's from residual[layer] when asked. Every array kept is fresh memory the operating
system has to hand over page by page: each float32 [layer, pos, d_model] array costs a
capture its page faults and copying, whether a panel reads it or not.

The model only projects the last position onto the vocabulary inside the forward pass:
the head is the single largest matrix (n_vocab x d_model), and the logit lens (lens.py)
projects exactly the layers and positions a panel shows, when it shows them. The one
exception is the surprise of each token, the prompt's own training loss: its softmax
needs every position's full row of logits, so `token_surprise` projects the final
stream x_L a block of positions at a time and keeps one number per position, when it is
first asked for (for a long prompt that product costs as much as the capture). Work made
before anyone asked (the app's follow-up to Analyze) may stop between two blocks and go on
later from there (`Trace.project_surprise`).

`capture_hooks(model, ids, names)` is the other way in, for a learner who knows the tensor
they want by name: it records just those hook points, named as in model.py or as in
TransformerLens (gpt2/tl_names.py), and returns each under the name it was asked for.

Hooks are global to the model object, so whatever attaches them (a capture here,
heads.head_z) holds `hooks_lock`, and each hook records only the forward pass of the
thread that attached it: a generation running in another thread at the same time is
not mixed into the trace.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from collections.abc import Callable
from functools import cached_property

import numpy as np
import torch

from gpt2 import GPT2, GPTConfig, get_tokenizer, tl_names
from gpt2.device import to_host, to_model
from gpt2.generate import check_prompt

from .tokens import display_token

hooks_lock = threading.Lock()  # see the end of the module's docstring


@dataclass(eq=False)
class Trace:
    config: GPTConfig
    token_ids: np.ndarray  # [pos] int64
    tok_embed: np.ndarray  # [pos, d_model]   W_te[t]
    pos_embed: np.ndarray  # [pos, d_model]   W_pe[i]
    attention: np.ndarray  # [layer, head, query, key] float16
    residual: np.ndarray  # [layer + 1, pos, d_model]   x_0 .. x_L
    resid_mid: np.ndarray  # [layer, pos, d_model]      x'_0 .. x'_{L-1}
    logits: np.ndarray  # [n_vocab] at the last position
    token_bytes: list[bytes] = field(default_factory=list)
    # Every head's pattern scores (heads.pattern_scores), when the capture was asked to make them where
    # the model ran: on a GPU, before the patterns travel to the host.
    pattern_scores: dict[str, np.ndarray] | None = None
    # Rows start..stop-1 of token_surprise, from the model (capture.token_surprise); None without it.
    surprise_of: Callable[[int, int], np.ndarray] | None = field(default=None, repr=False)

    @cached_property
    def token_surprise(self) -> np.ndarray:
        """[pos - 1] -ln p(t_{i+1} | t_<=i) in nats, projected when first asked for (it costs a
        T x n_vocab product, as much as the rest of a long capture) and then kept."""
        self.project_surprise()
        return self.__dict__["token_surprise"]

    def project_surprise(self, keep_going: Callable[[], bool] = lambda: True) -> bool:
        """Make token_surprise SURPRISE_CHUNK positions at a time, keeping each block made, and stop between
        two blocks once `keep_going()` is false; True once every position is made. Work no one has asked
        for yet (Analyze's follow-up) stops this way as soon as a visitor asks for something, and whoever
        asks for the surprise next goes on from the block where it stopped."""
        if "token_surprise" in self.__dict__:
            return True
        if self.surprise_of is None:
            raise ValueError("this trace was made without the model, so it cannot compute surprise")
        n = max(self.n_tokens - 1, 0)
        blocks = self.__dict__.setdefault("_surprise_blocks", [])
        made = sum(len(block) for block in blocks)
        while made < n:
            if not keep_going():
                return False
            blocks.append(self.surprise_of(made, min(made + SURPRISE_CHUNK, n)))
            made += len(blocks[-1])
        self.__dict__["token_surprise"] = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
        del self.__dict__["_surprise_blocks"]
        return True

    def __getstate__(self) -> dict:
        """What a pickled Trace carries: its arrays, with the surprise computed, and no model.

        On ZeroGPU the analysis is made in a worker process that holds the GPU and is pickled
        back to the app; the surprise is computed there, where the model is, not sent as a
        reference to the model.
        """
        if self.surprise_of is not None:
            self.token_surprise  # noqa: B018 (computes and caches it)
        state = dict(self.__dict__)
        state["surprise_of"] = None
        state.pop("tokens", None)  # cheap to remake
        return state

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    @cached_property
    def tokens(self) -> list[str]:
        """Display strings, one per token (see tokens.py)."""
        return [display_token(piece) for piece in self.token_bytes]

    @property
    def embed(self) -> np.ndarray:
        """x_0 = W_te[t] + W_pe[i], [pos, d_model] (the same array as residual[0])."""
        return self.residual[0]

    @cached_property
    def next_token_probs(self) -> np.ndarray:
        """softmax(logits) at temperature 1, [n_vocab], computed in float64."""
        z = self.logits.astype(np.float64)
        e = np.exp(z - z.max())
        return e / e.sum()

    @cached_property
    def residual_norms(self) -> np.ndarray:
        """||x_l|| per layer and position, [layer + 1, pos]."""
        return np.linalg.norm(self.residual, axis=-1)

    @property
    def attn_out(self) -> np.ndarray:
        """What each block's attention adds to the stream, a_l = x'_l - x_l, [layer, pos, d_model]."""
        return self.resid_mid - self.residual[:-1]

    @property
    def mlp_out(self) -> np.ndarray:
        """What each block's MLP adds to the stream, m_l = x_{l+1} - x'_l, [layer, pos, d_model]."""
        return self.residual[1:] - self.resid_mid

    # The norms are small ([layer, pos]) and panels read them more than once, so they are kept.
    @cached_property
    def attn_out_norms(self) -> np.ndarray:
        return np.linalg.norm(self.attn_out, axis=-1)  # [layer, pos]

    @cached_property
    def mlp_out_norms(self) -> np.ndarray:
        return np.linalg.norm(self.mlp_out, axis=-1)  # [layer, pos]

    def nbytes(self) -> int:
        arrays = (self.token_ids, self.tok_embed, self.pos_embed, self.attention, self.residual,
                  self.resid_mid, self.logits, self.__dict__.get("token_surprise", np.zeros(0)))
        return sum(a.nbytes for a in arrays)


class Recorder:
    """Forward hooks that copy tensors out of one forward pass, in one thread.

    Each key's array is allocated once, [count, ...] in its final dtype, when its first
    tensor arrives, and every hook call copies (and converts) straight into its slot. At
    T = 1024 the attention alone is 300 MB: converting it to float16 in one pass into its
    final place, rather than converting and then stacking, saves a second pass over it.
    """

    def __init__(self):
        self.thread = threading.get_ident()
        self.arrays: dict[str, torch.Tensor] = {}
        self.filled: dict[str, int] = {}
        self.expected: dict[str, int] = {}

    def hook(self, key: str, count: int, dtype=torch.float32, slot: int | None = None):
        """A forward hook copying its tensor into `key`'s array of `count`: into row `slot` when given,
        else into the next free row in the order the hooks fire."""
        self.expected[key] = count

        def record(module, inputs, output):
            if threading.get_ident() != self.thread:
                return
            x = output[0].detach()
            if key not in self.arrays:  # on the model's device: nothing crosses to the host mid-pass
                self.arrays[key] = torch.empty((count, *x.shape), dtype=dtype, device=x.device)
                self.filled[key] = 0
            self.arrays[key][self.filled[key] if slot is None else slot].copy_(x)
            self.filled[key] += 1
        return record

    def result(self) -> dict[str, np.ndarray]:
        if self.filled != self.expected:
            raise RuntimeError(f"capture recorded {self.filled} tensors, expected {self.expected}")
        return to_host(self.arrays)


def trace_hooks(n_layer: int) -> dict[str, tuple[torch.dtype, list[str]]]:
    """What a Trace records, declared once: each array's dtype and the hook point filling each of its rows.

    `residual` is x_0 (what block 0 reads) and then each block's output x_{l+1}: row l + 1 is
    h.{l}.hook_resid_post, whatever order the hooks fire in.
    """
    layers = range(n_layer)
    return {
        "tok_embed": (torch.float32, ["hook_tok_embed"]),
        "pos_embed": (torch.float32, ["hook_pos_embed"]),
        "residual": (torch.float32, ["h.0.hook_resid_pre"] + [f"h.{l}.hook_resid_post" for l in layers]),
        "resid_mid": (torch.float32, [f"h.{l}.hook_resid_mid" for l in layers]),
        "attention": (torch.float16, [f"h.{l}.attn.hook_pattern" for l in layers]),  # see the module docstring
        "logits": (torch.float32, ["hook_logits"]),
    }


def _hooks_to_attach(model: GPT2, recorder: Recorder) -> list[tuple[torch.nn.Module, object]]:
    points = model.hook_points()
    return [(points[name], recorder.hook(key, len(names), dtype, slot=row))
            for key, (dtype, names) in trace_hooks(model.config.n_layer).items() for row, name in enumerate(names)]


@contextmanager
def hooks_attached(hooks):
    """Register forward hooks for the duration of a `with` block; always remove them."""
    handles = []
    try:
        for module, fn in hooks:
            handles.append(module.register_forward_hook(fn))
        yield
    finally:
        for handle in handles:
            handle.remove()


# Positions projected onto the vocabulary at a time by token_surprise: 128 x 50,257 float32
# logits are 26 MB, where a 1024-token prompt at once would take 206 MB for a moment. Also the
# blocks between which Trace.project_surprise may stop.
SURPRISE_CHUNK = 128


@torch.inference_mode()
def token_surprise(model: GPT2, final_stream, token_ids, start: int = 0, stop: int | None = None) -> np.ndarray:
    """-ln p(t_{i+1} | t_1..t_i) for i = start..stop-1 (all of 0..T-2 by default), in nats, from the last
    block's output x_L [pos, d_model].

    p is softmax(LN_f(x_L[i]) W_te^T), the model's own prediction at position i, read at the
    token that really came next. Its mean over the prompt is the cross-entropy loss GPT-2
    was trained to make small; exp of that mean is the perplexity.
    """
    stop = len(token_ids) - 1 if stop is None else stop
    x = to_model(model, final_stream[start:stop])
    targets = torch.as_tensor(np.asarray(token_ids[start + 1:stop + 1], dtype=np.int64)).to(x.device)
    surprise = torch.empty(len(targets), dtype=torch.float32, device=x.device)
    for first in range(0, len(targets), SURPRISE_CHUNK):
        last = min(first + SURPRISE_CHUNK, len(targets))
        logits = model.unembed(model.ln_f(x[first:last])).float()  # (chunk, n_vocab): the model's own tied head
        # -ln softmax(z)[t] = logsumexp(z) - z_t, without forming the whole softmax.
        picked = logits.gather(-1, targets[first:last, None]).squeeze(-1)
        surprise[first:last] = torch.logsumexp(logits, dim=-1) - picked
    return surprise.cpu().numpy()


def capture(model: GPT2, token_ids, tokenizer=None,
            score_patterns: Callable[[torch.Tensor], dict[str, np.ndarray]] | None = None) -> Trace:
    """Run `token_ids` through `model` once and return the Trace of everything recorded.

    `tokenizer` is the model's own (a tiktoken.Encoding); GPT-2's when not given.
    `score_patterns` (heads.pattern_scores) is given every layer's patterns [layer, head, query,
    key] where the model ran, before they travel to the host; its result is Trace.pattern_scores.
    """
    ids = check_prompt(model, token_ids)
    recorder = Recorder()
    device = model.wte.weight.device
    with hooks_lock, hooks_attached(_hooks_to_attach(model, recorder)), torch.inference_mode():
        model(torch.tensor([ids], device=device), last_only=True)
        scores = score_patterns(recorder.arrays["attention"]) if score_patterns else None
    r = recorder.result()
    enc = tokenizer or get_tokenizer()
    pieces = [enc.decode_single_token_bytes(i) if i < enc.n_vocab else b"?" for i in ids]
    return Trace(
        config=model.config,
        token_ids=np.asarray(ids, dtype=np.int64),
        tok_embed=r["tok_embed"][0],
        pos_embed=r["pos_embed"][0],
        attention=r["attention"],
        residual=r["residual"],
        resid_mid=r["resid_mid"],
        logits=r["logits"][0, -1],
        surprise_of=partial(token_surprise, model, r["residual"][-1], ids),
        token_bytes=pieces,
        pattern_scores=scores,
    )


def capture_hooks(model: GPT2, token_ids, names) -> dict[str, np.ndarray]:
    """Run `token_ids` through `model` once and return the tensors at the hook points `names`.

    A name is ours (`h.3.attn.hook_pattern`) or TransformerLens's (`blocks.3.attn.hook_pattern`);
    each array comes back under the name asked for, for the one sequence (no batch axis), in
    float32, and laid out as that naming lays it out: q, k and v asked by TransformerLens's name
    are [pos, head, d_head], by ours [head, pos, d_head] (see gpt2/tl_names.py for where else the
    two differ: this is our model's tensor, so it matches TL's unprocessed weights). Every
    position is projected onto the vocabulary, so hook_logits is [pos, n_vocab].
    """
    ids = check_prompt(model, token_ids)
    names = [names] if isinstance(names, str) else list(names)  # one name, not its characters
    ours = {name: tl_names.to_ours(name, model.config.n_layer) for name in names}  # unknown names fail here
    points = model.hook_points()
    recorder = Recorder()
    hooks = [(points[point], recorder.hook(point, 1)) for point in dict.fromkeys(ours.values())]
    with hooks_lock, hooks_attached(hooks), torch.inference_mode():
        model(torch.tensor([ids], device=model.wte.weight.device))
    recorded = recorder.result()
    return {name: _in_layout_of(name, recorded[point][0]) for name, point in ours.items()}


def _in_layout_of(name: str, array: np.ndarray) -> np.ndarray:
    """The array in the layout of the naming `name` belongs to (a contiguous copy when axes move)."""
    return np.ascontiguousarray(tl_names.in_tl_layout(name, array)) if tl_names.is_tl_name(name) else array
