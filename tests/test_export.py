"""Take a run home: the exported page and numbers, and the command line that writes them."""

import json
import subprocess
import sys

import numpy as np
import pytest

from explorer import export, panels
from explorer.analysis import analyze
from explorer.export import HandoutShelf

PROMPT = "The quick brown fox jumps over the lazy dog. The quick brown fox"


@pytest.fixture(scope="module")
def analysis(loaded):
    return analyze(loaded, PROMPT)


@pytest.fixture(scope="module")
def written(loaded, analysis, tmp_path_factory):
    return export.write_export(loaded, analysis, tmp_path_factory.mktemp("export") / "run.html", layer=1, head=2)


def test_the_page_embeds_plotly_once_and_loads_nothing_from_the_network(written):
    from plotly.offline import get_plotlyjs

    page = written[0].read_text(encoding="utf-8")
    library = get_plotlyjs()
    assert page.count(library) == 1
    ours = page.replace(library, "")  # the library itself names CDNs it would use for maps and LaTeX: not used here
    assert ours.count("<script>") == 2  # the library, then the figures
    assert not [src for src in ("<script src", "<link ", "@import", "http://", "https://") if src in ours]


def test_the_page_draws_every_section_with_the_apps_figures(written, analysis):
    page = written[0].read_text(encoding="utf-8")
    # next token 1, who voted 2 (heads, layers), surprise 1, attention 3 (head, overview, scores), layers 3 (norms,
    # contributions, lens); no patching section without a patching run
    assert page.count("draw('figure-") == 10
    for title in ("Tokens", "Next token", "Who voted", "Surprise", "Attention", "Layers"):
        assert f"<h2>{title}" in page
    assert page.count('class="token-chip c') == analysis.trace.n_tokens
    assert "Layer 1, head 2" in page  # the head asked for


def test_a_token_that_closes_a_script_cannot_break_the_page(loaded):
    page = export.render_html(loaded, analyze(loaded, "</script><b>x"), 0, 0)
    script = page[page.rindex("<script>"):]
    assert script.count("</script>") == 1


def test_the_numbers_hold_tokens_surprise_and_the_shown_head(written, analysis):
    numbers = json.loads(written[1].read_text(encoding="utf-8"))
    trace = analysis.trace
    assert numbers["format"] == export.FORMAT and numbers["prompt"] == PROMPT
    assert [t["id"] for t in numbers["tokens"]] == trace.token_ids.tolist()
    assert bytes(numbers["tokens"][1]["bytes"]) == trace.token_bytes[1]
    np.testing.assert_allclose(numbers["token_surprise_nats"]["values"], trace.token_surprise, atol=1e-6)
    assert numbers["token_surprise_nats"]["perplexity"] == pytest.approx(np.exp(trace.token_surprise.mean()), rel=1e-6)
    np.testing.assert_allclose(numbers["attention"]["pattern"], trace.attention[1, 2].astype(np.float32), atol=1e-6)
    assert numbers["next_token"][0]["probability"] == pytest.approx(trace.next_token_probs.max(), abs=1e-6)
    assert len(numbers["head_scores"]["labels"]) == trace.config.n_layer


def test_without_a_head_the_strongest_induction_head_is_shown(loaded, analysis, tmp_path):
    _, numbers_path = export.write_export(loaded, analysis, tmp_path / "run.html")
    attention = json.loads(numbers_path.read_text(encoding="utf-8"))["attention"]
    assert (attention["layer"], attention["head"]) == np.unravel_index(np.argmax(loaded.induction), loaded.induction.shape)


def test_export_refuses_a_head_that_does_not_exist_and_a_non_html_name(loaded, analysis, tmp_path):
    with pytest.raises(ValueError, match="Head must be a whole number from 0 to 3"):
        export.write_export(loaded, analysis, tmp_path / "run.html", layer=0, head=9)
    with pytest.raises(ValueError, match="end in .html"):
        export.write_export(loaded, analysis, tmp_path / "run.json")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "explorer", *args], capture_output=True, text=True, timeout=300)


def test_cli_writes_the_page_and_the_numbers_next_to_it(tiny_checkpoint_dir, tmp_path):
    result = run_cli("export", "Every effort moves you", "--out", str(tmp_path / "run.html"),
                     "--model-dir", str(tiny_checkpoint_dir), "--layer", "0", "--head", "1")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run.html").stat().st_size > 1_000_000  # plotly.js is inside
    assert json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))["attention"]["head"] == 1


