"""The experiments in the app, as a page or an API client meets them: turning heads off, comparing two
models, branching a generation, taking a run home. Against `python app.py` on the tiny random checkpoint."""

import json

import base64

import numpy as np
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from app_server import page_call
from explorer import interventions
from explorer.analysis import analyze as analyze_prompt, labels_for

PROMPT = "Every effort moves you forward, every effort moves you"


@pytest.fixture(scope="module")
def client(app_server):
    return Client(app_server.url, verbose=False)


def figure(output) -> dict:
    assert output["type"] == "plotly"
    return json.loads(output["plot"])


def values(array) -> np.ndarray:
    """A trace's numbers as plotly sends them: a list, or a typed array {"dtype", "bdata"}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array)


def analyze(client, prompt=PROMPT):
    client.predict(prompt, api_name="/analyze")


def ablate(client, layer, head, scope="this head", mode="zero"):
    """/ablate's outputs: summary, before/after bars, moved most, surprise (positional: it is undocumented)."""
    return client.predict(layer, head, scope, mode, api_name="/ablate")


# ---- turning heads off ----

def test_turning_a_head_off_shows_the_clean_and_the_ablated_distribution_side_by_side(client, loaded):
    analyze(client)
    client.predict(api_name="/clear_ablation")
    summary, bars, _, _ = ablate(client, 1, 2, mode="mean")
    ids = loaded.tokenizer.encode(PROMPT)
    clean = analyze_prompt(loaded, PROMPT).trace.next_token_probs
    ablated = interventions.ablate(loaded.model, ids, heads=[(1, 2)], mode="mean")  # computed here, independently
    drawn = figure(bars)
    top = int(np.argmax(clean))
    row = drawn["layout"]["yaxis"]["ticktext"].index(labels_for(loaded.tokenizer)(top))
    assert values(drawn["data"][0]["x"])[row] == pytest.approx(clean[top], rel=1e-4)
    assert values(drawn["data"][1]["x"])[row] == pytest.approx(ablated[top], rel=1e-4)
    assert "head 1.2 (layer.head) replaced by their mean" in summary


def test_the_loss_on_the_prompt_is_reported_before_and_after(client, loaded):
    analyze(client)
    client.predict(api_name="/clear_ablation")
    summary, _, _, surprise = ablate(client, 0, 1)
    ids = loaded.tokenizer.encode(PROMPT)
    clean = analyze_prompt(loaded, PROMPT).trace.token_surprise.mean()
    after = interventions.run_ablation(loaded.model, ids, heads=[(0, 1)]).token_surprise.mean()
    assert f"{clean:.3f} → {after:.3f} nats" in summary
    assert "(ablated)" in figure(surprise)["layout"]["title"]["text"]


def test_heads_turned_off_stay_off_until_cleared(client):
    analyze(client)
    client.predict(api_name="/clear_ablation")
    ablate(client, 0, 1)
    summary = ablate(client, 1, 3)[0]
    assert "heads 0.1, 1.3 (layer.head)" in summary
    summary = client.predict(api_name="/clear_ablation")[0]
    assert "Nothing is turned off" in summary
    assert "head 1.0 (layer.head)" in ablate(client, 1, 0)[0]  # a fresh start: only the new head


def test_this_layers_heads_turns_off_every_head_of_the_layer(client):
    analyze(client)
    client.predict(api_name="/clear_ablation")
    assert "heads 1.0, 1.1, 1.2, 1.3 (layer.head)" in ablate(client, 1, 2, scope="this layer's heads")[0]


def test_all_heads_of_a_kind_are_the_heads_with_the_selected_heads_label():
    labels = [["mixed", "previous-token"], ["previous-token", "induction"]]
    assert interventions.heads_in_scope(labels, "all heads of this kind", 0, 1) == [(0, 1), (1, 0)]
    assert interventions.heads_in_scope(labels, "all heads of this kind", 1, 1) == [(1, 1)]


