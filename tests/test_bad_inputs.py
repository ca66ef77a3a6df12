"""Every invalid value on every endpoint gets a message naming the field; the server keeps serving.

Sent two ways against the real `python app.py`: through gradio_client (as a script would) and as raw
queue posts (/gradio_api/queue/join, then the SSE stream of /gradio_api/queue/data), which can carry
what a client library would never send (NaN, Infinity, objects where numbers go).
"""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

PROMPT = "Every effort moves you"
NOT_NUMBERS = ["abc", None, [], {}, True, "1e3"]
NOT_WHOLE = [0.5]
# endpoint -> field (API parameter name) -> (the label the message must name, bad values)
RANGES = {
    "layer": ("Layer", NOT_NUMBERS + NOT_WHOLE + [-1, 10**6, 2**70]),
    "head": ("Head", NOT_NUMBERS + NOT_WHOLE + [-1, 10**6]),
    "mean_heads": ("Mean over heads", ["yes", 1, None, [True]]),
    "lens_positions": ("Logit lens", NOT_NUMBERS + NOT_WHOLE + [0, -5, 33, 10**9]),
    "temperature": ("Temperature", NOT_NUMBERS + [-1, 1e-320, 0.001, 2.5, 1e308]),
    "top_k": ("Top-k", NOT_NUMBERS + NOT_WHOLE + [-3, 201, 2**63]),
    "top_p": ("Top-p", NOT_NUMBERS + [0, -0.5, 1.5, 0.001]),
    "seed": ("Seed", ["abc", [], {}, True, 0.5, -1, 2**64]),
    "max_new_tokens": ("Max new tokens", NOT_NUMBERS + NOT_WHOLE + [0, -1, 257, 10**6]),
    # A released size the host did not list (--sizes) is refused before anything is downloaded.
    "model_name": ("Model", ["../../etc/passwd", "125M", "", None, 124, ["124M"], "http://example.com/x", "355M",
                             "1558M"]),
    "prompt": ("Prompt", [None, 42, "", "   ", "x" * 20_001, ["a"], {"text": "a"}]),
    "query": ("Query position", NOT_NUMBERS + NOT_WHOLE + [-1, 10**6]),
    # the experiments (undocumented endpoints: reached by raw posts below)
    "scope": ("Turn off", []),
    "mode": ("Replace their output with", []),
    "model_a": ("Model A", []),
    "model_b": ("Model B", []),
    "alternative": ("Instead of the last token, take", []),
    "node": ("Go back to token", []),
}
ENDPOINTS = {
    "/analyze": ["prompt", "model_name", "layer", "head", "mean_heads", "lens_positions", "temperature", "top_k",
                 "top_p", "seed"],
    "/generate": ["prompt", "model_name", "max_new_tokens", "temperature", "top_k", "top_p", "seed"],
}
CLIENT_CASES = [(endpoint, field, value) for endpoint, fields in ENDPOINTS.items() for field in fields
                for value in RANGES[field][1]]
# Raw posts reach the undocumented endpoints too, with JSON a client library would not produce.
RAW_VALUES = {"number": ["NaN", "Infinity", "-Infinity", '"7"', "{}", "null"], "flag": ['"true"', "0"],
              "choice": ['"../../etc/passwd"', '"99"', "3", "[]", "{}", '"1558M"']}
RAW_CASES = [("select_head", "layer", v) for v in RAW_VALUES["number"]] + \
            [("select_head", "query", v) for v in RAW_VALUES["number"]] + \
            [("select_head", "mean_heads", v) for v in RAW_VALUES["flag"]] + \
            [("resample", "temperature", v) for v in RAW_VALUES["number"]] + \
            [("resample", "top_p", v) for v in RAW_VALUES["number"]] + \
            [("lens", "lens_positions", v) for v in RAW_VALUES["number"]] + \
            [("step", "top_k", v) for v in RAW_VALUES["number"]] + \
            [("step", "prompt", v) for v in ["null", "5", "[]", '""']] + \
            [("analyze", "temperature", v) for v in RAW_VALUES["number"]] + \
            [("ablate", field, v) for field in ("layer", "head") for v in RAW_VALUES["number"]] + \
            [("ablate", field, v) for field in ("scope", "mode") for v in RAW_VALUES["choice"] + ["null"]] + \
            [("compare", field, v) for field in ("model_a", "model_b") for v in RAW_VALUES["choice"] + ["null"]] + \
            [("compare", "prompt", v) for v in ["null", "5", '""']] + \
            [(api, field, v) for api, field in (("branch", "alternative"), ("go_back", "node"))
             for v in RAW_VALUES["choice"]]


def test_the_matrix_has_at_least_a_hundred_bad_inputs():
    assert len(CLIENT_CASES) + len(RAW_CASES) >= 100


@pytest.fixture(scope="module")
def client(app_server):
    return Client(app_server.url, verbose=False)


@pytest.fixture(scope="module")
def config(app_server):
    with urllib.request.urlopen(app_server.url + "config", timeout=30) as response:
        return json.load(response)


@pytest.mark.parametrize("endpoint, field, value", CLIENT_CASES, ids=[f"{e}-{f}-{v!r}"[:60] for e, f, v in CLIENT_CASES])
def test_a_bad_value_sent_by_gradio_client_is_refused_naming_the_field(client, endpoint, field, value):
    label = RANGES[field][0]
    with pytest.raises(AppError) as raised:
        client.predict(**({"prompt": PROMPT} | {field: value}), api_name=endpoint)
    message = str(raised.value)
    assert label in message and ("must" in message or "empty" in message), message
    assert "Traceback" not in message


