"""One block opened up, for one position: its two LayerNorms and its MLP, neuron by neuron.

Block l (0-based, h.{l}) reads the residual stream x_l and writes back twice:

    x'      = x_l + Attn(LN_1(x_l))        attention: mixes information between positions
    x_{l+1} = x' + MLP(LN_2(x'))           MLP: works on each position alone

    LN(x)   = γ · (x − mean(x)) / sqrt(var(x) + eps) + β      over the d_model numbers of one position
    MLP(u)  = GELU(u W_fc + b_fc) W_proj + b_proj             d_model → d_mlp = 4·d_model → d_model

The trace keeps x_l (residual[l]) and x' (resid_mid[l]), so everything here is one
position's LayerNorms and one (d_model x d_mlp) matrix-vector product: no forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from gpt2 import GPT2
from gpt2.device import to_model

from . import teaching, validation
from .capture import Trace

TOP_NEURONS = 10


@dataclass
class LayerNormView:
    """One LayerNorm applied to one position's vector."""

    input: np.ndarray  # [d_model] x
    normalised: np.ndarray  # [d_model] (x - mean) / std: mean 0, std ~1
    output: np.ndarray  # [d_model] γ · normalised + β
    mean: float
    std: float  # sqrt(var(x) + eps), what x is divided by
    gamma: np.ndarray  # [d_model]
    beta: np.ndarray  # [d_model]
    eps: float


@dataclass
class BlockView:
    layer: int
    position: int
    ln_1: LayerNormView  # of x_l, feeding attention
    ln_2: LayerNormView  # of x', feeding the MLP
    mlp_pre: np.ndarray  # [d_mlp] u W_fc + b_fc, before GELU
    mlp_post: np.ndarray  # [d_mlp] after GELU
    neuron_write: np.ndarray  # [d_mlp] |post_n| · ‖W_proj[n]‖: how much neuron n adds to the stream
    top_neurons: np.ndarray  # ids of the most active neurons (largest GELU output), most active first
    mlp_out: np.ndarray  # [d_model] what the MLP adds, recomputed
    attn_out_norm: float  # ‖Attn(LN_1(x_l))‖ at this position
    mlp_out_norm: float

    @property
    def d_mlp(self) -> int:
        return len(self.mlp_pre)


def check_position(trace: Trace, layer, position) -> tuple[int, int]:
    """Layer and position as valid indices, or a ValueError naming the field and the allowed range."""
    return validation.index("Layer", layer, trace.config.n_layer), validation.index("Position", position, trace.n_tokens)


def layer_norm_view(ln: torch.nn.LayerNorm, x: np.ndarray) -> LayerNormView:
    gamma, beta = ln.weight.detach().float().cpu(), ln.bias.detach().float().cpu()  # one position: the CPU's job
    v = torch.as_tensor(x, dtype=torch.float32)
    mean, var = v.mean(), v.var(unbiased=False)  # LayerNorm uses the population variance
    std = torch.sqrt(var + ln.eps)
    normalised = (v - mean) / std
    output = F.layer_norm(v, ln.normalized_shape, gamma, beta, ln.eps)  # the model's own function
    return LayerNormView(x.astype(np.float32), normalised.numpy(), output.numpy(), float(mean), float(std),
                         gamma.numpy(), beta.numpy(), float(ln.eps))


def gelu(x: np.ndarray) -> np.ndarray:
    """GPT-2's GELU, 0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³))), for drawing its curve."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


@torch.inference_mode()
def open_block(model: GPT2, trace: Trace, layer, position, top: int = TOP_NEURONS) -> BlockView:
    """Block `layer` at `position`, recomputed from the stored stream x_layer and x'."""
    layer, position = check_position(trace, layer, position)
    block = model.h[layer]
    ln_1 = layer_norm_view(block.ln_1, trace.residual[layer, position])
    ln_2 = layer_norm_view(block.ln_2, trace.resid_mid[layer, position])
    fc, proj = block.mlp.c_fc, block.mlp.c_proj
    u = to_model(model, ln_2.output, torch.float32)
    pre = F.linear(u, fc.weight.float(), fc.bias.float())  # [d_mlp]
    post = F.gelu(pre, approximate="tanh")
    w_out = proj.weight.float()  # (d_model, d_mlp): column n is what neuron n writes, per unit of activation
    mlp_out = F.linear(post, w_out, proj.bias.float())
    write = post.abs() * torch.linalg.vector_norm(w_out, dim=0)
    pre, post, mlp_out, write = (t.cpu() for t in (pre, post, mlp_out, write))
    order = np.argsort(-post.numpy(), kind="stable")[:top]
    return BlockView(
        layer=layer, position=position, ln_1=ln_1, ln_2=ln_2, mlp_pre=pre.numpy(), mlp_post=post.numpy(),
        neuron_write=write.numpy(), top_neurons=order, mlp_out=mlp_out.numpy(),
        attn_out_norm=float(trace.attn_out_norms[layer, position]),
        mlp_out_norm=float(np.linalg.norm(mlp_out.numpy())))


def neuron_table(view: BlockView) -> str:
    """The most active neurons as a markdown table."""
    lines = ["| neuron | before GELU | after GELU | writes ‖·‖ |", "|---:|---:|---:|---:|"]
    lines += [f"| {n} | {view.mlp_pre[n]:.2f} | {view.mlp_post[n]:.2f} | {view.neuron_write[n]:.2f} |"
              for n in view.top_neurons]
    return "\n".join(lines)


def block_summary(view: BlockView) -> dict:
    """The numbers a teaching text quotes, by name."""
    pre = view.mlp_pre
    return dict(
        layer=view.layer, position=view.position,
        ln_in_mean=view.ln_1.mean, ln_in_std=view.ln_1.std,
        ln_in_min=float(view.ln_1.input.min()), ln_in_max=float(view.ln_1.input.max()),
        ln_out_mean=float(view.ln_1.output.mean()), ln_out_std=float(view.ln_1.output.std()),
        gamma_mean=float(view.ln_1.gamma.mean()), beta_mean=float(view.ln_1.beta.mean()), eps=view.ln_1.eps,
        d_mlp=view.d_mlp, n_positive=int((pre > 0).sum()), share_positive=float((pre > 0).mean()),
        top_neuron=int(view.top_neurons[0]), top_activation=float(view.mlp_post[view.top_neurons[0]]),
        attn_norm=view.attn_out_norm, mlp_norm=view.mlp_out_norm)


def block_text(view: BlockView, token: str) -> str:
    """The teaching text of the opened block, with its own numbers."""
    return teaching.render("block", **block_summary(view), token=token, d_model=len(view.ln_1.input),
                           neuron_table=neuron_table(view))
