"""The app as a user and an API client meet it: `python app.py` on 127.0.0.1 with a tiny checkpoint."""

import json
import threading

import pytest
from app_server import analyze_every_tab, event_labels, open_tab, sent
from gradio_client import Client
from gradio_client.exceptions import AppError

PROMPT = "Every effort moves you"


@pytest.fixture(scope="module")
def client(app_server):
    return Client(app_server.url, verbose=False)


READ_HERE = ("tokens", "embeddings", "attention", "layers", "next_token")  # the tabs these tests read


def analyze(client, prompt=PROMPT, **kwargs) -> dict:
    """The panels by label after Analyze, each tab opened as the page does: no copy of their order here."""
    return analyze_every_tab(client, prompt, tabs=READ_HERE, **kwargs)


def text_of(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def model_name(client) -> str:
    parameters = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/analyze"]["parameters"]
    return next(p["parameter_default"] for p in parameters if p["parameter_name"] == "model_name")


def figure(output):
    assert output["type"] == "plotly"
    return json.loads(output["plot"])


def test_only_analyze_and_generate_are_listed_in_the_api(client):
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {"/analyze", "/generate"}


def test_analyze_sends_only_the_open_tab_and_each_tab_is_built_when_opened(app_server):
    client = Client(app_server.url, verbose=False)  # a new visitor: the story opens on its first card
    out = sent(client, "/analyze", client.predict(PROMPT, api_name="/analyze"))
    next_token = set(event_labels(client, "/open_tab_next_token"))
    # The first card shows the next-token bars (and sets the sampling sliders); no other tab's panel is sent.
    sampling = {"Temperature (0 = greedy)", "Top-k (0 = off)", "Top-p (1 = off)", "Seed"}  # the card sets them
    built = {label: value for label, value in out.items() if value is not None}
    page_wide = {"Status", "Story card", "Model map"}  # the map is sent with a visitor's first analysis of a model
    assert page_wide <= set(built) <= next_token | sampling | page_wide
    again = sent(client, "/analyze", client.predict(PROMPT, api_name="/analyze"))
    assert "Status" in again and "Model map" not in again  # the same model: the page's map stays
    emptied = set(out) - set(built)  # every other tab's figures, so none shows the last prompt when opened
    assert {"Attention heatmap", "Logit lens", "Surprise per token"} <= emptied and not emptied & next_token
    assert "Next-token bars" in out and "Code: next_token" in out
    attention = open_tab(client, "attention")
    assert {"Attention heatmap", "All heads", "Head scores", "Code: attention"} <= set(attention)
    assert set(attention) <= set(event_labels(client, "/open_tab_attention"))
    assert open_tab(client, "attention") == {}  # the page already shows it: nothing is built or sent
    assert open_tab(client, "next_token") == {}  # shown by Analyze
    sent(client, "/analyze", client.predict("A different prompt", api_name="/analyze"))
    assert "Attention heatmap" in open_tab(client, "attention")  # a new analysis: built again when opened


def test_every_tab_opened_after_analyze_shows_this_prompt(client):
    out = analyze_every_tab(client, PROMPT)
    assert "4 tokens" in out["Status"]
    assert out["Token chips"].count("class=\"token-chip ") == 4 and "6109" in out["Token chips"]
    for name in ("Token embeddings", "Embedding PCA", "Attention heatmap", "All heads", "Residual norms", "Logit lens", "Next-token bars"):
        assert figure(out[name])["data"], name
    assert "4 tokens" in out["Tokens explained"]
    assert "you" in out["Attention explained"]  # the teaching text quotes the prompt's own last token


def test_attention_heatmap_has_the_prompt_tokens_on_both_axes(client):
    heatmap = figure(analyze(client)["Attention heatmap"])
    labels = text_of(heatmap)
    for token in ("Every", "␣effort", "␣moves", "␣you"):
        assert token in labels


def test_empty_prompt_is_refused_with_a_message_and_the_app_keeps_serving(client):
    with pytest.raises(AppError, match="empty"):
        client.predict("   ", api_name="/analyze")
    assert "4 tokens" in analyze(client)["Status"]


def test_prompt_longer_than_the_context_is_truncated_with_a_notice(client):
    out = analyze(client, " ".join(["word"] * 100))  # the tiny model reads 64 tokens
    assert "64 tokens" in out["Status"] and "only the last 64" in out["Status"]


def test_endoftext_and_odd_unicode_are_analysed(client):
    out = analyze(client, "end<|endoftext|>start \u200b日本🤖\x00")
    assert "50256" in out["Token chips"]
    assert "⟨" in out["Token chips"]  # partial UTF-8 bytes are marked, not garbled


@pytest.mark.parametrize(
    "kwargs, message",
    [({"temperature": -1}, "Temperature must be 0 .greedy. or from 0.01 to 2"),
     ({"top_p": 5}, "Top-p must be a number from 0.01 to 1"), ({"top_k": -3}, "Top-k must be a whole number from 0 to 200"),
     ({"model_name": "../../etc/passwd"}, "Model must be one of"), ({"layer": "x"}, "Layer must be a whole number")],
)
def test_out_of_range_values_sent_to_the_api_get_a_clear_message(client, kwargs, message):
    with pytest.raises(AppError, match=message):
        client.predict(PROMPT, api_name="/analyze", **kwargs)
    assert "4 tokens" in analyze(client)["Status"]


def test_unexpected_errors_do_not_leak_internals(client):
    with pytest.raises(AppError) as raised:
        client.predict(PROMPT, api_name="/analyze", layer="x")
    assert "Traceback" not in str(raised.value) and "File " not in str(raised.value)


def test_sliders_redraw_from_the_stored_analysis(client):
    analyze(client)
    bars, text = client.predict(0.0, 0, 1.0, 0, api_name="/resample")
    assert "1 token kept" in text_of(figure(bars))
    assert "T = 0.0" in text
    bars, text = client.predict(1.0, 3, 1.0, 0, api_name="/resample")
    assert "3 tokens kept" in text_of(figure(bars))


def test_layer_and_head_switch_redraws_the_attention(client):
    analyze(client)
    heatmap, text, walk, walk_text = client.predict(1, 2, False, 2, api_name="/select_head")
    assert "Layer 1, head 2" in text_of(figure(heatmap))
    assert "head 2, query ␣moves at position 2" in walk_text  # the head walk follows the selection
    assert "layer 1, head 2" in text and "query **␣moves** at position 2" in text
    with pytest.raises(AppError, match="Head must be a whole number from 0 to 3"):
        client.predict(1, 9, False, 2, api_name="/select_head")


def test_generate_streams_text(client):
    job = client.submit(PROMPT, api_name="/generate", max_new_tokens=6, temperature=0.0)
    updates = list(job)
    assert updates[0] == PROMPT
    assert len(updates) >= 6 and updates[-1].startswith(PROMPT) and len(updates[-1]) > len(PROMPT)
    again = client.predict(PROMPT, api_name="/generate", max_new_tokens=6, temperature=0.0)
    assert again == updates[-1]  # greedy is deterministic


def test_generate_refuses_bad_lengths(client):
    with pytest.raises(AppError, match="Max new tokens must be a whole number from 1 to 256"):
        client.predict(PROMPT, api_name="/generate", max_new_tokens=100000)


def test_step_mode_adds_one_token_at_a_time_and_matches_seeded_generation(client):
    texts = []
    for _ in range(3):
        # An undocumented endpoint takes positional arguments: prompt, model, temperature, top-k, top-p, seed.
        text, plot, *_ = client.predict(PROMPT, model_name(client), 0.8, 40, 0.95, 7, api_name="/step")
        texts.append(text)
        assert "picked" in text_of(figure(plot)).lower()
    assert texts[0].startswith(PROMPT) and len(texts[0]) < len(texts[1]) < len(texts[2])
    generated = client.predict(PROMPT, api_name="/generate", max_new_tokens=3, temperature=0.8, top_k=40,
                               top_p=0.95, seed=7)
    assert generated == texts[-1]


def test_two_clients_at_once_do_not_see_each_others_results(app_server):
    prompts = {"a": "one two three four five six", "b": "The capital of France is"}
    results, errors = {}, []

    def run(key):
        try:
            c = Client(app_server.url, verbose=False)
            for _ in range(3):
                out = analyze(c, prompts[key])
                bars, _ = c.predict(1.0, 0, 1.0, 0, api_name="/resample")
                results.setdefault(key, []).append((out["Status"], out["Token chips"]))
        except Exception as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(key,)) for key in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all("6 tokens" in status and "␣six" in chips for status, chips in results["a"])
    assert all("5 tokens" in status and "␣France" in chips for status, chips in results["b"])


def test_generating_past_the_context_keeps_going_with_a_sliding_window(client):
    prompt = " ".join(["word"] * 60)  # the tiny model's context is 64 tokens
    updates = list(client.submit(prompt, api_name="/generate", max_new_tokens=12, temperature=0.0))
    assert len(updates) >= 12 and updates[-1].startswith(prompt) and len(updates[-1]) > len(prompt)


def test_logit_lens_window_can_be_widened_without_rerunning_the_prompt(client):
    out = analyze(client, "one two three four five six seven eight nine ten eleven twelve")
    assert len(figure(out["Logit lens"])["data"][0]["x"]) == 8  # the default window: the last 8 positions
    lens, text = client.predict(12, api_name="/lens")
    assert figure(lens)["data"][0]["x"][0] == "0:one" and len(figure(lens)["data"][0]["x"]) == 12
    assert "final prediction" in text
    with pytest.raises(AppError, match="Logit lens.* must be a whole number from 1 to 32"):
        client.predict(500, api_name="/lens")
