"""Take a run home: one analysis as a self-contained HTML page, and its numbers as JSON.

The page works from a USB stick or an e-mail attachment with no network: plotly.js (the
library that draws the figures, ~4.8 MB) is written into the page once, and every figure
is a few lines that hand it their data. The figures are the app's own (`panels`, `plots`),
so the page shows what the learner saw: the tokens, the next-token bars, who voted for the
next token (logit attribution), the surprise of each token, one head's attention and all heads
at a glance, the residual stream and the logit lens, a patching run and the tree of tokens tried
in step mode if the learner made them, and the teaching texts filled with the prompt's numbers.

The numbers go in a JSON file next to the page. JSON rather than NumPy's NPZ because a
handout is read by people and by any tool (a spreadsheet import, JavaScript, a text
editor), not only by Python. It holds what the page shows in numbers, not every
intermediate: all 144 attention patterns of a 256-token prompt on 124M would be 9.4 M
numbers (~100 MB as JSON), and Analyze recomputes them from the prompt in about a second.
"""

from __future__ import annotations

import html
import json
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from markdown_it import MarkdownIt
from plotly.offline import get_plotlyjs

from gpt2.resources import ASSETS

from . import panels, plots
from .analysis import Analysis
from .attribution import Attribution, Patching, logit_attribution
from .branching import BranchTree
from .store import LoadedModel

FORMAT = "gpt2-explorer export, version 1"
STYLE_FILE = ASSETS / "style.css"
TOP_TOKENS = 25
DIGITS = 6  # decimals kept in the JSON: below float32's own precision for values in [0, 1]

PAGE_STYLE = """
body { font-family: Inter, 'Helvetica Neue', Arial, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.prompt { white-space: pre-wrap; background: #f6f6f6; padding: .8em; border-radius: 6px; }
.figure { margin: 1em 0; } .teaching { background: #fafafa; padding: .2em 1em; border-left: 3px solid #2171b5; }
table { border-collapse: collapse; } td, th { padding: 2px 8px; border-bottom: 1px solid #eee; }
"""


@dataclass
class Section:
    title: str
    html: str = ""  # shown above the figures (tokens, a sentence)
    figures: tuple = ()
    teaching: str = ""  # markdown


def default_head(loaded: LoadedModel) -> tuple[int, int]:
    """The head a handout shows when none is asked for: the model's strongest induction head."""
    layer, head = np.unravel_index(int(np.argmax(loaded.induction)), loaded.induction.shape)
    return int(layer), int(head)


NO_SAMPLING = (1.0, 0, 1.0)  # temperature 1, top-k and top-p off: the model's own distribution


@dataclass
class Experiments:
    """What the learner ran beside Analyze, for the handout: the Who voted tab's attribution (the one they
    left on screen; without it the handout splits the most likely token's logit) and their last patching run."""
    attribution: Attribution | None = None
    patching: Patching | None = None
    clean_tokens: list[str] | None = None  # the patching prompts' tokens, as the page labels them
    corrupted_tokens: list[str] | None = None
    clean_prompt: str = ""
    corrupted_prompt: str = ""
    tree: BranchTree | None = None  # the Generate tab's tree of tokens tried in step mode, from this prompt


def _with_attribution(loaded: LoadedModel, analysis: Analysis, experiments: Experiments | None) -> Experiments:
    experiments = experiments or Experiments()
    if experiments.attribution is None:  # one forward pass, on the CPU copy where the model is on a ZeroGPU GPU
        experiments.attribution = logit_attribution(loaded.view_model, analysis.trace.token_ids.tolist())
    return experiments