@pytest.mark.parametrize("args, message", [
    ((1, 2, "every head", "zero"), "Turn off must be one of"),
    ((1, 2, "this head", "half"), "Replace their output with must be one of"),
    ((7, 0, "this head", "zero"), "Layer must be a whole number from 0 to 1"),
    ((0, 4, "this head", "zero"), "Head must be a whole number from 0 to 3"),
])
def test_a_bad_ablation_request_gets_a_message_naming_the_field(client, args, message):
    analyze(client)
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/ablate")


def test_ablating_before_any_analysis_asks_for_one(app_server):
    fresh = Client(app_server.url, verbose=False)
    with pytest.raises(AppError, match="Analyze a prompt first"):
        ablate(fresh, 0, 0)


# ---- taking a run home ----

def test_one_click_writes_the_page_and_the_numbers_of_the_current_analysis(client, app_server):
    analyze(client, "A handout about the lazy dog")
    page, numbers = (update["value"] for update in page_call(client, "/handout"))  # downloaded over HTTP
    html_text = open(page, encoding="utf-8").read()
    assert html_text.count("Plotly.newPlot") >= 1 and "A handout about the lazy dog" in html_text
    assert json.load(open(numbers, encoding="utf-8"))["prompt"] == "A handout about the lazy dog"


def test_a_handout_is_made_with_the_head_and_sampling_the_learner_set(client):
    analyze(client, "A handout about the lazy dog")
    chosen = {"Layer": 1, "Head": 2, "Temperature (0 = greedy)": 0.5, "Top-k (0 = off)": 7, "Top-p (1 = off)": 0.9}
    _, numbers = (update["value"] for update in page_call(client, "/handout", **chosen))
    seen = json.load(open(numbers, encoding="utf-8"))["as_seen"]
    assert (seen["layer"], seen["head"], seen["temperature"], seen["top_k"], seen["top_p"]) == (1, 2, 0.5, 7, 0.9)


def test_handouts_are_served_from_the_apps_shelf_not_copied_into_gradios_cache(client, app_server):
    analyze(client)
    page_call(client, "/handout")
    assert list((app_server.workspace / "handouts").rglob("gpt2-explorer-run.*"))
    assert not list((app_server.workspace / "gradio").rglob("gpt2-explorer-run.*"))  # deleting really frees space


def test_a_handout_before_any_analysis_asks_for_one(app_server):
    with pytest.raises(AppError, match="Analyze a prompt first"):
        page_call(Client(app_server.url, verbose=False), "/handout")


# ---- branching generation ----

def model_name(client) -> str:
    parameters = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/analyze"]["parameters"]
    return next(p["parameter_default"] for p in parameters if p["parameter_name"] == "model_name")


def step(client, prompt=PROMPT):
    """/step's outputs: text, step plot, branch tree, alternatives, nodes (positional: undocumented)."""
    return client.predict(prompt, model_name(client), 1.0, 0, 1.0, 5, api_name="/step")


def choices(update) -> list[tuple[str, str]]:
    return [tuple(choice) for choice in update["choices"]]


def test_taking_an_alternative_replaces_the_last_token_and_keeps_both_branches(app_server, loaded):
    client = Client(app_server.url, verbose=False)
    step(client)
    text, _, tree, alternatives, _ = step(client)
    second_label = choices(alternatives)[1][0].split("  (")[0]
    text, tree, alternatives, nodes = client.predict("1", api_name="/branch")
    ids = loaded.tokenizer.encode(text)
    assert labels_for(loaded.tokenizer)(ids[-1]) == second_label  # the text now ends in the alternative
    assert [label.split(": ")[0] for label, _ in choices(nodes)] == ["0", "1", "2", "3"]  # 2 and 3 are siblings
    assert figure(tree)["data"][-1]["text"][3] == second_label


def test_going_back_continues_the_text_from_that_token(app_server):
    client = Client(app_server.url, verbose=False)
    first = step(client)[0]
    step(client)
    back = client.predict("1", api_name="/go_back")
    assert back[0] == first
    stale = [value for value in back[1:] if isinstance(value, dict) and "plot" in value]
    assert stale and "Back at token 1" in json.dumps(figure(stale[-1]))  # no longer the later step's distribution
    text, *_ = step(client)
    assert text.startswith(first) and len(text) > len(first)


