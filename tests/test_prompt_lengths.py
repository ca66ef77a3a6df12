"""Every prompt length works in every panel: 1, 2, 3 tokens, a typical prompt, exactly n_ctx, and longer.

Through the real server (the tiny model's context is 64 tokens), each panel's endpoint in turn.
"""

import json

import pytest
from gradio_client import Client

import gpt2
from app_server import analyze_every_tab

N_CTX = 64
PROMPTS = {1: "Hello", 2: "Hello world", 3: "Hello world!", 10: "The quick brown fox jumps over the lazy dog again",
           N_CTX: "word" + " word" * (N_CTX - 1), 100: "word" + " word" * 99}


@pytest.fixture(scope="module")
def client(app_server):
    return Client(app_server.url, verbose=False)


def analyze(client, prompt) -> dict:
    """The panels these tests read after Analyze, each tab opened as the page does."""
    return analyze_every_tab(client, prompt, tabs=("embeddings", "attention", "layers", "next_token"))


def figure(output) -> dict:
    return json.loads(output["plot"])


def shape(z) -> tuple[int, ...]:
    """A heatmap's z as plotly sends it: nested lists, or a typed array {"bdata", "shape"}."""
    if isinstance(z, dict):
        return tuple(int(n) for n in str(z["shape"]).split(","))
    return (len(z), len(z[0]))


def test_the_prompts_have_the_lengths_they_are_named_for():
    assert {n: len(gpt2.get_tokenizer().encode(p)) for n, p in PROMPTS.items()} == {n: n for n in PROMPTS}


@pytest.mark.parametrize("n_tokens", PROMPTS)
def test_analyze_fills_every_panel(client, n_tokens):
    out = analyze(client, PROMPTS[n_tokens])
    seen = min(n_tokens, N_CTX)
    assert f"prompt: {seen} token" in out["Status"]
    assert ("only the last 64" in out["Status"]) == (n_tokens > N_CTX)
    for label in ("Token embeddings", "Embedding PCA", "Position curve", "Cosine similarity", "Attention heatmap",
                  "All heads", "Head scores", "Residual norms", "Block contributions", "Logit lens",
                  "Next-token bars"):
        assert figure(out[label])["data"], label
    query = out["Query position (outlined row)"]  # a valid range even for one token, then disabled
    assert query["value"] == seen - 1 and query["maximum"] == max(1, seen - 1) and query["interactive"] == (seen > 1)
    heatmap = figure(out["Attention heatmap"])["data"][0]
    assert shape(heatmap["z"]) == (seen, seen)
    assert len(figure(out["Logit lens"])["data"][0]["x"]) == min(seen, 8)


@pytest.mark.parametrize("n_tokens", PROMPTS)
def test_sliders_redraw_at_every_length(client, n_tokens):
    client.predict(PROMPTS[n_tokens], api_name="/analyze")  # the redraws read the kept analysis, no tab needed
    seen = min(n_tokens, N_CTX)
    heatmap, text, *_walk = client.predict(1, 3, False, 0, api_name="/select_head")  # the first query row
    assert "Layer 1, head 3" in json.dumps(figure(heatmap), ensure_ascii=False) and "position 0" in text
    lens, _ = client.predict(32, api_name="/lens")
    assert len(figure(lens)["data"][0]["x"]) == min(seen, 32)
    bars, _ = client.predict(0.7, 5, 1.0, 1, api_name="/resample")
    assert "5 tokens kept" in json.dumps(figure(bars))


def test_one_token_shows_a_one_by_one_attention_map_and_a_one_column_lens(client):
    out = analyze(client, "!")
    heatmap = figure(out["Attention heatmap"])["data"][0]
    assert shape(heatmap["z"]) == (1, 1)
    assert len(figure(out["Logit lens"])["data"][0]["x"]) == 1
    assert out["Query position (outlined row)"]["interactive"] is False