def sections(loaded: LoadedModel, analysis: Analysis, layer: int, head: int,
             sampling: tuple = NO_SAMPLING, experiments: Experiments | None = None) -> list[Section]:
    """What the page shows, in the app's order, from the app's own panel functions; `sampling` is the
    (temperature, top-k, top-p) the learner had set (0 and 1 switch top-k and top-p off)."""
    trace = analysis.trace
    query = trace.n_tokens - 1
    bars, anatomy = panels.distribution_figure(analysis.label, trace.logits, *sampling)
    heatmap, overview = panels.attention_figures(analysis, layer, head, False, query)
    experiments = _with_attribution(loaded, analysis, experiments)
    voted = panels.attribution_figures(experiments.attribution, analysis.label)
    patching = []
    if experiments.patching is not None:
        e = experiments
        prompts = (f'<p>Clean: <span class="prompt">{html.escape(e.clean_prompt)}</span></p>'
                   f'<p>Corrupted: <span class="prompt">{html.escape(e.corrupted_prompt)}</span></p>')
        patching = [Section("Patching: where the answer is decided", prompts,
                            figures=(panels.patching_figure(e.patching, e.clean_tokens),),
                            teaching=panels.patching_text(e.patching, analysis.label, e.clean_tokens,
                                                          e.corrupted_tokens))]
    return [
        Section("Tokens", panels.token_chips(trace), teaching=panels.tokens_text(trace, loaded.facts)),
        Section("Next token", figures=(bars,), teaching=panels.next_token_text(trace, anatomy, analysis.label)),
        Section("Who voted for it: logit attribution", figures=(voted["heads"], voted["layers"]),
                teaching=panels.attribution_text(experiments.attribution, analysis.label, trace.config)),
        Section("Surprise: the loss on your own text",
                figures=(plots.surprise_tokens(trace.tokens, trace.token_surprise, analysis.model_name),),
                teaching=panels.surprise_text(trace, trace.token_surprise, loaded.facts)),
        Section("Attention", figures=(heatmap, overview, panels.head_scores_figure(analysis)),
                teaching=panels.attention_text(loaded, analysis, layer, head, False, query)),
        Section("Layers", figures=panels.layer_figures(analysis), teaching=panels.layers_text(analysis)),
        *patching,
        *_tree_section(experiments.tree),
    ]


def _tree_section(tree: BranchTree | None) -> list[Section]:
    if tree is None:
        return []
    text = f'<p>The text on the red path:</p><div class="prompt">{html.escape(tree.text())}</div>'
    teaching = (f"Every token tried in step mode after this prompt: {len(tree.nodes) - 1} in all. Each node is a token "
                "with the probability the model gave it where it was chosen (at temperature 1, before top-k and "
                "top-p); a fork is a place where another token was taken instead. The red path is the text as the "
                "learner left it.")
    return [Section("Generation: every token tried", text, figures=(plots.branch_tree(*tree.plot_data()),),
                    teaching=teaching)]


def _figure_json(figure) -> str:
    # "</" inside a <script> would end it early (a token may be "</script>"): JSON allows "<\/".
    return figure.to_json().replace("</", "<\\/")


def render_html(loaded: LoadedModel, analysis: Analysis, layer: int | None = None,
                head: int | None = None, sampling: tuple = NO_SAMPLING, experiments: Experiments | None = None) -> str:
    """The whole page as one string: plotly.js once, then each section with its figures."""
    if layer is None or head is None:
        layer, head = default_head(loaded)
    layer, head = panels.check_head(analysis, layer, head)
    markdown = MarkdownIt("commonmark").enable("table")
    body, scripts, count = [], [], 0
    for section in sections(loaded, analysis, layer, head, sampling, experiments):
        body.append(f"<h2>{html.escape(section.title)}</h2>{section.html}")
        for figure in section.figures:
            body.append(f'<div class="figure" id="figure-{count}"></div>')
            scripts.append(f"draw('figure-{count}', {_figure_json(figure)});")
            count += 1
        if section.teaching:
            body.append(f'<div class="teaching">{markdown.render(section.teaching)}</div>')
    title = f"GPT-2 Explorer: {analysis.model_name}"
    notice = f"<p>{html.escape(analysis.notice)}</p>" if analysis.notice else ""
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE_FILE.read_text(encoding='utf-8')}{PAGE_STYLE}</style>",
        f"<script>{get_plotlyjs()}</script></head><body>",
        f"<h1>{html.escape(title)}</h1>", f'<div class="prompt">{html.escape(analysis.prompt)}</div>', notice,
        f"<p>{html.escape(loaded.describe().replace('**', ''))}</p>",
        *body,
        "<script>",
        "function draw(id, figure) {",
        "  Plotly.newPlot(id, figure.data, figure.layout, {responsive: true, displaylogo: false});",
        "}",
        *scripts,
        "</script></body></html>",
    ])


