"""Every broken file of a model folder gets a message that names the file and the problem, and a form of it
(`CheckpointError.public`) with no path in it, for visitors of a public app."""

import json
import pickle

import pytest
import torch

import gpt2
from gpt2.bpe import write_ranks
from gpt2.checkpoint import CheckpointError
from gpt2.errors import MissingFile
from explorer.store import ModelStore

CONFIG = gpt2.GPTConfig(n_vocab=257, n_ctx=16, n_embd=16, n_head=2, n_layer=1)
LOG = {"step": 3, "tokens_seen": 48, "evals": [], "snapshots": [], "settings": {}}


@pytest.fixture
def folder(tmp_path):
    """A healthy folder as `python -m gpt2 train` writes it: weights, hparams, its own 257-token BPE, a log."""
    ranks = tmp_path / "ranks.tiktoken"
    write_ranks({bytes([byte]): byte for byte in range(256)}, ranks)
    torch.manual_seed(0)
    return gpt2.save_checkpoint(tmp_path / "model", gpt2.GPT2(CONFIG), ranks, training_log=LOG, step=3)


def open_as_the_app_does(folder):
    """What a visitor's pick of a `--model-dir` model runs: weights, tokenizer and training log."""
    store = ModelStore(folder, sizes=[], device="cpu")
    return store.get(store.local_name)


def _weights_header(text: bytes) -> bytes:
    return len(text).to_bytes(8, "little") + text


def _hparams(folder, **changes):
    path = folder / "hparams.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _log(folder, **changes):
    (folder / "training_log.json").write_text(json.dumps({**LOG, **changes}))


# name of the case: (how it breaks the folder, the words the message must hold: one string or several)
BROKEN = {
    "weights of 4 bytes": (lambda f: (f / "model.safetensors").write_bytes(b"\x02\0\0\0"),
                           "model.safetensors is truncated: it holds 4 bytes"),
    "weights header not JSON": (lambda f: (f / "model.safetensors").write_bytes(_weights_header(b"{garbage")),
                                "model.safetensors is not a safetensors file: its header is not JSON"),
    "weights of random bytes": (lambda f: (f / "model.safetensors").write_bytes(bytes(range(256)) * 4),
                                "model.safetensors is not a safetensors file"),
    "weights cut short": (lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:-99]),
                          ("model.safetensors is truncated: ", "bytes into the data, but the file holds")),
    "hparams not JSON": (lambda f: (f / "hparams.json").write_text("n_ctx = 16"), "hparams.json is not valid JSON"),
    "hparams a list": (lambda f: (f / "hparams.json").write_text("[1, 2]"),
                       "hparams.json must hold a JSON object"),
    "hparams with a word for a number": (lambda f: _hparams(f, n_embd="wide"),
                                         "hparams.json: GPTConfig.n_embd must be a positive integer"),
    "hparams with n_ctx 10**12": (lambda f: _hparams(f, n_ctx=10**12),
                                  "hparams.json does not fit model.safetensors: model.safetensors holds wpe.weight "
                                  "as 16 × 16, but hparams.json makes it 1000000000000 × 16 (n_ctx × n_embd)"),
    "hparams with n_layer 10**9": (lambda f: _hparams(f, n_layer=10**9),
                                   "model.safetensors holds 1 blocks, but hparams.json says n_layer = 1000000000"),
    "tokenizer of garbage": (lambda f: (f / "tokenizer.tiktoken").write_bytes(b"\x00\xff not base64 at all\n"),
                             "tokenizer.tiktoken is not a BPE ranks file: line 1 is not"),
    "tokenizer with a rank missing": (lambda f: (f / "tokenizer.tiktoken").write_text("YQ== 0\nYg== 2\n"),
                                      "tokenizer.tiktoken is not a BPE ranks file: its ranks must be 0..n-1"),
    "tokenizer missing": (lambda f: (f / "tokenizer.tiktoken").unlink(), "tokenizer.tiktoken is missing"),
    "tokenizer of another model": (lambda f: write_ranks({bytes([b]): b for b in range(256)} | {b"ab": 256},
                                                         f / "tokenizer.tiktoken"),
                                   "tokenizer.tiktoken has 258 tokens, but the model's vocabulary (n_vocab) has 257"),
    "log not JSON": (lambda f: (f / "training_log.json").write_text("step 3"), "training_log.json is not valid JSON"),
    "log with snapshots not a list": (lambda f: _log(f, snapshots=7),
                                      "training_log.json: snapshots must be a list"),
    "log with a step that is text": (lambda f: _log(f, step="x"),
                                     "training_log.json: the run's step must be a whole number"),
}


def test_the_healthy_folder_opens(folder):
    loaded = open_as_the_app_does(folder)
    assert loaded.model.config == CONFIG and loaded.tokenizer.n_vocab == 257


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_file_is_named_with_its_problem_and_the_public_message_has_no_path(folder, case):
    breaks, words = BROKEN[case]
    breaks(folder)
    with pytest.raises(CheckpointError) as caught:
        open_as_the_app_does(folder)
    err = caught.value
    assert all(part in err.public for part in ((words,) if isinstance(words, str) else words)), err.public
    assert str(folder) not in err.public and str(folder.parent) not in err.public
    assert str(err) == f"{err.public} (in {folder})"  # the command line's form says which folder


def test_a_missing_tokenizer_is_a_missing_file_but_openai_and_hugging_face_folders_speak_gpt2s(
        folder, tiny_checkpoint_dir):
    (folder / "tokenizer.tiktoken").unlink()
    with pytest.raises(FileNotFoundError) as caught:
        gpt2.get_tokenizer(folder)
    assert isinstance(caught.value, MissingFile)
    assert gpt2.get_tokenizer(tiny_checkpoint_dir).n_vocab == 50257  # OpenAI's layout has no tokenizer of its own


def test_absurd_hparams_are_refused_before_anything_is_allocated(folder, monkeypatch):
    _hparams(folder, n_ctx=10**12)
    monkeypatch.setattr(torch.nn.Module, "to_empty", lambda *a, **k: pytest.fail("allocated a model"))
    with pytest.raises(CheckpointError, match="n_ctx"):
        gpt2.load_checkpoint(folder)


def test_generate_says_which_file_is_broken_and_exits_1(folder, capsys):
    from gpt2.__main__ import main

    (folder / "model.safetensors").write_bytes(b"\x02\0\0\0")
    assert main(["generate", "--model-dir", str(folder), "Hi"]) == 1
    err = capsys.readouterr().err
    assert "model.safetensors is truncated" in err and "Traceback" not in err


def test_export_refuses_absurd_hparams_with_a_message(folder, tmp_path, capsys):
    from explorer.__main__ import main

    _hparams(folder, n_ctx=10**12)
    assert main(["export", "Hi", "--out", str(tmp_path / "run.html"), "--model-dir", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "hparams.json does not fit model.safetensors" in err and "Traceback" not in err


def test_the_error_keeps_its_public_message_and_folder_through_pickling(folder):
    err = CheckpointError("model.safetensors is truncated", folder)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.public, copy.folder, str(copy)) == (err.public, err.folder, str(err))
