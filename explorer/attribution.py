"""Who wrote this prediction: direct logit attribution and activation patching.

Direct logit attribution. GPT-2's last residual stream is a sum of what each part wrote:

    x_L = (W_te[t] + W_pe[i])                                   the embeddings
        + sum over layers l and heads h of  z_{l,h} W_O[l,h]     each head: its z through its rows of W_O
        + sum over layers l of  b_O[l]                           attention's output bias, owned by no head
        + sum over layers l of  m_l                              each MLP's output, its bias included

and a token's logit is LN_f(x_L) . W_te[token]. LN_f is not linear: it subtracts the mean,
divides by the standard deviation sigma and then scales by gamma and adds beta. With sigma
taken from this very x_L ("frozen"), it is linear in x_L, so the logit splits exactly into
one number per part:

    logit = sum over parts p of  (p - mean(p)) . (gamma * W_te[token] / sigma)  +  beta . W_te[token]

The last term, beta's, joins the attention biases in `rest`. For a logit difference (a target
against a foil, what IOI-style experiments read) W_te[token] becomes W_te[target] - W_te[foil].

What it does not say: a head's part is only what it writes straight into the stream that the
head at the end reads. A head can matter far more through what later layers do with its output
(that is what patching measures), and a large part is a correlation of this one forward pass,
not proof that the model needs it.

Activation patching. Run a clean prompt and a corrupted one of the same length, copy one
activation of the clean run into the corrupted run, and see how much of the clean answer comes
back:

    recovered = (diff_patched - diff_corrupted) / (diff_clean - diff_corrupted)

where diff is logit(target) - logit(foil) at the last position: 0 = the corrupted answer,
1 = the clean one. A site is a residual stream (`resid_pre`, before block l, or `resid_post`,
after it), a block's attention output (`attn_out`) or MLP output (`mlp_out`) at one layer and
position, or one head's output z at every position (`head_out`).

Both run through forward hooks only, like interventions.py: no weight is touched, the hooks
are removed when the pass ends (also when it fails), and they act only in the thread that
added them. Patching runs the corrupted prompt once per site, many sites to a batch: each row
of the batch patches its own site. A site where the two runs already agree (before the first
token that differs) needs no pass: copying equal numbers changes nothing, so it recovers 0.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

from gpt2 import GPT2
from gpt2.generate import check_prompt

from .capture import hooks_attached, hooks_lock

SITES = ("resid_pre", "resid_post", "attn_out", "mlp_out", "head_out")
# Where each site is read and written: the hook point of block l (head_out: its z, every head).
_SITE_HOOK = {"resid_pre": "hook_resid_pre", "resid_post": "hook_resid_post", "attn_out": "hook_attn_out",
              "mlp_out": "hook_mlp_out", "head_out": "attn.hook_z"}
# Positions a patching batch holds at most (rows x tokens): bounds the memory of one pass.
PATCH_BATCH_TOKENS = 4096


def _token(model: GPT2, value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{field} must be a token id, got {value!r}")
    if not 0 <= int(value) < model.config.n_vocab:
        raise ValueError(f"{field}: token id {int(value)} does not exist; this model's ids are 0–"
                         f"{model.config.n_vocab - 1:,}")
    return int(value)


def _hook_point(model: GPT2, layer: int, name: str):
    module = model.h[layer]
    for part in name.split("."):
        module = getattr(module, part)
    return module


# ---------------------------------------------------------------- direct logit attribution

@dataclass
class Attribution:
    """A last-position logit (or a logit difference) split into what each part wrote."""

    target: int  # the token whose logit is split
    foil: int | None  # with a foil, the split is of logit(target) - logit(foil)
    logit: float  # the model's own logit (or difference) at the last position
    embed: float  # token + position embedding
    heads: np.ndarray  # [n_layer, n_head]: each head's z through its rows of W_O
    mlps: np.ndarray  # [n_layer]: each MLP's output, bias included
    rest: float  # the attention output biases and LN_f's beta: parts no head or MLP owns
    sigma: float  # LN_f's standard deviation at the last position, held fixed

    @property
    def total(self) -> float:
        """The sum of the parts: equals `logit` up to rounding."""
        return float(self.embed + self.heads.sum() + self.mlps.sum() + self.rest)

    def parts(self) -> list[tuple[str, float]]:
        """Every part with a name, largest in size first: ("head 1.0", 2.3), ("MLP 0", -0.4), ..."""
        named = [("embeddings", self.embed), ("rest (biases)", self.rest)]
        named += [(f"MLP {layer}", float(value)) for layer, value in enumerate(self.mlps)]
        named += [(f"head {layer}.{head}", float(self.heads[layer, head]))
                  for layer in range(self.heads.shape[0]) for head in range(self.heads.shape[1])]
        return sorted(named, key=lambda item: -abs(item[1]))

    def by_layer(self) -> dict[str, np.ndarray]:
        """Per layer: the heads' sum and the MLP, [n_layer] each."""
        return {"heads": self.heads.sum(axis=1), "mlps": self.mlps.copy()}