def test_cli_errors_exit_1_with_a_message(tiny_checkpoint_dir, tmp_path):
    result = run_cli("export", "   ", "--out", str(tmp_path / "run.html"), "--model-dir", str(tiny_checkpoint_dir))
    assert result.returncode == 1 and "prompt is empty" in result.stderr and "Traceback" not in result.stderr
    missing = run_cli("export", "Hi", "--out", str(tmp_path / "run.html"), "--model-dir", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "error:" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.parametrize("args", [
    ("export", "Hi", "--out", "run.txt"),
    ("export", "Hi", "--out", "run.html", "--layer", "1"),
    ("export", "Hi"),
    ("export", "Hi", "--out", "run.html", "--size", "../../etc"),
])
def test_cli_usage_errors_exit_2(args):
    result = run_cli(*args)
    assert result.returncode == 2 and "usage:" in result.stderr


# ---- the app's shelf of handouts ----

def test_a_visitors_new_handout_replaces_their_last_one(loaded, analysis, tmp_path):
    shelf = HandoutShelf(tmp_path / "shelf")
    first, _ = shelf.write("visitor-a", loaded, analysis)
    page, numbers = shelf.write("visitor-a", loaded, analysis)
    assert not first.exists() and shelf.files() == sorted([page, numbers])


def test_the_shelf_keeps_at_most_max_owners_handouts_oldest_dropped_first(loaded, analysis, tmp_path):
    shelf = HandoutShelf(tmp_path / "shelf", max_owners=2)
    oldest, _ = shelf.write("a", loaded, analysis)
    shelf.write("b", loaded, analysis)
    newest, _ = shelf.write("c", loaded, analysis)
    assert not oldest.exists() and newest.exists() and len(shelf.files()) == 4


def test_a_handout_older_than_max_age_is_deleted_at_the_next_write(loaded, analysis, tmp_path):
    shelf = HandoutShelf(tmp_path / "shelf", max_age=0.0)
    old, _ = shelf.write("a", loaded, analysis)
    shelf.write("b", loaded, analysis)
    assert not old.exists()


def test_handout_files_are_named_by_the_app_not_the_visitor(loaded, analysis, tmp_path):
    page, _ = HandoutShelf(tmp_path / "shelf").write("../../etc/passwd", loaded, analysis)
    assert page.name == "gpt2-explorer-run.html" and page.parent.parent == tmp_path / "shelf"


def test_the_export_keeps_the_head_and_sampling_the_learner_set(loaded, tmp_path):
    analysis = analyze(loaded, "Every effort moves you")
    page, numbers_path = export.write_export(loaded, analysis, tmp_path / "run.html", layer=1, head=2,
                                             sampling=(0.7, 5, 0.9))
    seen = json.loads(numbers_path.read_text(encoding="utf-8"))["as_seen"]
    assert (seen["layer"], seen["head"], seen["temperature"], seen["top_k"], seen["top_p"]) == (1, 2, 0.7, 5, 0.9)
    html_text = page.read_text(encoding="utf-8")
    as_set = panels.distribution_figure(analysis.label, analysis.trace.logits, 0.7, 5, 0.9)[0]
    untouched = panels.distribution_figure(analysis.label, analysis.trace.logits, 1.0, 0, 1.0)[0]
    assert export._figure_json(as_set) in html_text and export._figure_json(untouched) not in html_text


def test_the_export_holds_the_learners_attribution_and_patching_run(loaded, analysis, tmp_path):
    """Both Who voted views, as the learner left them, in the page and in the numbers."""
    from explorer.attribution import logit_attribution, patch

    enc = loaded.tokenizer
    ids = analysis.trace.token_ids.tolist()
    target, foil = enc.encode(" jumps")[0], enc.encode(" fox")[0]
    split = logit_attribution(loaded.model, ids, target, foil)
    clean, corrupted = "When Mary and John went", "When Mary and Bob went"
    run = patch(loaded.model, enc.encode(clean), enc.encode(corrupted), target, foil)
    labels = [analysis.label(i) for i in enc.encode(clean)], [analysis.label(i) for i in enc.encode(corrupted)]
    experiments = export.Experiments(split, run, *labels, clean, corrupted)
    page_path, numbers_path = export.write_export(loaded, analysis, tmp_path / "run.html", 1, 2,
                                                  experiments=experiments)
    page = page_path.read_text(encoding="utf-8")
    assert "<h2>Patching: where the answer is decided" in page and "When Mary and Bob went" in page
    assert page.count("draw('figure-") == 11
    numbers = json.loads(numbers_path.read_text(encoding="utf-8"))
    assert numbers["attribution"]["target"]["id"] == target and numbers["attribution"]["foil"]["id"] == foil
    np.testing.assert_allclose(numbers["attribution"]["heads"], split.heads, atol=1e-6)
    assert numbers["attribution"]["logit"] == pytest.approx(split.logit)
    np.testing.assert_allclose(numbers["patching"]["recovered"], run.recovered, atol=1e-6)
    assert numbers["patching"]["corrupted"] == corrupted and numbers["patching"]["site"] == "resid_pre"


def test_without_the_tab_the_export_splits_the_most_likely_tokens_logit(written, loaded, analysis):
    from explorer.attribution import logit_attribution

    numbers = json.loads(written[1].read_text(encoding="utf-8"))
    want = logit_attribution(loaded.model, analysis.trace.token_ids.tolist())
    assert numbers["attribution"]["target"]["id"] == int(np.argmax(analysis.trace.next_token_probs)) == want.target
    assert numbers["attribution"]["foil"] is None and "patching" not in numbers


def test_the_export_holds_the_generation_tree_the_learner_made(loaded, analysis, tmp_path):
    from explorer.branching import Alternative, BranchTree

    tree = BranchTree(analysis.trace.token_ids.tolist(), analysis.prompt)
    alternatives = (Alternative(464, " The", 0.4), Alternative(290, " and", 0.3))
    tree.extend(464, " The", 0.4, alternatives)
    tree.extend(2068, " quick", 0.2)
    tree.branch(1, 1)  # " and" instead of " The": a fork at the first token
    page_path, numbers_path = export.write_export(loaded, analysis, tmp_path / "run.html", 1, 2,
                                                  experiments=export.Experiments(tree=tree))
    page = page_path.read_text(encoding="utf-8")
    assert "<h2>Generation: every token tried" in page and "3 in all" in page
    numbers = json.loads(numbers_path.read_text(encoding="utf-8"))["generation_tree"]
    assert [(n["parent"], n["token"]) for n in numbers["nodes"]] == [(0, " The"), (1, " quick"), (0, " and")]
    assert numbers["current"] == 3 and numbers["text"] == PROMPT + " and"
