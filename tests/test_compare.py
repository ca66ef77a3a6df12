"""Two models side by side: each one's own numbers, and surprise compared only where it lines up."""

import math

import numpy as np
import pytest
import tiktoken
import torch

import gpt2
from explorer import compare
from explorer.capture import capture
from explorer.heads import head_scores, induction_scores
from explorer.store import LoadedModel, ModelStore

PROMPT = "Every effort moves you forward, every effort"


def loaded_random(config, seed, name):
    torch.manual_seed(seed)
    model = gpt2.GPT2(config).eval()
    return LoadedModel(name, model, induction_scores(model), 0.0)


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint_dir):
    store = ModelStore(tiny_checkpoint_dir)
    return store.get(store.default)


@pytest.fixture(scope="module")
def other(tiny):
    return loaded_random(tiny.model.config, 7, "other")


def byte_tokenizer():
    """A byte-level tokenizer with no merges: every byte is one of 256 tokens."""
    return tiktoken.Encoding(name="bytes", pat_str=r"[\s\S]", mergeable_ranks={bytes([i]): i for i in range(256)},
                             special_tokens={})


@pytest.fixture(scope="module")
def byte_model():
    config = gpt2.GPTConfig(n_vocab=256, n_ctx=128, n_embd=32, n_head=4, n_layer=3)
    return loaded_random(config, 3, "bytes")


def test_each_side_holds_its_own_models_numbers(tiny, other):
    result = compare.compare(tiny, other, PROMPT)
    ids = gpt2.get_tokenizer().encode(PROMPT)
    for side, loaded in ((result.a, tiny), (result.b, other)):
        trace = capture(loaded.model, ids)
        np.testing.assert_allclose(side.token_surprise, trace.token_surprise, atol=1e-6)
        assert side.top_probs[0] == pytest.approx(trace.next_token_probs.max())
        assert side.head_labels == head_scores(trace, loaded.induction).labels()
    assert result.a.token_surprise.tolist() != result.b.token_surprise.tolist()


def test_same_tokenizer_compares_surprise_token_by_token(tiny, other):
    result = compare.compare(tiny, other, PROMPT)
    assert result.same_tokens and "token by token" in result.note
    assert len(result.a.token_surprise) == len(result.b.token_surprise) == len(result.a.tokens) - 1


def test_different_tokenizers_compare_bits_per_byte_and_say_why(tiny, byte_model):
    result = compare.compare(tiny, byte_model, PROMPT, tokenizer_b=byte_tokenizer())
    assert not result.same_tokens
    assert "split the text differently" in result.note and "bits per byte" in result.note
    assert len(result.b.tokens) == len(PROMPT.encode())  # one token per byte
    assert result.b.predicted_bytes == len(PROMPT.encode()) - 1
    expected = result.b.token_surprise.sum() / math.log(2) / result.b.predicted_bytes
    assert result.b.bits_per_byte == pytest.approx(expected)
    assert result.a.predicted_bytes == len(PROMPT.encode()) - len(b"Every")


def test_a_prompt_longer_than_one_models_context_is_cut_for_that_model_and_said(tiny, byte_model):
    prompt = "ab " * 60  # 180 bytes: more than the byte model's 128 positions
    result = compare.compare(tiny, byte_model, prompt, tokenizer_b=byte_tokenizer())
    assert len(result.b.tokens) == 128 and "only the last 128" in result.b.notice
    assert result.a.notice == ""


def test_an_empty_prompt_is_refused(tiny, other):
    with pytest.raises(ValueError, match="empty"):
        compare.compare(tiny, other, "  ")


def test_a_one_token_prompt_says_why_there_is_nothing_to_compare_not_nan(tiny, other, byte_model):
    for b, tokenizer_b in ((other, None), (byte_model, byte_tokenizer())):
        result = compare.compare(tiny, b, " the", tokenizer_b=tokenizer_b)
        assert "nan" not in result.note and "single token" in result.note and "second token" in result.note


def test_compare_offers_what_loads_now_and_the_shipped_models_snapshots(monkeypatch, tmp_path):
    from explorer.store import INDUCTION_LABEL, SHIPPED, SNAPSHOT_MARK, ModelStore
    from explorer.tabs.compare import default_pair

    store = ModelStore(None, cache_dir=tmp_path / "empty-cache", sizes=["124M"])  # 124M: not on disk
    shipped = next(iter(SHIPPED))
    run = store.training_run(shipped)
    choices = store.compare_choices()
    assert "124M" not in choices
    assert choices == [shipped] + [f"{shipped}{SNAPSHOT_MARK}{s.step:,}" for s in run.snapshots[:-1]]
    a, b = default_pair(store)
    assert a == shipped and b.startswith(shipped + SNAPSHOT_MARK)
    before = store.compare_model(b)
    index = [f"{s.step:,}" for s in run.snapshots].index(b.rsplit(" ", 1)[-1])
    after = store.snapshot(shipped, index + 1)
    assert before.name == b and before.induction.max() < INDUCTION_LABEL <= after.induction.max()
    with pytest.raises(ValueError, match="unknown snapshot"):
        store.compare_model(f"{shipped}{SNAPSHOT_MARK}7")


def test_the_shipped_folder_given_as_model_dir_is_offered_once_and_compared_with_its_own_snapshot(tmp_path):
    """`app.py --model-dir assets/models/tiny` serves the shipped model under its folder's name; listing it a
    second time under the shipped name made Compare's default pair one model against itself."""
    import gpt2
    from explorer.store import SHIPPED, SNAPSHOT_MARK, ModelStore
    from explorer.tabs.compare import default_pair

    shipped = next(iter(SHIPPED))
    store = ModelStore(gpt2.SHIPPED_MODELS[SHIPPED[shipped]], cache_dir=tmp_path / "empty-cache", sizes=[])
    assert store.choices == [store.local_name]
    a, b = default_pair(store)
    assert a == store.local_name and b == store.before_heads_formed(a) and SNAPSHOT_MARK in b
    elsewhere = ModelStore(tmp_path, cache_dir=tmp_path / "empty-cache", sizes=[])  # another folder: both stay
    assert elsewhere.choices == [elsewhere.local_name, shipped]
