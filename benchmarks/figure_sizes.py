"""How many bytes each figure of the app sends to the browser, at 32 and 1024 tokens, on GPT-2 124M's shape.

    .venv/bin/python benchmarks/figure_sizes.py
    .venv/bin/python benchmarks/figure_sizes.py --tokens 32 256 1024

Random weights (nothing can be downloaded here), GPT-2's own tokenizer. One `analyze` per
prompt length, then every figure the tabs build from it, through the same panels.* and
plots.* calls the tabs make (the selected head is layer 0, head 0, the query the last
token, the logit lens at its widest window).

Size is what Gradio 6 puts on the wire for a gr.Plot: `Plot.postprocess(figure)` makes
PlotData(type="plotly", plot=figure.to_json()), and the queue's event stream sends
`orjson.dumps(message.model_dump())`, so the figure's JSON arrives as a string inside JSON
(its quotes escaped once more). The byte count is of that string, as orjson writes it.
"template" is how many of those bytes are the figure's layout.template.

Target from issue 17: at most ~300 KB per figure at 1024 tokens.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson
import torch

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import gradio as gr  # noqa: E402

import gpt2  # noqa: E402
from ablation_speed import prompt_of  # noqa: E402
from explorer import panels, plots  # noqa: E402
from explorer.analysis import MAX_LENS_POSITIONS, analyze, update_lens  # noqa: E402
from explorer.block import open_block  # noqa: E402
from explorer.embeddings import pca_2d  # noqa: E402
from explorer.heads import induction_scores  # noqa: E402
from explorer.head_walk import walk_head  # noqa: E402
from explorer.interventions import run_ablation  # noqa: E402
from explorer.store import LoadedModel  # noqa: E402

LIMIT = 300_000
_PLOT = gr.Plot()


def wire_bytes(figure) -> int:
    """Bytes of the figure as it travels in Gradio's event stream: a JSON string inside the message's JSON."""
    return len(orjson.dumps(_PLOT.postprocess(figure).model_dump()))


def template_bytes(figure) -> int:
    """Bytes of layout.template in that message: the template's JSON, escaped once more as the figure's string is."""
    template = figure.to_plotly_json()["layout"].get("template")
    if template is None:
        return 0
    return len(orjson.dumps(orjson.dumps(template).decode())) - 2  # without the string's own quotes


def loaded_random(config: gpt2.GPTConfig, seed: int = 0) -> LoadedModel:
    """A model of this shape with random weights, as ModelStore would hand it to the app."""
    torch.manual_seed(seed)
    model = gpt2.GPT2(config).eval()
    wpe = model.wpe.weight.detach().float().numpy().copy()
    return LoadedModel(f"random {config.n_layer}-layer model", model, induction_scores(model), 0.0,
                       position_pca=pca_2d(wpe), tokenizer=gpt2.get_tokenizer(), wpe=wpe)


def app_figures(loaded: LoadedModel, n_tokens: int) -> dict:
    """Every figure the tabs build for one prompt, by tab and name."""
    analysis = analyze(loaded, prompt_of(n_tokens))
    update_lens(loaded, analysis, MAX_LENS_POSITIONS)
    trace, query = analysis.trace, analysis.trace.n_tokens - 1
    figures = {f"embeddings/{name}": figure for name, figure in panels.embedding_figures(analysis, loaded).items()}
    figures["attention/heatmap"] = panels.attention_heatmap(analysis, 0, 0, False, query)
    figures["attention/heatmap (mean of heads)"] = panels.attention_heatmap(analysis, 0, 0, True, query)
    figures["attention/overview"] = panels.attention_overview(analysis, 0, 0)
    figures["attention/head scores"] = panels.head_scores_figure(analysis)
    walk = walk_head(loaded.view_model, trace, 0, 0, query)
    figures["attention/head walk"] = plots.head_walk_bars(trace.tokens, walk.weights, walk.value_norms, "walk")
    residual, contributions, lens = panels.layer_figures(analysis)
    figures |= {"layers/residual norms": residual, "layers/contributions": contributions, "layers/logit lens": lens}
    figures["next token/bars"] = panels.distribution_figure(analysis.label, trace.logits, 1.0, 0, 1.0, seed=0)[0]
    figures["surprise/tokens"] = plots.surprise_tokens(trace.tokens, trace.token_surprise, analysis.model_name)
    view = open_block(loaded.view_model, trace, 0, query)
    figures["block/layer norm"] = plots.layer_norm_before_after(view.ln_1.input, view.ln_1.output, "LN")
    figures["block/gelu"] = plots.gelu_curve(view.mlp_pre, view.mlp_post, view.top_neurons, "MLP")
    result = run_ablation(loaded.model, [int(i) for i in trace.token_ids], heads=[(0, 0)])
    figures |= {f"ablation/{name}": figure for name, figure in panels.ablation_figures(analysis, result).items()}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[32, 1024])
    args = parser.parse_args()
    torch.set_num_threads(2)
    loaded = loaded_random(gpt2.GPTConfig())  # GPT-2 124M's shape
    sizes = {n: {name: (wire_bytes(f), template_bytes(f)) for name, f in app_figures(loaded, n).items()}
             for n in args.tokens}
    names = list(sizes[args.tokens[0]])
    print("figure".ljust(36) + "".join(f"{f'{n} tokens':>14}{'template':>10}" for n in args.tokens))
    for name in names:
        row = "".join(f"{sizes[n][name][0]:>14,}{sizes[n][name][1]:>10,}" for n in args.tokens)
        over = " over" if any(sizes[n][name][0] > LIMIT for n in args.tokens) else ""
        print(name.ljust(36) + row + over)
    print("total".ljust(36) + "".join(f"{sum(s for s, _ in sizes[n].values()):>14,}{'':>10}" for n in args.tokens))


if __name__ == "__main__":
    main()
