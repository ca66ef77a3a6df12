import subprocess
import sys

import numpy as np
import pytest
import torch

import gpt2
from conftest import TINY_HPARAMS
from explorer.capture import capture
from openai_layout import reference_forward

IDS = [6109, 3626, 6100, 345, 15496, 11, 995, 0, 464, 2068, 7586, 21831, 625, 262]


@pytest.fixture(scope="module")
def trace(tiny_model):
    return capture(tiny_model, IDS)


@pytest.fixture(scope="module")
def reference(tiny_weights):
    return reference_forward(tiny_weights, TINY_HPARAMS, IDS)


def all_hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_shapes(trace):
    L, H, C, T = TINY_HPARAMS["n_layer"], TINY_HPARAMS["n_head"], TINY_HPARAMS["n_embd"], len(IDS)
    assert trace.attention.shape == (L, H, T, T)
    assert trace.residual.shape == (L + 1, T, C)
    assert trace.attn_out.shape == trace.mlp_out.shape == (L, T, C)
    assert trace.tok_embed.shape == trace.pos_embed.shape == (T, C)
    assert trace.logits.shape == trace.next_token_probs.shape == (TINY_HPARAMS["n_vocab"],)
    assert trace.attention.dtype == np.float16


def test_matches_float64_reference(trace, reference):
    np.testing.assert_allclose(trace.attention.astype(np.float64), reference["attention"], atol=1e-3)
    np.testing.assert_allclose(trace.residual, reference["residual"], rtol=1e-4, atol=1e-4 * np.abs(reference["residual"]).max())
    z = reference["logits"][-1]
    probs = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    np.testing.assert_allclose(trace.next_token_probs, probs, atol=1e-5)


def test_no_hooks_left_after_capture(tiny_model, trace):
    assert all_hooks(tiny_model) == 0


def test_no_hooks_left_after_a_failing_capture(tiny_model):
    def explode(module, inputs, output):
        raise RuntimeError("boom")

    handle = tiny_model.h[1].mlp.register_forward_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            capture(tiny_model, IDS)
    finally:
        handle.remove()
    assert all_hooks(tiny_model) == 0


def test_capture_does_not_change_the_output(tiny_model, trace):
    with torch.no_grad():
        before = tiny_model(torch.tensor([IDS]))[0, -1]
        capture(tiny_model, IDS)
        after = tiny_model(torch.tensor([IDS]))[0, -1]
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    np.testing.assert_allclose(trace.logits, before.numpy(), atol=1e-5)


def test_attention_rows_sum_to_one_and_are_causal(trace):
    a = trace.attention.astype(np.float32)
    np.testing.assert_allclose(a.sum(-1), 1.0, atol=2e-3)
    assert np.all(np.triu(a, k=1) == 0)


def test_last_residual_through_ln_f_and_tied_head_gives_the_logits(tiny_model, trace):
    with torch.no_grad():
        logits = tiny_model.ln_f(torch.from_numpy(trace.residual[-1, -1])) @ tiny_model.wte.weight.T
    np.testing.assert_allclose(logits.numpy(), trace.logits, atol=1e-4)


def test_residual_is_the_sum_of_embeddings_and_block_outputs(trace):
    np.testing.assert_allclose(trace.embed, trace.tok_embed + trace.pos_embed, atol=1e-6)
    rebuilt = trace.embed + trace.attn_out.sum(0) + trace.mlp_out.sum(0)
    np.testing.assert_allclose(rebuilt, trace.residual[-1], atol=1e-4)