def _rounded(array) -> list:
    return np.round(np.asarray(array, dtype=np.float64), DIGITS).tolist()


def _experiment_numbers(analysis: Analysis, experiments: Experiments) -> dict:
    a, p = experiments.attribution, experiments.patching
    out = {"attribution": {
        "about": "the last position's logit of `target` (minus the foil's, if any) split into what each part wrote "
                 "into the residual stream, read through LN_f with its scale sigma held fixed; the parts add up "
                 "to `logit`. heads[layer][head]; mlps[layer]; rest: attention output biases and LN_f's beta",
        "target": {"id": a.target, "token": analysis.label(a.target)},
        "foil": None if a.foil is None else {"id": a.foil, "token": analysis.label(a.foil)},
        "logit": a.logit, "sigma": a.sigma, "embed": a.embed, "heads": _rounded(a.heads), "mlps": _rounded(a.mlps),
        "rest": a.rest}}
    if experiments.tree is not None:
        tree = experiments.tree
        out["generation_tree"] = {
            "about": "every token tried in step mode after the prompt; node 0 is the prompt; probability: what the "
                     "model gave the token where it was chosen (temperature 1, before top-k and top-p)",
            "current": tree.current, "text": tree.text(),
            "nodes": [{"index": n.index, "parent": n.parent, "id": n.token_id, "token": n.text,
                       "probability": round(float(n.prob), DIGITS)} for n in tree.nodes[1:]]}
    if p is not None:
        out["patching"] = {
            "about": "recovered = (patched - corrupted) / (clean - corrupted) of logit(target) - logit(foil) at the "
                     "last position, one site copied from the clean run into the corrupted run; rows are layers, "
                     "columns positions (or heads, for head_out)",
            "clean": experiments.clean_prompt, "corrupted": experiments.corrupted_prompt, "site": p.site,
            "target": {"id": p.target, "token": analysis.label(p.target)},
            "foil": {"id": p.foil, "token": analysis.label(p.foil)},
            "clean_diff": p.clean_diff, "corrupted_diff": p.corrupted_diff, "recovered": _rounded(p.recovered)}
    return out


def numbers(loaded: LoadedModel, analysis: Analysis, layer: int, head: int, sampling: tuple = NO_SAMPLING,
            experiments: Experiments | None = None) -> dict:
    """What the page shows, as plain numbers and strings (see the module docstring for what is left out)."""
    trace, scores, lens = analysis.trace, analysis.scores, analysis.lens
    experiments = _with_attribution(loaded, analysis, experiments)
    probs = trace.next_token_probs
    top = panels.most_likely(probs, TOP_TOKENS)
    surprise = trace.token_surprise
    mean_loss = float(surprise.mean()) if len(surprise) else None
    c, facts = trace.config, loaded.facts
    return {
        "format": FORMAT,
        "model": {"name": analysis.model_name, "n_layer": c.n_layer, "n_head": c.n_head, "d_model": c.n_embd,
                  "n_ctx": c.n_ctx, "n_vocab": c.n_vocab, "parameters": loaded.model.num_parameters(),
                  "merges": facts.n_merges, "special_token": {"text": facts.special_token, "id": facts.special_id},
                  "trained_on": facts.trained_on},
        "prompt": analysis.prompt,
        "notice": analysis.notice,
        "as_seen": {"layer": layer, "head": head, "temperature": float(sampling[0]), "top_k": int(sampling[1] or 0),
                    "top_p": float(sampling[2]), "about": "the head and sampling settings the page was made with "
                                                          "(top-k 0 and top-p 1: off)"},
        "tokens": [{"position": i, "id": int(token_id), "text": text, "bytes": list(piece)}
                   for i, (token_id, text, piece) in enumerate(zip(trace.token_ids, trace.tokens, trace.token_bytes))],
        "token_surprise_nats": {"about": "entry i is -ln p(token i+1 | tokens 0..i)", "values": _rounded(surprise),
                                "mean": mean_loss, "perplexity": None if mean_loss is None else float(np.exp(mean_loss))},
        "next_token": [{"id": int(i), "token": analysis.label(int(i)), "probability": round(float(probs[i]), DIGITS)}
                       for i in top],
        "attention": {"layer": layer, "head": head, "label": scores.label(layer, head),
                      "about": "pattern[i][j]: how much query i attends to key j (rows sum to 1)",
                      "pattern": _rounded(trace.attention[layer, head].astype(np.float32))},
        "head_scores": {"previous_token": _rounded(scores.previous_token), "first_token": _rounded(scores.first_token),
                        "self": _rounded(scores.self), "entropy": _rounded(scores.entropy),
                        "induction": None if scores.induction is None else _rounded(scores.induction),
                        "labels": scores.labels()},
        "residual_norms": {"about": "row 0: embeddings, row l: after block l-1; one column per position",
                           "values": _rounded(trace.residual_norms)},
        "attn_out_norms": _rounded(trace.attn_out_norms),
        "mlp_out_norms": _rounded(trace.mlp_out_norms),
        "logit_lens": {"layers": lens.layers.tolist(), "positions": lens.positions.tolist(),
                       "top_tokens": analysis.lens_labels, "top_probs": _rounded(lens.top_probs)},
        **_experiment_numbers(analysis, experiments),
    }