def raw_call(app_server, config, api_name: str, field: str, raw_value: str) -> list[dict]:
    """Post one event to the queue with `field` set to the literal JSON `raw_value`; return its SSE messages."""
    dependency_index, dependency = next((i, d) for i, d in enumerate(config["dependencies"])
                                        if d.get("api_name") == api_name)
    components = {c["id"]: c for c in config["components"]}
    values = []
    for component_id in dependency["inputs"]:
        props = components[component_id]["props"]
        name = props.get("label") or ""
        values.append("__BAD__" if name.startswith(RANGES[field][0]) else json.dumps(props.get("value")))
    assert "__BAD__" in values, (api_name, field)
    return post_event(app_server, dependency_index, [raw_value if v == "__BAD__" else v for v in values])


def post_event(app_server, fn_index: int, json_values: list[str]) -> list[dict]:
    """Post one event to the queue with these literal JSON values; return its SSE messages."""
    session = uuid.uuid4().hex
    body = ('{"data": [%s], "fn_index": %d, "session_hash": "%s", "event_data": null, "trigger_id": null}'
            % (", ".join(json_values), fn_index, session))
    request = urllib.request.Request(app_server.url + "gradio_api/queue/join", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    messages = []
    with urllib.request.urlopen(f"{app_server.url}gradio_api/queue/data?session_hash={session}", timeout=60) as stream:
        for line in stream:
            if line.startswith(b"data:"):
                message = json.loads(line[5:])
                messages.append(message)
                if message.get("msg") in ("process_completed", "close_stream"):
                    break
    return messages


@pytest.mark.parametrize("api_name, field, raw_value", RAW_CASES, ids=[f"{e}-{f}-{v}" for e, f, v in RAW_CASES])
def test_a_bad_value_posted_raw_to_the_queue_is_refused_naming_the_field(app_server, config, api_name, field,
                                                                         raw_value):
    done = [m for m in raw_call(app_server, config, api_name, field, raw_value) if m.get("msg") == "process_completed"]
    assert done and not done[0]["success"], done
    error = json.dumps(done[0]["output"], ensure_ascii=False)
    assert RANGES[field][0] in error and ("must" in error or "empty" in error), error
    assert "Traceback" not in error


def test_the_server_still_answers_a_good_request_after_the_bad_ones(client):
    status = dict(zip([r["label"] for r in client.view_api(print_info=False, return_format="dict")
                       ["named_endpoints"]["/analyze"]["returns"]],
                      client.predict(PROMPT, api_name="/analyze")))["Status"]
    assert "4 tokens" in status


def completed_error(messages: list[dict]) -> str:
    done = [m for m in messages if m.get("msg") == "process_completed"]
    assert done and not done[0]["success"], messages
    return done[0]["output"].get("error")


def test_an_event_posted_with_too_few_values_is_told_how_many_it_takes(app_server, config):
    analyze = next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == "analyze")
    error = completed_error(post_event(app_server, analyze, ['"a prompt"', '"x"']))
    assert error and f"takes {len(config['dependencies'][analyze]['inputs'])} values (Prompt, Model" in error
    assert "sent 2" in error and "0x" not in error  # no memory addresses


def test_an_event_that_runs_only_in_the_page_answers_with_a_message_not_null(app_server, config):
    page_only = next(i for i, d in enumerate(config["dependencies"]) if d.get("backend_fn") is False)
    assert completed_error(post_event(app_server, page_only, []))


def test_messages_for_visitors_name_files_but_not_where_they_live():
    from explorer.tabs.parts.shared import without_server_paths

    assert without_server_paths("No such file: '/srv/app/models/tiny/model.safetensors'") == \
        "No such file: 'model.safetensors'"
    assert without_server_paths("in /tmp/gpt2-explorer/123-ab/ now") == "in 123-ab now"
    for kept in ("see http://example.com/a/b", "a ratio 1/2/3", "tokens a/b", "/x alone"):
        assert without_server_paths(kept) == kept


def test_a_broken_model_folder_is_named_to_a_visitor_by_its_file_only(tmp_path):
    import gpt2
    from explorer.tabs.parts.shared import user_errors

    folder = tmp_path / "models" / "mine"
    folder.mkdir(parents=True)
    (folder / "hparams.json").write_text("{not json")
    load = user_errors(lambda: gpt2.load_checkpoint(folder))
    with pytest.raises(Exception) as shown:
        load()
    assert "hparams.json" in shown.value.message and str(tmp_path) not in shown.value.message


def test_uploads_are_refused_and_nothing_is_stored(app_server):
    boundary = "x" + uuid.uuid4().hex
    payload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.bin\"\r\n"
               f"Content-Type: application/octet-stream\r\n\r\n").encode() + b"\0" * 2_000_000 + \
              f"\r\n--{boundary}--\r\n".encode()
    before = sorted(p for p in app_server.temp_dir.rglob("*"))
    request = urllib.request.Request(app_server.url + "gradio_api/upload", data=payload,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 403
    assert sorted(p for p in app_server.temp_dir.rglob("*")) == before
