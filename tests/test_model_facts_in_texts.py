"""Every text that states a fact about the model states the loaded model's, or says it is GPT-2's.

Three models, each rendered through the Tokens and Surprise teaching texts, the Surprise story
card, the About page and the exported page:
- the shipped model (its own BPE, trained on the standard library's text with repeated windows);
- GPT-2 124M as the app serves it: 124M's shape and GPT-2's tokenizer (random weights: no text
  here depends on the weights' values), and the same tokenizer in a random OpenAI-layout folder;
- a 1-layer model trained by `python -m gpt2 train` inside this test.
The expected numbers are read from each model and tokenizer here, not from the code under test.
"""

from __future__ import annotations

import functools
import html
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import gpt2
from explorer import export, panels, story
from explorer.about import about_markdown
from explorer.analysis import analyze
from explorer.heads import induction_scores
from explorer.model_map import captions, model_map_html
from explorer.store import SHIPPED, LoadedModel, ModelStore

PROMPT = "def add(a, b):\n    return a + b\n\nThe quick brown fox jumps over the lazy dog."
SURPRISE_CARD = story.CARD_IDS.index("surprise")
GPT2_ONLY = ("50,000", "50256", "50,256", "WebText", "OpenAI's variable")


@pytest.fixture(scope="module")
def trained_dir(small_text, tmp_path_factory):
    """A 1-layer model, a few steps of `python -m gpt2 train` with repeated windows (seconds)."""
    out = tmp_path_factory.mktemp("run") / "one-layer"
    result = subprocess.run(
        [sys.executable, "-m", "gpt2", "train", "--data", str(small_text), "--out", str(out), "--n-layer", "1",
         "--n-head", "2", "--n-embd", "32", "--n-ctx", "32", "--n-vocab", "300", "--max-steps", "4",
         "--batch-size", "4", "--eval-every", "4", "--eval-windows", "2", "--warmup-steps", "1",
         "--repeat-share", "0.25", "--repeat-vocab", "50", "--threads", "2", "--quiet"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out


def _gpt2_124m() -> LoadedModel:
    torch.manual_seed(0)
    model = gpt2.GPT2(gpt2.GPTConfig.preset("124M")).eval()
    return LoadedModel("124M", model, np.zeros((12, 12)), 0.0, tokenizer=gpt2.get_tokenizer())


def _loaded(which: str, trained_dir, tiny_checkpoint_dir) -> LoadedModel:
    if which == "shipped":
        store = ModelStore(sizes=[])
        return store.get(next(iter(SHIPPED)))
    if which == "gpt2-124M":
        return _gpt2_124m()
    folder = trained_dir if which == "trained" else tiny_checkpoint_dir
    store = ModelStore(folder, sizes=[])
    return store.get(store.local_name)


MODELS = ("shipped", "gpt2-124M", "openai-layout", "trained")


@pytest.fixture(scope="module", params=MODELS)
def case(request, trained_dir, tiny_checkpoint_dir, tmp_path_factory):
    loaded = _loaded(request.param, trained_dir, tiny_checkpoint_dir)
    analysis = analyze(loaded, PROMPT)
    page = export.write_export(loaded, analysis, tmp_path_factory.mktemp("export") / "run.html")[0]
    return request.param, loaded, analysis, rendered_texts(loaded, analysis, page.read_text(encoding="utf-8"))


def rendered_texts(loaded: LoadedModel, analysis, page: str) -> dict[str, str]:
    """Every text that states facts about the model, as the app shows it."""
    trace = analysis.trace
    return {
        "tokens": panels.tokens_text(trace, loaded.facts),
        "surprise": panels.surprise_text(trace, trace.token_surprise, loaded.facts),
        "surprise card": story.story_card(SURPRISE_CARD, analysis, loaded)["markdown"],
        "story cards": "\n\n".join(story.story_card(i, analysis, loaded)["markdown"] for i in range(len(story.CARDS))),
        "about": about_markdown(loaded.view_model, loaded.facts),
        "export": _visible_text(page),
        # The map beside the story: its parts' labels and sizes, and what it says is in view on each tab.
        "model map": _visible_text(model_map_html(loaded.facts)) + "\n" + "\n".join(captions(loaded.facts).values()),
    }


def _visible_text(page: str) -> str:
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.DOTALL)  # plotly.js, figure data, CSS
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


# ---------------------------------------------------------------------------- what each model really is

def _is_gpt2(which: str) -> bool:
    return which == "gpt2-124M"  # OpenAI's model: the only one whose history is WebText


@functools.cache
def _merges(tokenizer) -> int:
    """Tokens that are a merge of two shorter pieces: every ordinary token longer than one byte."""
    specials = {tokenizer.encode_single_token(s) for s in tokenizer.special_tokens_set}
    return sum(1 for i in range(tokenizer.n_vocab) if i not in specials and len(tokenizer.decode_single_token_bytes(i)) > 1)


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def _units(text: str) -> list[str]:
    """Sentences (a sentence may run over several lines), and table cells each with its column's header."""
    units, paragraph, header = [], [], None

    def flush():
        units.extend(re.split(r"(?<=[.!?])\s+", " ".join(paragraph)))
        paragraph.clear()
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|"):
            flush()
            cells = [cell.strip() for cell in stripped.strip("|").split("|")]
            if header is None:
                header = cells
            elif not set("".join(cells)) <= set("-: "):
                units += [f"{column}: {cell}" for column, cell in zip(header, cells)]
            continue
        header = None
        if not stripped or re.match(r"([-*]|\d+\.)\s", stripped):
            flush()
        paragraph.append(stripped)
    flush()
    return [unit for unit in units if unit.strip()]


def _speaks_gpt2(tokenizer) -> bool:
    return tokenizer.n_vocab == 50257 and _merges(tokenizer) == 50_000


def _said_of_this_model(which: str, tokenizer, text: str) -> str:
    """The text without what it says about GPT-2 by name; all of it for GPT-2 and models with its tokenizer,
    of which GPT-2's vocabulary numbers are true too."""
    if _is_gpt2(which) or _speaks_gpt2(tokenizer):
        return text
    return "\n".join(unit for unit in _units(text) if "GPT-2" not in unit)


# ---------------------------------------------------------------------------- the numbers stated

def test_the_merges_stated_are_the_tokenizers(case):
    which, loaded, _, texts = case
    merges = _merges(loaded.tokenizer)
    stated = {name: [_number(n) for n in re.findall(r"([\d,]+)\s+merges", _said_of_this_model(which, loaded.tokenizer, text))]
              for name, text in texts.items()}
    assert stated["tokens"], "the Tokens text says how many merges the table has"
    wrong = {name: numbers for name, numbers in stated.items() if any(n != merges for n in numbers)}
    assert not wrong, f"{which}: the tokenizer has {merges:,} merges, the texts say {wrong}"


def test_the_special_tokens_id_stated_is_the_tokenizers(case):
    which, loaded, _, texts = case
    eot = loaded.tokenizer.encode("<|endoftext|>", allowed_special="all")
    assert len(eot) == 1
    stated = {name: [_number(n) for n in re.findall(r"<\|endoftext\|>`?\*{0,2}\s*\(id ([\d,]+)\)",
                                                    _said_of_this_model(which, loaded.tokenizer, text))]
              for name, text in texts.items()}
    assert stated["tokens"], "the Tokens text gives the special token's id"
    wrong = {name: ids for name, ids in stated.items() if any(i != eot[0] for i in ids)}
    assert not wrong, f"{which}: <|endoftext|> is id {eot[0]}, the texts say {wrong}"


def test_the_vocabulary_stated_is_the_models(case):
    which, loaded, _, texts = case
    n_vocab = loaded.model.wte.weight.shape[0]
    stated = [_number(n) for text in texts.values()
              for n in re.findall(r"vocabulary of ([\d,]+)", _said_of_this_model(which, loaded.tokenizer, text))]
    assert stated and set(stated) == {n_vocab}, which


def test_about_states_the_models_sizes_and_parameter_count(case):
    which, loaded, _, texts = case
    model, about = loaded.model, texts["about"]
    c = model.config
    heading = re.search(r"### .*?: ([\d,]+) parameters", about)
    assert heading and _number(heading.group(1)) == sum(p.numel() for p in model.parameters())
    assert f"{len(model.h)} blocks, d_model {model.wte.weight.shape[1]}, {c.n_head} heads" in about
    assert f"a context of {model.wpe.weight.shape[0]:,} tokens" in about


def test_the_training_data_stated_is_the_models(case, small_text):
    which, loaded, _, texts = case
    data = {name: text for name, text in texts.items() if name in ("surprise", "surprise card", "about")}
    for name, text in data.items():
        if which == "shipped":
            assert "Python standard library" in text, name
            repeats = loaded.facts.data
            pool = "whole vocabulary" if not repeats.repeat_vocab else f"{repeats.repeat_vocab} most frequent tokens"
            assert f"{repeats.repeat_share:.0%}" in text and pool in text, f"{name}: the repeat curriculum"
        elif which == "trained":
            assert "`small.txt`" in text, name
            characters = len(small_text.read_text(encoding="utf-8"))
            assert f"{characters:,} characters" in text, name
            assert "25%" in text and "50 most frequent tokens" in text, f"{name}: the repeat curriculum"
        elif which == "gpt2-124M":
            assert "WebText" in text, name
        else:
            assert "does not record its training data" in text, name


def test_gpt2_only_facts_never_appear_unattributed_beside_another_model(case):
    which, loaded, _, texts = case
    if _is_gpt2(which):
        return
    gpt2_tokenizer = _speaks_gpt2(loaded.tokenizer)
    unattributed = []
    for name, text in texts.items():
        for unit in _units(text):
            for fact in GPT2_ONLY:
                if fact not in unit or "GPT-2" in unit:
                    continue
                if fact in ("50,000", "50256", "50,256") and gpt2_tokenizer:
                    continue  # true of this model too: it reads text with GPT-2's tokenizer
                if fact == "OpenAI's variable" and which == "openai-layout":
                    continue  # its weights were read from those very variables
                unattributed.append((name, fact, unit.strip()[:160]))
    assert not unattributed, f"{which}: {unattributed}"


def test_the_map_draws_this_models_blocks_with_its_sizes(case):
    which, loaded, _, texts = case
    model = loaded.model
    n_mlp, n_embd = model.h[0].mlp.c_fc.weight.shape  # nn.Linear(d_model, d_mlp) keeps (out, in)
    page = model_map_html(loaded.facts)
    assert page.count('class="mm-block"') == len(model.h), which
    assert [int(n) for n in re.findall(r'class="mm-block" data-layer="(\d+)"', page)] == list(range(len(model.h)))
    heads = model.config.n_head
    text = texts["model map"]
    assert text.count(f"{heads} heads × {n_embd // heads}") == len(model.h), which  # every block's attention
    assert text.count(f"{n_embd:,} → {n_mlp:,} → {n_embd:,}") >= len(model.h), which  # every block's MLP
    assert f"{n_embd:,} → {model.wte.weight.shape[0]:,} logits" in text
    assert f"up to {model.wpe.weight.shape[0]:,} per prompt" in text
    assert f"through {len(model.h)} block" in text


def test_openai_checkpoint_names_are_mapped_only_onto_weights_stored_under_them(case):
    which, _, _, texts = case
    has_table = "| OpenAI's variable |" in texts["about"]
    assert has_table == (which in ("gpt2-124M", "openai-layout")), which


def test_about_credits_gpt1_with_what_gpt1_introduced(case):
    about = case[3]["about"]
    # GPT-2 section 2.3 lists its own changes (pre-LayerNorm, a final LayerNorm, 1/sqrt(N) init, 50,257 tokens,
    # 1024 context); decoder-only, learned positions and GELU were already GPT-1's (Radford et al. 2018, 4.1).
    for row in ("| shape |", "| positions |", "| activation |"):
        line = next(line for line in about.splitlines() if line.startswith(row))
        assert "GPT-1" in line, row
    for row in ("| LayerNorm |", "| initialisation |"):
        line = next(line for line in about.splitlines() if line.startswith(row))
        assert "2.3" in line, row
