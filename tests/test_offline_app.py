"""Offline by default: `python app.py` with nothing cached and no network serves the small model trained here,
and its Training tab shows the snapshots of its training."""

import json
import re

import pytest

import gpt2
from gradio_client import Client
from gradio_client.exceptions import AppError

from app_server import AppServer, analyze_every_tab
from test_app import figure, model_name
from test_store import SHIPPED_NAME

PROMPT = "def __init__(self, name):\n    self.name = name\n    self.name = name"


def analyze(client, prompt: str) -> dict:
    """Analyze, then open the tabs these tests read, as the page does (the Training tab sets its sliders' range)."""
    return analyze_every_tab(client, prompt, tabs=("attention", "training"))


@pytest.fixture(scope="module")
def client(offline_app_server):
    return Client(offline_app_server.url, verbose=False)


def test_offline_the_app_serves_the_shipped_model(client):
    assert model_name(client) == SHIPPED_NAME
    out = analyze(client, PROMPT)
    assert SHIPPED_NAME in out["Status"] and "2 layers × 4 heads" in out["Status"]
    assert figure(out["Attention heatmap"])["data"]


def test_offline_the_status_line_says_why_and_how_to_get_gpt2(client):
    status = analyze(client, PROMPT)["Status"]
    assert "cannot be reached" in status and "python -m gpt2 download 124M" in status


SHIPPED_LOG = json.loads((gpt2.SHIPPED_MODELS["tiny"] / "training_log.json").read_text(encoding="utf-8"))
LAST_STEP = SHIPPED_LOG["step"]
LAST = len(SHIPPED_LOG["snapshots"])  # the slider's last index: the snapshots, then the finished model


def test_analyze_shows_the_finished_model_in_the_training_tab(client):
    out = analyze(client, PROMPT)
    assert f"step {LAST_STEP:,} of {LAST_STEP:,}" in out["Snapshot caption"]
    assert "the finished model" in out["Snapshot caption"]
    assert figure(out["Training loss curve"])["layout"]["annotations"][0]["text"] == f"step {LAST_STEP:,}"
    share = SHIPPED_LOG["repeat_windows"]["share"]
    assert f"{share:.0%} of its training windows held a sequence written twice" in out["Training explained"]
    assert f"What it writes at step {LAST_STEP:,}" in out["Snapshot sample"]


def test_the_slider_shows_the_chosen_snapshot_on_the_loss_curve(client):
    analyze(client, PROMPT)
    caption, curve, *_ = client.predict(0, 0, 0, api_name="/select_snapshot")
    assert f"step 0 of {LAST_STEP:,}" in caption and "before any training" in caption
    assert figure(curve)["layout"]["annotations"][0]["text"] == "step 0"


def test_moving_the_snapshot_slider_changes_the_heads_labels(client):
    analyze(client, PROMPT)
    outputs = {}
    for index in (0, LAST):
        caption, _curve, head_map, pattern, text, sample = client.predict(
            index, 1, 0, api_name="/select_snapshot")
        outputs[index] = (json.dumps(figure(head_map)), text, sample)
    assert "induction" not in outputs[0][0] and "induction" in outputs[LAST][0]  # the tiles' labels
    best = re.search(r"strongest induction head: layer (\d+) head (\d+) at ([\d.]+)", outputs[LAST][1])
    assert best and float(best.group(3)) >= 0.4  # the finished model has one, and the text names it
    assert outputs[0][2] != outputs[LAST][2]  # the samples differ


def test_a_snapshot_outside_the_run_gets_a_message(client):
    analyze(client, PROMPT)
    with pytest.raises(AppError, match=f"Snapshot must be a whole number from 0 to {LAST}"):
        client.predict(LAST + 1, 0, 0, api_name="/select_snapshot")


def test_size_tiny_starts_with_the_shipped_model_without_a_notice(tmp_path_factory):
    folder = tmp_path_factory.mktemp("size-tiny")
    server = AppServer(None, folder / "app.log", "--size", "tiny", "--cache-dir", str(folder / "empty-cache"))
    try:
        server.wait_until_ready()
        client = Client(server.url, verbose=False)
        assert model_name(client) == SHIPPED_NAME
        status = analyze(client, PROMPT)["Status"]
        assert SHIPPED_NAME in status and "cannot be reached" not in status
    finally:
        server.stop()


def test_offline_compare_offers_only_what_loads_and_its_default_pair_compares(client):
    """Offline: no GPT-2 size to compare (it is not on disk); the shipped model against its own snapshot from
    just before its heads formed, which works."""
    from app_server import page_call, sent

    components = {c["id"]: c for c in client.config["components"]}
    menus = {c["props"]["label"]: c["props"] for c in components.values()
             if c["type"] == "dropdown" and c["props"].get("label") in ("Model A", "Model B")}
    offered = [choice[0] if isinstance(choice, list) else choice for choice in menus["Model A"]["choices"]]
    assert "124M" not in offered and SHIPPED_NAME in offered
    assert menus["Model A"]["value"] == SHIPPED_NAME and menus["Model B"]["value"].startswith(f"{SHIPPED_NAME} · step ")
    out = sent(client, "/compare", page_call(client, "/compare", Prompt=PROMPT))
    text = out["Comparison explained"]
    assert "Error" not in json.dumps(out) and menus["Model B"]["value"] in text and "token by token" in text


def test_the_patching_example_is_in_the_language_of_the_model_the_page_opens_with(client):
    """Offline the page opens with the shipped model, which reads Python: its example pair, not GPT-2's names."""
    from explorer.attribution import PATCHING_EXAMPLES

    defaults = {c.get("props", {}).get("label"): c.get("props", {}).get("value") for c in client.config["components"]}
    example = PATCHING_EXAMPLES["trained"]
    assert (defaults["Clean prompt"], defaults["Clean answer (one token)"]) == (example.clean, example.answer)
