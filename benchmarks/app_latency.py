"""Round-trip latency and payload size of the explorer app, as a browser would see them.

    .venv/bin/python benchmarks/app_latency.py

Starts `python app.py --model-dir DIR` on 127.0.0.1, where DIR holds GPT-2 124M's shape with
random weights (hparams.json + model.safetensors; nothing can be downloaded here), and
measures, median over rounds:

    analyze        /analyze with a 32-token prompt: tokenize, one captured forward pass, logit
                   lens, head scores, every figure built and serialised, sent back
    slider         /resample: the next-token panel redrawn for new temperature/top-k/top-p
    head switch    /select_head: the attention heatmap and overview for another layer/head
    payload        the largest single figure in /analyze's answer for a 256-token prompt

Each event is timed two ways, both over HTTP to the real server:

    gradio_client  the official Python client, as the issue asks for /analyze
    page           the web page's own protocol (page_protocol.py): post the event, read the
                   answer from the event stream the moment it is written. gradio_client
                   checks for messages every 50 ms, which puts a floor of ~150 ms under any
                   event on this machine, however little it does; the page has no such wait,
                   so this is the round trip a learner moving a slider sees.

Targets from the issue: analyze <= 0.5 s (through gradio_client), slider and head switch
<= 100 ms round trip, payload <= 1 MB. For scale, the table also times Hugging Face
transformers' eager forward with attentions and hidden states on the same weights and
prompt, in this process (no server, no figures).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import gpt2  # noqa: E402
from app_server import AppServer  # noqa: E402
from decode_speed import hf_model_like  # noqa: E402
from page_protocol import PageSession  # noqa: E402

ROUNDS = 7
WORDS = ("the cat sat on a mat and looked at the dog who barked at the moon while the night grew "
         "long and the stars came out over the quiet town by the river").split()


def prompt_of(n_tokens: int) -> str:
    enc, text, i = gpt2.get_tokenizer(), "", 0
    while len(enc.encode(text)) < n_tokens:
        text += ("" if not text else " ") + WORDS[i % len(WORDS)]
        i += 1
    return text


def write_random_124m(directory: Path) -> gpt2.GPT2:
    torch.manual_seed(0)
    model = gpt2.GPT2(gpt2.GPTConfig()).eval()
    (directory / "hparams.json").write_text(json.dumps(model.config.to_hparams()))
    save_file({name: p.detach().contiguous() for name, p in model.named_parameters()},
              str(directory / "model.safetensors"))
    return model


def median_seconds(call, rounds: int = ROUNDS) -> float:
    call()  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def largest_figure_bytes(outputs) -> int:
    return max(len(o["plot"].encode()) for o in outputs if isinstance(o, dict) and o.get("type") == "plotly")


def main() -> None:
    from gradio_client import Client

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        model = write_random_124m(Path(tmp))
        server = AppServer(Path(tmp), Path(tmp) / "app.log")
        try:
            server.wait_until_ready()
            client = Client(server.url, verbose=False)
            page = PageSession(server.url)
            short, long = prompt_of(32), prompt_of(256)
            model_name = page.components[page.events["analyze"]["inputs"][1]]["props"]["value"]
            page_inputs = (model_name, 5, 3, False, 1.0, 0, 1.0, 0, 8)  # the page's defaults after the prompt
            times = {
                "analyze": (median_seconds(lambda: client.predict(short, api_name="/analyze")),
                            median_seconds(lambda: page.call("analyze", short, *page_inputs))),
                "slider": (median_seconds(lambda: client.predict(0.7, 40, 0.9, 1, api_name="/resample")),
                           median_seconds(lambda: page.call("resample", 0.7, 40, 0.9, 1))),
                "head": (median_seconds(lambda: client.predict(5, 3, False, 31, api_name="/select_head")),
                         median_seconds(lambda: page.call("select_head", 5, 3, False, 31))),
            }
            payload = largest_figure_bytes(client.predict(long, api_name="/analyze"))
            page.close()
        finally:
            server.stop()
    hf = hf_model_like(model, "eager")
    ids = torch.tensor([gpt2.get_tokenizer().encode(short)])
    with torch.inference_mode():
        hf_forward = median_seconds(lambda: hf(ids, output_attentions=True, output_hidden_states=True,
                                               logits_to_keep=1))

    analyze = times["analyze"][0]
    print(f"GPT-2 124M shapes, 2 threads, median of {ROUNDS} rounds")
    print(f"{'measure':<34} {'gradio_client':>13} {'page':>8} {'target':>10}")
    for key, label, target in (("analyze", "analyze, 32-token prompt", "<= 500ms"),
                               ("slider", "slider redraw (/resample)", "<= 100ms"),
                               ("head", "layer/head switch (/select_head)", "<= 100ms")):
        via_client, via_page = times[key]
        print(f"{label:<34} {via_client * 1000:>11.0f}ms {via_page * 1000:>6.0f}ms {target:>10}")
    print(f"{'largest figure, 256-token prompt':<34} {payload / 1e6:>11.2f}MB {'':>8} {'<= 1 MB':>10}")
    print(f"{'HF forward alone, 32 tokens':<34} {hf_forward * 1000:>11.0f}ms "
          f"(analyze / HF forward = {analyze / hf_forward:.1f}x)")


if __name__ == "__main__":
    main()