def write_export(loaded: LoadedModel, analysis: Analysis, out: str | Path, layer: int | None = None,
                 head: int | None = None, sampling: tuple = NO_SAMPLING,
                 experiments: Experiments | None = None) -> tuple[Path, Path]:
    """Write the page to `out` (.html) and its numbers next to it (.json); returns both paths.

    `out` is chosen by whoever runs the command line, or by the app itself (a file in its own
    temporary folder): never a name a visitor sends.
    """
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"the output file must end in .html, got {out.name!r}")
    if layer is None or head is None:
        layer, head = default_head(loaded)
    layer, head = panels.check_head(analysis, layer, head)
    numbers_path = out.with_suffix(".json")
    experiments = _with_attribution(loaded, analysis, experiments)  # computed once for the page and the numbers
    out.write_text(render_html(loaded, analysis, layer, head, sampling, experiments), encoding="utf-8")
    numbers_path.write_text(json.dumps(numbers(loaded, analysis, layer, head, sampling, experiments),
                                       ensure_ascii=False), encoding="utf-8")
    return out, numbers_path


class HandoutShelf:
    """The app's exported files: in its own temporary folder, under names it makes, never a visitor's.

    Each visitor keeps only their last handout (a new one replaces it), at most `max_owners`
    visitors keep one (the oldest goes first), and a handout older than `max_age` seconds is
    deleted at the next write: the folder holds at most `max_owners` pages of a few MB each.
    """

    def __init__(self, folder: str | Path | None = None, max_owners: int = 16, max_age: float = 1800.0):
        self.folder = Path(folder or tempfile.mkdtemp(prefix="gpt2-explorer-handouts-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_owners, self.max_age = max_owners, max_age
        self._written: dict[str, tuple[float, Path]] = {}  # owner -> (when, its folder), oldest first
        self._lock = threading.Lock()

    def write(self, owner: str, loaded: LoadedModel, analysis: Analysis, layer: int | None = None,
              head: int | None = None, sampling: tuple = NO_SAMPLING,
              experiments: Experiments | None = None) -> tuple[Path, Path]:
        """Write this owner's handout (replacing their last one); returns the page and the numbers."""
        folder = self.folder / uuid.uuid4().hex  # a fresh folder per handout, so names stay readable
        folder.mkdir()
        paths = write_export(loaded, analysis, folder / "gpt2-explorer-run.html", layer, head, sampling, experiments)
        now = time.monotonic()
        with self._lock:
            old = self._written.pop(owner, None)
            self._written[owner] = (now, folder)
            stale = [key for key, (when, _) in self._written.items() if now - when > self.max_age]
            stale += list(self._written)[: max(0, len(self._written) - self.max_owners)]
            gone = [old[1]] if old else []
            gone += [self._written.pop(key)[1] for key in dict.fromkeys(stale) if key in self._written]
        for path in gone:
            shutil.rmtree(path, ignore_errors=True)
        return paths

    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.rglob("*") if p.is_file())
