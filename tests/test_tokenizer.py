import pytest
import tiktoken
from tiktoken_ext.openai_public import r50k_pat_str

from gpt2 import EOT_ID, get_tokenizer
from gpt2.tokenizer import BPE_FILE, read_bpe_ranks


def test_known_ids():
    enc = get_tokenizer()
    assert enc.encode("Every effort moves you") == [6109, 3626, 6100, 345]
    assert enc.encode("Hello, world!") == [15496, 11, 995, 0]


def test_vocabulary_size_and_eot():
    enc = get_tokenizer()
    assert enc.n_vocab == 50257
    assert enc.eot_token == EOT_ID == 50256


@pytest.mark.parametrize(
    "text",
    ["héllo wörld", "日本語のテキスト", "emoji 🤖🧠 and ZWJ 👩‍👩‍👧", "tabs\tand\nnewlines\r\n  spaces   ",
     "\u0000control\u200b", "Ünïcödé — “quotes”", "ﬁ ligature and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢", ""],
)
def test_unicode_round_trips(text):
    enc = get_tokenizer()
    assert enc.decode(enc.encode(text)) == text


def test_endoftext_in_text_becomes_the_special_token():
    enc = get_tokenizer()
    ids = enc.encode("one<|endoftext|>two")
    assert EOT_ID in ids
    assert enc.decode(ids) == "one<|endoftext|>two"


def test_encode_ordinary_treats_endoftext_as_plain_text():
    enc = get_tokenizer()
    ids = enc.encode_ordinary("<|endoftext|>")
    assert EOT_ID not in ids and len(ids) > 1


def test_matches_tiktoken_pattern_on_mixed_text():
    # The same merge table with tiktoken's own r50k pattern must give the same ids.
    enc = get_tokenizer()
    reference = tiktoken.Encoding("r50k-check", pat_str=r50k_pat_str, mergeable_ranks=read_bpe_ranks(),
                                  special_tokens={"<|endoftext|>": 50256})
    text = "I'll say it's 1234 times   better:\n\n  def f(x):\treturn x**2  # ok?! don't ’quote’ ünï"
    assert enc.encode(text) == reference.encode(text)


def test_damaged_table_is_refused(tmp_path):
    damaged = tmp_path / "gpt2.tiktoken"
    damaged.write_bytes(BPE_FILE.read_bytes()[:-10])
    with pytest.raises(ValueError, match="sha256"):
        read_bpe_ranks(damaged)


def test_folder_without_its_own_tokenizer_gets_gpt2s(tmp_path):
    assert get_tokenizer(tmp_path) is get_tokenizer() is get_tokenizer(None)


def test_folder_with_a_ranks_file_gets_its_own_tokenizer(tmp_path):
    from gpt2.bpe import write_ranks

    ranks = {bytes([b]): b for b in range(256)} | {b"ab": 256, b"abc": 257}
    write_ranks(ranks, tmp_path / "tokenizer.tiktoken")
    enc = get_tokenizer(tmp_path)
    assert enc.n_vocab == 259 and enc.eot_token == 258
    assert enc.encode("abcab<|endoftext|>") == [257, 256, 258]


def test_a_retrained_ranks_file_is_read_again(tmp_path):
    from gpt2.bpe import write_ranks

    write_ranks({bytes([b]): b for b in range(256)} | {b"ab": 256}, tmp_path / "tokenizer.tiktoken")
    assert get_tokenizer(tmp_path).encode("ab") == [256]
    write_ranks({bytes([b]): b for b in range(256)} | {b"ba": 256}, tmp_path / "tokenizer.tiktoken")
    assert get_tokenizer(tmp_path).encode("ab") == [97, 98]


def test_a_ranks_file_with_gaps_is_refused(tmp_path):
    (tmp_path / "tokenizer.tiktoken").write_text("YQ== 0\nYg== 5\n")
    with pytest.raises(ValueError, match="ranks must be 0..n-1"):
        get_tokenizer(tmp_path)
