import ast
import copy
import math

import numpy as np
import pytest
import torch
from transformers import GPT2Config as HFConfig
from transformers import GPT2LMHeadModel

import gpt2
from gpt2.model import gelu
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


def test_a_block_given_a_cache_without_its_layer_fails_instead_of_sharing_slot_0(tiny_model):
    cache = tiny_model.new_kv_cache()
    x = torch.zeros(1, 2, tiny_model.config.n_embd)
    with pytest.raises(ValueError, match="needs the block's layer"):
        tiny_model.h[1](x, cache)
    with pytest.raises(ValueError, match="needs the block's layer"):
        tiny_model.h[1].attn(x, cache, layer=tiny_model.config.n_layer)


def test_the_cache_counts_its_positions_once_every_layer_has_them(tiny_model):
    cache = tiny_model.new_kv_cache()
    x = torch.randn(1, 3, tiny_model.config.n_embd)
    with torch.no_grad():
        for layer, block in enumerate(tiny_model.h):
            assert cache.length == 0  # the earlier layers' keys are in, the positions are not filled yet
            x = block(x, cache, layer)
    assert cache.length == 3


def test_kv_cache_accepts_multi_token_chunks(tiny_model):
    full = tiny_model(torch.tensor([IDS]))
    cache = tiny_model.new_kv_cache()
    first = tiny_model(torch.tensor([IDS[:4]]), kv_cache=cache)
    rest = tiny_model(torch.tensor([IDS[4:]]), kv_cache=cache)  # 8 queries against 12 keys: needs the offset mask
    torch.testing.assert_close(torch.cat([first, rest], dim=1), full, atol=1e-5, rtol=1e-5)


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


def test_float64_reference_agrees_on_logits(tiny_model, tiny_weights):
    from openai_layout import reference_forward

    expected = reference_forward(tiny_weights, TINY_HPARAMS, IDS)["logits"]
    np.testing.assert_allclose(tiny_model(torch.tensor([IDS]))[0].double().numpy(), expected, atol=1e-4)


def test_logits_are_the_final_hidden_state_times_the_tied_embedding(tiny_model):
    seen = {}
    handle = tiny_model.hook_final.register_forward_hook(lambda m, i, o: seen.setdefault("final", o))
    try:
        logits = tiny_model(torch.tensor([IDS]))
    finally:
        handle.remove()
    torch.testing.assert_close(tiny_model.unembed(seen["final"]), logits, rtol=0, atol=0)
    torch.testing.assert_close(logits, seen["final"] @ tiny_model.wte.weight.T)
    vocab_sized = [name for name, p in tiny_model.named_parameters() if p.shape == tiny_model.wte.weight.shape]
    assert vocab_sized == ["wte.weight"]  # the head has no matrix of its own


def test_hook_points_return_their_input_unchanged():
    x = torch.randn(2, 3)
    assert gpt2.HookPoint()(x) is x


def test_gelu_is_the_tanh_formula():
    x = torch.linspace(-12, 12, 2001, dtype=torch.float64)
    expected = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    torch.testing.assert_close(gelu(x), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(gelu(x), torch.nn.functional.gelu(x, approximate="tanh"), rtol=0, atol=1e-12)


def test_initialisation_is_gpt2s():
    # Moderately sized, so each standard deviation is estimated from >= 100k numbers.
    config = gpt2.GPTConfig(n_vocab=4000, n_ctx=512, n_embd=256, n_head=4, n_layer=8)
    torch.manual_seed(0)
    model = gpt2.GPT2(config)
    residual_std = 0.02 / math.sqrt(2 * config.n_layer)
    expected = {"wte.weight": 0.02, "wpe.weight": 0.01}
    for layer in range(config.n_layer):
        expected |= {f"h.{layer}.attn.c_attn.weight": 0.02, f"h.{layer}.mlp.c_fc.weight": 0.02,
                     f"h.{layer}.attn.c_proj.weight": residual_std, f"h.{layer}.mlp.c_proj.weight": residual_std}
    params = dict(model.named_parameters())
    for name, std in expected.items():
        assert params[name].mean().abs() < 0.05 * std, name
        assert params[name].std().item() == pytest.approx(std, rel=0.02), name
    for name, p in params.items():
        if name.endswith(".bias"):
            assert torch.all(p == 0), name
        elif ".ln_" in name or name.startswith("ln_f"):
            assert torch.all(p == (1.0 if name.endswith(".weight") else 0.0)), name
        else:
            assert name in expected, f"{name} has no expected initialisation"


def test_model_py_is_plain_pytorch():
    # The file a learner reads: no speed-ups imported, no private torch API.
    source = open(gpt2.model.__file__).read()
    tree = ast.parse(source)
    imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not any("fast" in name for name in imported), imported
    private = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
               and node.attr.startswith("_") and not node.attr.startswith("__")}
    assert private <= {"_init_weights"}, private
    assert "torch.ops" not in source and "__call__" not in source