def test_a_node_that_is_not_in_the_tree_is_refused_naming_the_field(app_server):
    client = Client(app_server.url, verbose=False)
    step(client)
    with pytest.raises(AppError, match="Go back to token must be one of"):
        client.predict("99", api_name="/go_back")
    with pytest.raises(AppError, match="Instead of the last token, take must be one of"):
        client.predict("-1", api_name="/branch")


def test_branching_before_any_step_asks_for_one(app_server):
    with pytest.raises(AppError, match="Press Step first"):
        Client(app_server.url, verbose=False).predict(None, api_name="/branch")


# ---- two models side by side ----

def test_compare_shows_each_models_surprise_and_head_types_for_the_prompt(client, loaded):
    name = model_name(client)
    text, bars_a, surprise_a, heads_a, *_ = client.predict(PROMPT, name, name, api_name="/compare")
    analysis = analyze_prompt(loaded, PROMPT)
    assert f"mean {analysis.trace.token_surprise.mean():.2f} nats" in figure(surprise_a)["layout"]["title"]["subtitle"]["text"].replace("<br>", " ")
    assert figure(heads_a)["data"][0]["customdata"] == analysis.scores.labels()
    assert f"same {analysis.trace.n_tokens} tokens" in text
    top = labels_for(loaded.tokenizer)(int(np.argmax(analysis.trace.next_token_probs)))
    assert figure(bars_a)["layout"]["yaxis"]["ticktext"][0] == top


@pytest.mark.parametrize("args, message", [
    ((PROMPT, "../../etc/passwd", None), "Model A must be one of"),
    ((PROMPT, None, "125M"), "Model B must be one of"),
    (("   ", None, None), "Prompt: the prompt is empty"),
])
def test_a_bad_comparison_request_gets_a_message_naming_the_field(client, args, message):
    name = model_name(client)
    args = tuple(name if value is None else value for value in args)
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/compare")


def ablated_top(loaded, prompt, built):
    """The drawn ablated probability of the prompt's clean top token, and the one computed here independently."""
    drawn = figure(built["Ablation before and after"])
    top = int(np.argmax(analyze_prompt(loaded, prompt).trace.next_token_probs))
    row = drawn["layout"]["yaxis"]["ticktext"].index(labels_for(loaded.tokenizer)(top))
    ablated = interventions.ablate(loaded.model, loaded.tokenizer.encode(prompt), heads=[(1, 2)], mode="mean")
    return values(drawn["data"][1]["x"])[row], ablated[top]


def test_a_new_prompt_runs_the_heads_turned_off_when_attention_is_built_and_nothing_else(client, loaded):
    """What is turned off stays off for the next prompt: building the Attention tab for it (by Analyze when the
    tab is open, else when it is opened) runs the same heads on it. With nothing turned off no ablation is run
    or sent: Analyze has no event of its own for it."""
    from app_server import open_tab, sent

    def attention_built(prompt) -> dict:
        out = sent(client, "/analyze", client.predict(prompt, api_name="/analyze"))
        return out if out.get("Attention heatmap") is not None else open_tab(client, "attention")

    other = "The cat sat on the mat and the cat sat"
    client.predict(api_name="/clear_ablation")
    built = attention_built(other)
    assert built["Attention heatmap"] is not None
    assert not [label for label, value in built.items() if label.startswith("Ablation") and value is not None]
    ablate(client, 1, 2, mode="mean")
    for prompt in (PROMPT, other):
        built = attention_built(prompt)
        drawn, expected = ablated_top(loaded, prompt, built)
        assert drawn == pytest.approx(expected, rel=1e-4)
        assert "head 1.2 (layer.head) replaced by their mean" in built["Ablation explained"]
    client.predict(api_name="/clear_ablation")
