import copy

import numpy as np
import pytest
import torch
from transformers import GPT2Config as HFConfig
from transformers import GPT2LMHeadModel

import gpt2
from conftest import TINY_HPARAMS

IDS = [6109, 3626, 6100, 345, 15496, 11, 995, 0, 464, 2068, 7586, 21831]


@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


@pytest.fixture(scope="module")
def hf_model(tiny_weights):
    """Hugging Face's GPT-2, an independent implementation, given the same OpenAI arrays."""
    config = HFConfig(vocab_size=TINY_HPARAMS["n_vocab"], n_positions=TINY_HPARAMS["n_ctx"],
                      n_embd=TINY_HPARAMS["n_embd"], n_layer=TINY_HPARAMS["n_layer"], n_head=TINY_HPARAMS["n_head"],
                      activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                      layer_norm_epsilon=1e-5, attn_implementation="eager")
    model = GPT2LMHeadModel(config).eval()
    leaf = {"w": "weight", "g": "weight", "b": "bias"}
    state = {}
    for name, array in tiny_weights.items():
        scopes = name.split("/")[1:]  # drop "model"
        scopes = [f"h.{s[1:]}" if s[0] == "h" and s[1:].isdigit() else s for s in scopes]
        scopes[-1:] = [leaf[scopes[-1]]] if scopes[-1] in leaf else [scopes[-1], "weight"]
        # HF's Conv1D keeps OpenAI's [in, out] layout: only the leading 1 goes.
        state["transformer." + ".".join(scopes)] = torch.from_numpy(array[0] if array.ndim == 3 else array)
    state["lm_head.weight"] = state["transformer.wte.weight"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(".attn.bias" in k or "masked_bias" in k for k in missing), (missing, unexpected)
    return model


def test_logits_shape(tiny_model):
    with torch.no_grad():
        logits = tiny_model(torch.tensor([IDS, IDS[::-1]]))
    assert logits.shape == (2, len(IDS), TINY_HPARAMS["n_vocab"])


def test_logits_match_hugging_face(tiny_model, hf_model):
    ids = torch.tensor([IDS])
    with torch.no_grad():
        ours = tiny_model(ids)
        theirs = hf_model(ids).logits
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_greedy_continuation_matches_hugging_face(tiny_model, hf_model):
    ours = list(gpt2.generate(tiny_model, IDS[:4], max_new_tokens=20, temperature=0.0, stop_at_eos=False))
    with torch.no_grad():
        theirs = hf_model.generate(torch.tensor([IDS[:4]]), max_new_tokens=20, do_sample=False,
                                   pad_token_id=0, eos_token_id=None)[0, 4:].tolist()
    assert ours == theirs


def test_kv_cache_decoding_equals_full_recomputation(tiny_model):
    full = tiny_model(torch.tensor([IDS]))
    cache = tiny_model.new_kv_cache()
    steps = [tiny_model(torch.tensor([IDS[:5]]), kv_cache=cache)]  # prefill, then one token at a time
    steps += [tiny_model(torch.tensor([[token]]), kv_cache=cache) for token in IDS[5:]]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == len(IDS)


def test_kv_cache_accepts_multi_token_chunks(tiny_model):
    full = tiny_model(torch.tensor([IDS]))
    cache = tiny_model.new_kv_cache()
    first = tiny_model(torch.tensor([IDS[:4]]), kv_cache=cache)
    rest = tiny_model(torch.tensor([IDS[4:]]), kv_cache=cache)  # 8 queries against 12 keys: needs the offset mask
    torch.testing.assert_close(torch.cat([first, rest], dim=1), full, atol=1e-5, rtol=1e-5)


def test_fused_and_explicit_attention_agree(tiny_model):
    ids = torch.tensor([IDS])
    fused = tiny_model(ids)
    patterns = []
    handles = [block.attn.hook_pattern.register_forward_hook(lambda m, i, o: patterns.append(o))
               for block in tiny_model.h]
    try:
        explicit = tiny_model(ids)
    finally:
        for handle in handles:
            handle.remove()
    assert len(patterns) == TINY_HPARAMS["n_layer"]  # the explicit path really ran
    torch.testing.assert_close(explicit, fused, atol=1e-5, rtol=1e-5)


def _run_with_patterns(model, ids, kv_cache=None, replace=None):
    """Logits and every layer's pattern, with hook_pattern watched (the explicit path)."""
    patterns = []

    def hook(module, inputs, output):
        patterns.append(output.clone())
        return replace(output) if replace else None

    handles = [block.attn.hook_pattern.register_forward_hook(hook) for block in model.h]
    try:
        return model(ids, kv_cache), patterns
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize("block", [3, 5])
def test_blocked_attention_equals_the_full_pattern(tiny_model, monkeypatch, block):
    # Blocks of queries skip the masked triangle; with tiny blocks a 12-token prompt takes that path.
    ids = torch.tensor([IDS])
    full_logits, full_patterns = _run_with_patterns(tiny_model, ids)
    monkeypatch.setattr(gpt2.model, "ATTENTION_BLOCK", block)
    logits, patterns = _run_with_patterns(tiny_model, ids)
    torch.testing.assert_close(logits, full_logits, atol=1e-5, rtol=1e-5)
    for got, expected in zip(patterns, full_patterns):
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
        assert torch.all(torch.triu(got[0], diagonal=1) == 0)
    # The same with a cache holding earlier keys: queries are the last positions, T_q < T_k.
    cache = tiny_model.new_kv_cache()
    tiny_model(ids[:, :2], cache)
    logits, patterns = _run_with_patterns(tiny_model, ids[:, 2:], cache)
    torch.testing.assert_close(logits, full_logits[:, 2:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(patterns[0], full_patterns[0][:, :, 2:], atol=1e-6, rtol=1e-6)


def test_blocked_attention_handles_a_batch_and_bfloat16(tiny_model, monkeypatch):
    # Each sequence of a batch is blocked on its own; a bfloat16 model gets a float32 pattern either way.
    ids = torch.tensor([IDS, IDS[::-1]])
    for model in (tiny_model, copy.deepcopy(tiny_model).to(torch.bfloat16)):
        monkeypatch.setattr(gpt2.model, "ATTENTION_BLOCK", 1024)  # T_q < 2 * block: the unblocked path
        full_logits, full_patterns = _run_with_patterns(model, ids)
        monkeypatch.setattr(gpt2.model, "ATTENTION_BLOCK", 4)
        logits, patterns = _run_with_patterns(model, ids)
        tolerance = 1e-5 if model is tiny_model else 2e-2
        torch.testing.assert_close(logits, full_logits, atol=tolerance, rtol=tolerance)
        for got, expected in zip(patterns, full_patterns):
            assert got.dtype == torch.float32 and got.shape[0] == 2
            torch.testing.assert_close(got, expected, atol=tolerance / 10, rtol=tolerance)


def test_a_replaced_pattern_drives_the_blocked_attention_output(tiny_model, monkeypatch):
    ids = torch.tensor([IDS])
    uniform = lambda p: torch.tril(torch.ones_like(p)) / torch.arange(1, p.shape[-1] + 1).unsqueeze(-1)  # noqa: E731
    expected, _ = _run_with_patterns(tiny_model, ids, replace=uniform)
    monkeypatch.setattr(gpt2.model, "ATTENTION_BLOCK", 4)
    got, _ = _run_with_patterns(tiny_model, ids, replace=uniform)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, tiny_model(ids), atol=1e-3)  # the replacement really changed the output


def test_attention_pattern_is_causal_and_normalised(tiny_model):
    seen = {}
    handle = tiny_model.h[1].attn.hook_pattern.register_forward_hook(lambda m, i, o: seen.setdefault("p", o))
    try:
        tiny_model(torch.tensor([IDS]))
    finally:
        handle.remove()
    pattern = seen["p"][0]  # (head, query, key)
    assert pattern.shape == (TINY_HPARAMS["n_head"], len(IDS), len(IDS))
    torch.testing.assert_close(pattern.sum(-1), torch.ones(pattern.shape[:2]))
    assert torch.all(torch.triu(pattern, diagonal=1) == 0)


def test_every_named_hook_point_exists_and_fires(tiny_model):
    expected = {"hook_tok_embed", "hook_pos_embed", "hook_final", "hook_logits"}
    for layer in range(TINY_HPARAMS["n_layer"]):
        expected |= {f"h.{layer}.{name}" for name in
                     ("hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post",
                      "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_scores", "attn.hook_pattern",
                      "attn.hook_z", "mlp.hook_pre", "mlp.hook_post")}
    points = tiny_model.hook_points()
    assert set(points) == expected
    fired = set()
    handles = [p.register_forward_hook(lambda m, i, o, n=name: fired.add(n)) for name, p in points.items()]
    try:
        tiny_model(torch.tensor([IDS]))
    finally:
        for handle in handles:
            handle.remove()
    assert fired == expected


def test_hook_can_replace_a_tensor(tiny_model):
    # Zeroing the last block's MLP output must equal the logits of resid_mid through ln_f and the head.
    store = {}
    block = tiny_model.h[-1]
    handles = [block.hook_mlp_out.register_forward_hook(lambda m, i, o: torch.zeros_like(o)),
               block.hook_resid_mid.register_forward_hook(lambda m, i, o: store.setdefault("mid", o))]
    try:
        logits = tiny_model(torch.tensor([IDS]))
    finally:
        for handle in handles:
            handle.remove()
    expected = tiny_model.ln_f(store["mid"]) @ tiny_model.wte.weight.T
    torch.testing.assert_close(logits, expected)


def test_last_only_returns_the_last_position(tiny_model):
    ids = torch.tensor([IDS])
    torch.testing.assert_close(tiny_model(ids, last_only=True), tiny_model(ids)[:, -1:])


def test_too_long_input_is_refused(tiny_model):
    with pytest.raises(ValueError, match="longer than the context"):
        tiny_model(torch.zeros(1, TINY_HPARAMS["n_ctx"] + 1, dtype=torch.long))


def test_bfloat16_model_runs_and_stays_close(tiny_model):
    half = copy.deepcopy(tiny_model).to(torch.bfloat16)
    ids = torch.tensor([IDS])
    with torch.no_grad():
        full, low = tiny_model(ids), half(ids)
    assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()
    # bfloat16 keeps ~3 significant digits: the distributions should still agree closely.
    p, q = torch.softmax(full, -1), torch.softmax(low.float(), -1)
    assert (p - q).abs().sum(-1).max() < 0.2
    tokens = list(gpt2.generate(half, IDS[:4], max_new_tokens=5, temperature=0.0))
    assert len(tokens) == 5


def test_dropout_config_trains_stochastically():
    model = gpt2.GPT2(gpt2.GPTConfig(n_vocab=50, n_ctx=8, n_embd=16, n_head=2, n_layer=1, dropout=0.5)).train()
    ids = torch.tensor([[1, 2, 3]])
    assert not torch.equal(model(ids), model(ids))
    model.eval()
    assert torch.equal(model(ids), model(ids))


def test_no_qkv_bias_variation():
    model = gpt2.GPT2(gpt2.GPTConfig(n_vocab=50, n_ctx=8, n_embd=16, n_head=2, n_layer=1, qkv_bias=False))
    assert model.h[0].attn.c_attn.bias is None
    assert model(torch.tensor([[1, 2]])).shape == (1, 2, 50)


def test_float64_reference_agrees_on_attention(tiny_model, tiny_weights):
    from openai_layout import reference_forward

    patterns = []
    handles = [b.attn.hook_pattern.register_forward_hook(lambda m, i, o: patterns.append(o[0])) for b in tiny_model.h]
    try:
        tiny_model(torch.tensor([IDS]))
    finally:
        for handle in handles:
            handle.remove()
    expected = reference_forward(tiny_weights, TINY_HPARAMS, IDS)["attention"]
    np.testing.assert_allclose(torch.stack(patterns).double().numpy(), expected, atol=1e-5)


def test_global_module_hooks_still_see_hook_points(tiny_model):
    # Hook points skip nn.Module's call machinery only when no hook at all could fire.
    from torch.nn.modules.module import register_module_forward_hook

    seen = []
    handle = register_module_forward_hook(lambda m, i, o: seen.append(type(m).__name__))
    try:
        tiny_model(torch.tensor([IDS[:3]]))
    finally:
        handle.remove()
    # Every hook point fires, except scores and pattern: unwatched, attention takes the fused path.
    fused_only = [n for n in tiny_model.hook_points() if not n.endswith(("hook_scores", "hook_pattern"))]
    assert seen.count("HookPoint") == len(fused_only)
