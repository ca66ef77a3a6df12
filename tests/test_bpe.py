"""The trained BPE, written as tiktoken ranks, encodes exactly as the trainer's own tokenizer."""

import pytest

from gpt2 import get_tokenizer
from gpt2.bpe import _spelled_bytes, encoding_from_ranks, ranks_from_trained, train_hf_bpe, write_ranks
from gpt2.corpus import pydoc_topics, stdlib_documents

N_VOCAB = 1000


@pytest.fixture(scope="module")
def documents():
    return list(pydoc_topics())


@pytest.fixture(scope="module")
def trained(documents):
    """HF's tokenizer trained on the first half of the pydoc topics, and its tiktoken conversion."""
    hf = train_hf_bpe(documents[: len(documents) // 2], N_VOCAB)
    return hf, encoding_from_ranks(ranks_from_trained(hf, N_VOCAB))


def test_vocabulary_is_the_chosen_size_with_endoftext_last(trained):
    _, enc = trained
    assert enc.n_vocab == N_VOCAB
    assert enc.eot_token == N_VOCAB - 1
    assert enc.encode("<|endoftext|>") == [N_VOCAB - 1]


def test_single_bytes_are_the_first_256_ranks(trained):
    _, enc = trained
    assert [enc.decode_single_token_bytes(i) for i in range(256)] == [bytes([b]) for b in range(256)]


def test_tiktoken_encoding_matches_the_trainer_on_a_large_unseen_sample(trained, documents):
    hf, enc = trained
    held_out = documents[len(documents) // 2:]  # text the merges were not learned on
    sources = [doc for _, doc in zip(range(150), stdlib_documents())][-100:]  # and Python source files
    sample = held_out + sources
    assert sum(len(text) for text in sample) > 500_000
    for text in sample:
        hf_tokens = [_spelled_bytes(token) for token in hf.encode(text).tokens]
        tiktoken_tokens = [enc.decode_single_token_bytes(i) for i in enc.encode_ordinary(text)]
        assert tiktoken_tokens == hf_tokens


@pytest.mark.parametrize("text", [
    "def f(x):\n    return x ** 2  # ok", "héllo wörld — “quotes”", "日本語 🤖🧠 👩‍👩‍👧",
    "tabs\tand\r\n  spaces   ", "\u0000\u200b", "",
])
def test_decode_of_encode_is_the_text(trained, text):
    _, enc = trained
    assert enc.decode(enc.encode(text)) == text


def test_written_ranks_load_as_the_same_tokenizer(trained, documents, tmp_path):
    hf, enc = trained
    write_ranks(ranks_from_trained(hf, N_VOCAB), tmp_path / "tokenizer.tiktoken")
    loaded = get_tokenizer(tmp_path)
    text = documents[-1]
    assert loaded.n_vocab == N_VOCAB and loaded.encode(text) == enc.encode(text)


def test_too_small_a_text_is_refused_naming_the_vocabulary():
    with pytest.raises(ValueError, match="too small for a vocabulary of 4096"):
        train_hf_bpe_then_rank(["just a few words, a few words"], 4096)


def train_hf_bpe_then_rank(texts, n_vocab):
    return ranks_from_trained(train_hf_bpe(texts, n_vocab), n_vocab)


def test_vocabulary_size_out_of_range_is_refused():
    with pytest.raises(ValueError, match="n_vocab must be between 258"):
        train_hf_bpe(["text"], 100)
