"""The Who voted tab as an API client meets it: logit attribution of the analysed prompt, patching of a pair,
and the buttons that open a head. Against `python app.py` on the tiny random checkpoint; every number drawn
is compared with explorer.attribution run here, on the same weights."""

import json

import numpy as np
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from app_server import open_tab, page_call, sent
from explorer.attribution import PATCHING_EXAMPLES, logit_attribution, patch
from test_experiments_app import values

PROMPT = "Every effort moves you forward, every effort moves you"


@pytest.fixture(scope="module")
def client(app_server):
    client = Client(app_server.url, verbose=False)
    client.predict(PROMPT, api_name="/analyze")
    return client


def figure(output) -> dict:
    assert output["type"] == "plotly"
    return json.loads(output["plot"])


def heatmap_values(plot) -> np.ndarray:
    z = figure(plot)["data"][0]["z"]
    return np.asarray([values(row) for row in z]) if isinstance(z, list) else values(z)


def opened(client) -> dict:
    client.predict(PROMPT, api_name="/analyze")  # a new analysis: the tab is built again when opened
    return open_tab(client, "attribution")


def test_opening_the_tab_splits_the_top_tokens_logit(client, loaded):
    out = opened(client)
    ids = loaded.tokenizer.encode(PROMPT)
    want = logit_attribution(loaded.model, ids)  # the most likely token, no foil
    np.testing.assert_allclose(heatmap_values(out["Attribution by head"]).reshape(want.heads.shape), want.heads,
                               atol=1e-4)
    assert out["Token to explain"]["value"] == str(want.target)
    assert len(out["Token to explain"]["choices"]) == 10  # the ten most likely next tokens to pick from
    assert f"a logit of {want.logit:.2f}" in out["Attribution explained"]
    assert "What it does not say" in out["Attribution explained"]


def test_a_foil_splits_the_difference_and_a_bad_token_is_refused(client, loaded):
    opened(client)
    ids = loaded.tokenizer.encode(PROMPT)
    want = logit_attribution(loaded.model, ids, target=loaded.tokenizer.encode(" forward")[0],
                             foil=loaded.tokenizer.encode(" you")[0])
    out = sent(client, "/attribution", client.predict(" forward", " you", api_name="/attribution"))
    np.testing.assert_allclose(heatmap_values(out["Attribution by head"]).reshape(want.heads.shape), want.heads,
                               atol=1e-4)
    assert f"by {want.logit:+.2f}".replace("-", "−") in out["Attribution explained"]
    with pytest.raises(AppError, match="exactly one"):
        client.predict(" forward you", "", api_name="/attribution")
    with pytest.raises(AppError, match="does not exist"):
        client.predict("99999999", "", api_name="/attribution")


def test_a_head_button_opens_the_attention_tab_at_that_head(client, loaded):
    opened(client)
    want = logit_attribution(loaded.model, loaded.tokenizer.encode(PROMPT))
    order = np.argsort(-np.abs(want.heads), axis=None, kind="stable")
    for index in (0, 1):  # the largest head, then the second
        layer, head = divmod(int(order[index]), want.heads.shape[1])
        out = sent(client, f"/attribution_open_head_{index}",
                   page_call(client, f"/attribution_open_head_{index}"))
        assert (out["Layer"]["value"], out["Head"]["value"]) == (layer, head)  # the Attention tab's sliders
        assert f"head {head} (" in figure(out["Attention heatmap"])["layout"]["title"]["text"]


def patching(client, clean, corrupted, answer, foil, site="resid_pre"):
    return page_call(client, "/patching", **{"Clean prompt": clean, "Corrupted prompt": corrupted,
                                             "Clean answer (one token)": answer,
                                             "Corrupted answer (one token)": foil, "Copy what": site})


def test_patching_draws_the_share_recovered_at_every_site(client, loaded):
    example = PATCHING_EXAMPLES["gpt2"]  # the tiny checkpoint reads GPT-2's tokens
    enc = loaded.tokenizer
    target, foil = enc.encode(example.answer)[0], enc.encode(example.foil)[0]
    want = patch(loaded.model, enc.encode(example.clean), enc.encode(example.corrupted), target, foil)
    plot, text = patching(client, example.clean, example.corrupted, example.answer, example.foil)
    np.testing.assert_allclose(heatmap_values(plot).reshape(want.recovered.shape), want.recovered, atol=1e-4)
    assert f"the columns before position {want.first_difference} are 0" in text


def test_patching_refuses_what_it_cannot_compare_with_a_message(client):
    clean = "When Mary and John went to the store, John gave a drink to"
    with pytest.raises(AppError, match="same number of tokens"):
        patching(client, clean, "When Mary went to the store, John gave a drink to", " Mary", " John")
    with pytest.raises(AppError, match="at most 40 tokens"):
        patching(client, clean * 4, clean * 4, " Mary", " John")
    with pytest.raises(AppError, match="exactly one"):
        patching(client, clean, clean.replace("John gave", "Mary gave"), " Mary Ann", " John")
    with pytest.raises(AppError, match="Copy what"):
        patching(client, clean, clean.replace("John gave", "Mary gave"), " Mary", " John", "embed")


def test_the_handout_holds_the_split_on_screen_and_never_one_of_an_older_prompt(client, loaded):
    opened(client)
    enc = loaded.tokenizer
    target, foil = enc.encode(" forward")[0], enc.encode(" you")[0]
    client.predict(" forward", " you", api_name="/attribution")
    chosen = {"Token to explain": " forward", "Against this token (optional foil)": " you"}
    _, numbers = (update["value"] for update in page_call(client, "/handout", **chosen))
    split = json.load(open(numbers, encoding="utf-8"))["attribution"]
    assert (split["target"]["id"], split["foil"]["id"]) == (target, foil)
    # A new prompt, the tab not opened again: the page's menus still hold the old choice, the handout does not.
    other = "The lazy dog sleeps in the sun"
    client.predict(other, api_name="/analyze")
    _, numbers = (update["value"] for update in page_call(client, "/handout", **chosen))
    split = json.load(open(numbers, encoding="utf-8"))["attribution"]
    want = logit_attribution(loaded.model, enc.encode(other))
    assert split["target"]["id"] == want.target and split["foil"] is None


def test_the_handout_holds_the_tree_the_learner_stepped_from_this_prompt(client):
    from test_app import model_name

    client.predict(PROMPT, api_name="/analyze")
    for _ in range(2):
        text, *_ = client.predict(PROMPT, model_name(client), 1.0, 0, 1.0, 5, api_name="/step")
    _, numbers = (update["value"] for update in page_call(client, "/handout", Prompt=PROMPT))
    tree = json.load(open(numbers, encoding="utf-8"))["generation_tree"]
    assert len(tree["nodes"]) == 2 and tree["text"] == text  # what the Generate tab shows