def test_block_outputs_match_the_float64_reference(trace, reference):
    # attn_out and mlp_out are derived from the stored stream (x'_l - x_{l-1}, x_l - x'_l);
    # the reference computes them directly.
    for name in ("attn_out", "mlp_out"):
        expected = reference[name]
        np.testing.assert_allclose(getattr(trace, name), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
        np.testing.assert_allclose(getattr(trace, name + "_norms"), np.linalg.norm(expected, axis=-1), rtol=1e-4)


def _reference_surprise(reference):
    z = reference["logits"][:-1]  # the prediction at positions 0..T-2, float64
    log_probs = z - z.max(-1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
    return -log_probs[np.arange(len(IDS) - 1), IDS[1:]]


def test_token_surprise_is_minus_log_softmax_of_the_next_token(trace, reference):
    assert trace.token_surprise.shape == (len(IDS) - 1,) and trace.token_surprise.dtype == np.float32
    np.testing.assert_allclose(trace.token_surprise, _reference_surprise(reference), rtol=1e-4, atol=1e-4)


def test_token_surprise_is_the_same_when_computed_in_small_blocks(tiny_model, reference, monkeypatch):
    import explorer.capture

    monkeypatch.setattr(explorer.capture, "SURPRISE_CHUNK", 3)  # 13 targets: blocks of 3, 3, 3, 3 and 1
    np.testing.assert_allclose(capture(tiny_model, IDS).token_surprise, _reference_surprise(reference),
                               rtol=1e-4, atol=1e-4)


def test_the_surprise_stops_between_blocks_when_asked_and_goes_on_where_it_stopped(tiny_model, reference,
                                                                                  monkeypatch):
    import explorer.capture

    monkeypatch.setattr(explorer.capture, "SURPRISE_CHUNK", 3)
    trace = capture(tiny_model, IDS)
    made, project = [], trace.surprise_of
    trace.surprise_of = lambda start, stop: made.append((start, stop)) or project(start, stop)
    answers = iter([True, True, False])  # two blocks, then a visitor asks for something
    assert trace.project_surprise(keep_going=lambda: next(answers)) is False
    assert made == [(0, 3), (3, 6)] and "token_surprise" not in vars(trace)
    np.testing.assert_allclose(trace.token_surprise, _reference_surprise(reference), rtol=1e-4, atol=1e-4)
    assert made == [(0, 3), (3, 6), (6, 9), (9, 12), (12, 13)]  # on from the third block, none made twice
    assert trace.project_surprise(keep_going=lambda: False) is True  # done: nothing left to stop


def test_a_one_token_prompt_has_no_surprise_to_report(tiny_model):
    assert capture(tiny_model, IDS[:1]).token_surprise.shape == (0,)


def test_tokens_are_shown_readably(tiny_model):
    enc = gpt2.get_tokenizer()
    trace = capture(tiny_model, enc.encode(" moves\n日"))
    assert trace.tokens[0] == "␣moves"
    assert "↵" in trace.tokens
    assert any("⟨" in token for token in trace.tokens)  # 日 is split into partial UTF-8 bytes
    assert b"".join(trace.token_bytes).decode() == " moves\n日"


def test_capture_refuses_bad_prompts_clearly(tiny_model):
    with pytest.raises(ValueError, match="empty"):
        capture(tiny_model, [])
    with pytest.raises(ValueError, match="at most"):
        capture(tiny_model, [1] * (TINY_HPARAMS["n_ctx"] + 1))


def test_a_generation_in_another_thread_is_not_recorded(tiny_model):
    import threading

    other = threading.Thread(target=lambda: list(gpt2.generate(tiny_model, IDS[:3], 30, temperature=0)))
    other.start()
    traces = [capture(tiny_model, IDS) for _ in range(5)]
    other.join()
    for t in traces:
        assert t.attention.shape[-1] == len(IDS) and t.residual.shape[1] == len(IDS)


MEMORY_SCRIPT = """
import numpy as np, torch, gpt2
from explorer.capture import capture
torch.set_num_threads(2)
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
model = gpt2.GPT2(gpt2.GPTConfig()).eval()
ids = np.random.default_rng(0).integers(0, 50257, 1024).tolist()
before = status("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak to the current size
trace = capture(model, ids)
print(status("VmHWM:") - before, trace.nbytes())
"""


def test_a_1024_token_trace_of_124m_fits_the_memory_budget():
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True, timeout=300, check=True)
    peak_extra, trace_bytes = map(int, out.stdout.split())
    assert trace_bytes < 0.8e9
    assert peak_extra < 1.5e9


def test_the_trace_rows_come_from_the_hook_points_its_table_names(tiny_model):
    """Each row of each array is the tensor of the hook point trace_hooks names for it, by name, not by firing order."""
    from explorer.capture import capture, capture_hooks, trace_hooks

    ids = [464, 3290, 318, 257, 1049]
    trace = capture(tiny_model, ids)
    table = trace_hooks(tiny_model.config.n_layer)
    assert table["residual"][1][0] == "h.0.hook_resid_pre" and len(table["residual"][1]) == tiny_model.config.n_layer + 1
    names = [name for key in ("residual", "resid_mid") for name in table[key][1]]
    direct = capture_hooks(tiny_model, ids, names)
    for key in ("residual", "resid_mid"):
        for row, name in enumerate(table[key][1]):
            np.testing.assert_allclose(getattr(trace, key)[row], direct[name], atol=1e-6)