@torch.inference_mode()
def logit_attribution(model: GPT2, ids, target: int | None = None, foil: int | None = None) -> Attribution:
    """Split the last position's logit of `target` (default: the most likely next token), or its
    difference with `foil`'s, into the embeddings, every head, every MLP and the rest (see the module
    docstring). One forward pass; the split is computed in float64."""
    ids = check_prompt(model, ids)
    config = model.config
    thread, kept = threading.get_ident(), {}

    def keep(name):
        def hook(module, inputs, out):
            if threading.get_ident() == thread:
                kept[name] = out[0, -1].detach().to("cpu", torch.float64)  # the last position
        return hook

    hooks = [(model.hook_tok_embed, keep("tok")), (model.hook_pos_embed, keep("pos")),
             (model.h[-1].hook_resid_post, keep("x_L"))]
    for layer in range(config.n_layer):
        hooks += [(model.h[layer].attn.hook_z, keep(("z", layer))), (model.h[layer].hook_mlp_out, keep(("mlp", layer)))]
    device = model.wte.weight.device
    with hooks_lock, hooks_attached(hooks):
        logits = model(torch.tensor([ids], device=device), last_only=True)[0, -1].double().cpu()
    target = int(logits.argmax()) if target is None else _token(model, target, "target")
    if foil is not None:
        foil = _token(model, foil, "foil")
        if foil == target:
            raise ValueError("the foil must be another token than the target: their difference is always 0")

    def weight(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.detach().to("cpu", torch.float64)

    direction = weight(model.wte.weight[target])
    if foil is not None:
        direction = direction - weight(model.wte.weight[foil])
    x_L = kept["x_L"]
    sigma = float(torch.sqrt(x_L.var(unbiased=False) + model.ln_f.eps))
    u = weight(model.ln_f.weight) * direction / sigma
    w = u - u.mean()  # (p - mean(p)) . u == p . (u - mean(u)): centring moves onto the direction
    heads = np.zeros((config.n_layer, config.n_head))
    mlps = np.zeros(config.n_layer)
    rest = float(weight(model.ln_f.bias) @ direction)
    for layer in range(config.n_layer):
        proj = model.h[layer].attn.c_proj
        read = weight(proj.weight).T @ w  # [C]: what each feature of concat(z) adds to the logit
        z = kept[("z", layer)]  # [n_head, d_head]
        heads[layer] = (z * read.view(config.n_head, config.d_head)).sum(-1).numpy()
        if proj.bias is not None:
            rest += float(weight(proj.bias) @ w)
        mlps[layer] = float(kept[("mlp", layer)] @ w)
    embed = float((kept["tok"] + kept["pos"]) @ w)
    logit = float(logits[target] - (logits[foil] if foil is not None else 0.0))
    return Attribution(target, foil, logit, embed, heads, mlps, rest, sigma)


# ---------------------------------------------------------------- activation patching

@dataclass
class Patching:
    """How much of the clean answer each patched site brings back into the corrupted run."""

    site: str
    recovered: np.ndarray  # [n_layer, n_pos] (a stream or a block's output) or [n_layer, n_head] (head_out)
    clean_diff: float  # logit(target) - logit(foil), last position, clean run
    corrupted_diff: float  # the same, corrupted run
    target: int
    foil: int
    first_difference: int  # the first position where the two prompts' tokens differ
    passes: int  # batched forward passes run (the two plain runs not counted)
    rows: int  # sites actually run (the others agreed in both runs)

    @property
    def by_head(self) -> bool:
        return self.site == "head_out"


class PromptLengthMismatch(ValueError):
    """The two prompts of a patching experiment have different numbers of tokens."""


def _check_pair(model: GPT2, clean_ids, corrupted_ids, tokenizer=None) -> tuple[list[int], list[int]]:
    clean, corrupted = check_prompt(model, clean_ids), check_prompt(model, corrupted_ids)
    if len(clean) != len(corrupted):
        def shown(ids):
            if tokenizer is None:
                return str(ids)
            return ", ".join(repr(tokenizer.decode([i])) for i in ids)  # quoted: a leading space shows
        raise PromptLengthMismatch(
            f"the two prompts must have the same number of tokens, so that each position of one matches the same "
            f"position of the other: the clean prompt has {len(clean)} ({shown(clean)}), the corrupted one "
            f"{len(corrupted)} ({shown(corrupted)}). Change a word into one of the same length in tokens.")
    if clean == corrupted:
        raise ValueError("the clean and the corrupted prompt are the same tokens: change a word of the corrupted one")
    return clean, corrupted


@torch.inference_mode()
def patch(model: GPT2, clean_ids, corrupted_ids, target: int, foil: int, site: str = "resid_pre",
          tokenizer=None) -> Patching:
    """Patch every site of one kind from the clean run into the corrupted run, one at a time.

    `site` is one of SITES. For a stream or a block's output, every (layer, position) is
    patched; for `head_out`, every (layer, head), at all positions. Returns the share of the
    clean logit difference each site recovers (module docstring). `tokenizer`, if given, lets a
    length mismatch show both tokenisations.
    """
    if site not in SITES:
        raise ValueError(f"site must be one of {', '.join(SITES)}, got {site!r}")
    clean, corrupted = _check_pair(model, clean_ids, corrupted_ids, tokenizer)
    target, foil = _token(model, target, "target"), _token(model, foil, "foil")
    if foil == target:
        raise ValueError("the foil must be another token than the target: their difference is always 0")
    config, T = model.config, len(clean)
    thread, device = threading.get_ident(), model.wte.weight.device
    points = [_hook_point(model, layer, _SITE_HOOK[site]) for layer in range(config.n_layer)]

    # The two plain runs, keeping every layer's activation at the site.
    kept: dict[int, torch.Tensor] = {}

    def keep(layer):
        def hook(module, inputs, out):
            if threading.get_ident() == thread:
                kept[layer] = out.detach().clone()  # [2, T, ...]: row 0 clean, row 1 corrupted
        return hook

    with hooks_lock, hooks_attached([(point, keep(layer)) for layer, point in enumerate(points)]):
        logits = model(torch.tensor([clean, corrupted], device=device), last_only=True)[:, -1].double()
    diffs = (logits[:, target] - logits[:, foil]).cpu()
    clean_diff, corrupted_diff = float(diffs[0]), float(diffs[1])
    if abs(clean_diff - corrupted_diff) < 1e-6:
        raise ValueError(f"the two prompts give the same logit difference ({clean_diff:.3f}), so there is nothing "
                         "to recover: pick a target and a foil whose order the corruption changes")

    # Every site, and which of them differ between the runs (the others recover exactly 0).
    width = config.n_head if site == "head_out" else T
    sites = [(layer, index) for layer in range(config.n_layer) for index in range(width)]

    def value(layer, index, row):  # the site's activation in one of the plain runs
        return kept[layer][row, :, index] if site == "head_out" else kept[layer][row, index]

    todo = [(layer, index) for layer, index in sites if not torch.equal(value(layer, index, 0), value(layer, index, 1))]
    recovered = np.zeros((config.n_layer, width))
    rows_per_pass = max(1, PATCH_BATCH_TOKENS // T)
    passes = 0
    for start in range(0, len(todo), rows_per_pass):
        chunk = todo[start:start + rows_per_pass]
        by_layer: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for layer in sorted({layer for layer, _ in chunk}):
            rows = [r for r, (l, _) in enumerate(chunk) if l == layer]
            indices = [chunk[r][1] for r in rows]
            by_layer[layer] = (torch.tensor(rows, device=device), torch.tensor(indices, device=device))

        def patch_hook(layer):
            def hook(module, inputs, out):
                if threading.get_ident() != thread or layer not in by_layer:
                    return None
                rows, indices = by_layer[layer]
                out = out.clone()
                if site == "head_out":  # out: [B, T, n_head, d_head]; the clean z of each row's head
                    out[rows, :, indices] = kept[layer][0][:, indices].transpose(0, 1)
                else:  # out: [B, T, C]; the clean vector at each row's position
                    out[rows, indices] = kept[layer][0][indices]
                return out
            return hook

        batch = torch.tensor([corrupted] * len(chunk), device=device)
        with hooks_lock, hooks_attached([(point, patch_hook(layer)) for layer, point in enumerate(points)]):
            out = model(batch, last_only=True)[:, -1].double()
        passes += 1
        patched = (out[:, target] - out[:, foil]).cpu().numpy()
        for (layer, index), diff in zip(chunk, patched):
            recovered[layer, index] = (diff - corrupted_diff) / (clean_diff - corrupted_diff)
    first = next(i for i, (a, b) in enumerate(zip(clean, corrupted)) if a != b)
    return Patching(site, recovered, clean_diff, corrupted_diff, target, foil, first, passes, len(todo))


# ---------------------------------------------------------------- the app's examples

@dataclass(frozen=True)
class PatchingExample:
    clean: str
    corrupted: str
    answer: str  # the clean prompt's answer, one token
    foil: str  # the corrupted prompt's answer, one token
    why: str


# Indirect object identification (Wang et al. 2022): GPT-2 small completes the clean prompt with the name that
# did not repeat. For a model trained here on Python, a pair its induction head decides: the corrupted prompt
# changes the name the last line should copy.
PATCHING_EXAMPLES = {
    "gpt2": PatchingExample(
        "When Mary and John went to the store, John gave a drink to",
        "When Mary and John went to the store, Mary gave a drink to", " Mary", " John",
        "the classic IOI pair: swapping who gave the drink swaps whom GPT-2 names"),
    "trained": PatchingExample(
        "value = self.name\nresult = self.name\nvalue = self.",
        "value = self.data\nresult = self.name\nvalue = self.", "name", "data",
        "the last line repeats the first: copying decides the answer, and the corruption changes what to copy"),
}
