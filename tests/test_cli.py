"""The command lines: `python -m gpt2 generate | download`, `python -m explorer export` and the app's flags,
which name models the same way (gpt2/model_args.py)."""

import json
import subprocess
import sys
import time

import pytest

import gpt2
from gpt2.corpus import pydoc_topics


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "gpt2", *args], capture_output=True, text=True, timeout=120)


def run_explorer(*args):
    return subprocess.run([sys.executable, "-m", "explorer", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    """A folder `python -m gpt2 train` wrote: a throwaway model of 3 steps, with its own 300-token BPE."""
    folder = tmp_path_factory.mktemp("trained")
    text = folder / "text.txt"
    text.write_text("\n".join(list(pydoc_topics())[:5]), encoding="utf-8")
    result = run_cli("train", "--data", str(text), "--out", str(folder / "model"), "--n-layer", "1", "--n-head", "2",
                     "--n-embd", "32", "--n-ctx", "32", "--n-vocab", "300", "--max-steps", "3", "--batch-size", "2",
                     "--eval-every", "3", "--eval-windows", "2", "--warmup-steps", "1", "--threads", "2", "--quiet")
    assert result.returncode == 0, result.stderr
    return folder / "model"


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No cached weights and no server answering (conftest sets HF_HUB_OFFLINE); any wait before a retry fails."""
    from test_store import closed_port_url

    monkeypatch.setenv("GPT2_EXPLORER_DOWNLOAD_URL", closed_port_url())
    monkeypatch.setattr(time, "sleep", lambda seconds: pytest.fail(f"waited {seconds} s to retry a download"))
    return str(tmp_path / "empty-cache")


# ---- one set of model names for every command line

def command_lines():
    """Each command line's parser, as a function from the arguments that name a model to what it parsed."""
    from explorer.app import parse_args as app_args
    from explorer.__main__ import _parser as explorer_parser
    from gpt2.__main__ import _parser as gpt2_parser

    return {
        "gpt2 generate": lambda *a: gpt2_parser().parse_args(["generate", "Hi", *a]),
        "explorer export": lambda *a: explorer_parser().parse_args(["export", "Hi", "--out", "r.html", *a]),
        "app": lambda *a: app_args(list(a)),
    }


@pytest.mark.parametrize("name", gpt2.MODEL_NAMES)
def test_every_command_line_takes_every_model_name(name):
    assert gpt2.MODEL_NAMES == (*gpt2.SIZES, *gpt2.SHIPPED_MODELS)
    from gpt2.__main__ import _parser

    assert _parser().parse_args(["download", name]).size == name
    for parse in command_lines().values():
        assert parse("--size", name).size == name


def test_every_command_line_says_the_three_layouts_of_model_dir(capsys):
    for parse in command_lines().values():
        with pytest.raises(SystemExit):
            parse("--help")
        help_text = " ".join(capsys.readouterr().out.split())
        assert "OpenAI's layout" in help_text and "config.json + model.safetensors" in help_text
        assert "`python -m gpt2 train` wrote" in help_text


# ---- the shipped model and a folder `train` wrote, in each command

def test_generate_runs_the_shipped_model_by_its_size_name():
    result = run_cli("generate", "--size", "tiny", "--max-new-tokens", "12", "--temperature", "0", "def main(")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("def main(") and len(result.stdout.strip()) > len("def main(")


def test_generate_runs_a_folder_train_wrote_with_its_own_tokenizer(trained_dir):
    result = run_cli("generate", "--model-dir", str(trained_dir), "--max-new-tokens", "8", "--temperature", "0", "def")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("def")


def test_download_of_a_shipped_model_prints_its_folder_and_says_it_needs_none():
    result = run_cli("download", "tiny")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(gpt2.SHIPPED_MODELS["tiny"]) and "needs no download" in result.stderr


@pytest.mark.parametrize("source", [("--size", "tiny"), ("--model-dir", "TRAINED")], ids=["shipped", "trained"])
def test_export_runs_the_shipped_model_and_a_folder_train_wrote(source, trained_dir, tmp_path):
    flag, value = source
    value = str(trained_dir) if value == "TRAINED" else value
    result = run_explorer("export", "def main(", "--out", str(tmp_path / "run.html"), flag, value)
    assert result.returncode == 0, result.stderr
    numbers = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    assert numbers["prompt"] == "def main(" and numbers["tokens"]


# ---- offline, with nothing cached: at once, with what to run

def test_offline_generate_fails_at_once_with_the_command_that_gets_the_model(offline, capsys):
    from gpt2.__main__ import main

    assert main(["generate", "--cache-dir", offline, "Hi"]) == 1
    error = capsys.readouterr().err
    assert "GPT-2 124M is not downloaded and no server answered" in error
    assert "`python -m gpt2 download 124M`" in error and "--size tiny" in error and "Traceback" not in error


def test_offline_download_fails_at_once_saying_no_server_answered(offline, capsys):
    from gpt2.__main__ import main

    assert main(["download", "355M", "--cache-dir", offline]) == 1
    assert "GPT-2 355M is not downloaded and no server answered" in capsys.readouterr().err


def test_offline_export_fails_at_once_with_a_command_lines_message(offline, capsys, tmp_path):
    from explorer.__main__ import main

    assert main(["export", "Hi", "--out", str(tmp_path / "run.html"), "--cache-dir", offline]) == 1
    error = capsys.readouterr().err
    assert "`python -m gpt2 download 124M`" in error and "--size tiny" in error
    assert "keep working" not in error  # the web app's words, which mean nothing on a command line


def test_generate_from_a_model_directory_prints_text(tiny_checkpoint_dir):
    result = run_cli("generate", "--model-dir", str(tiny_checkpoint_dir), "--max-new-tokens", "8",
                     "--temperature", "0", "Every effort moves you")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Every effort moves you")
    assert len(result.stdout.strip()) > len("Every effort moves you")


def test_greedy_cli_output_is_deterministic(tiny_checkpoint_dir):
    args = ("generate", "--model-dir", str(tiny_checkpoint_dir), "--max-new-tokens", "5", "--temperature", "0", "Hi")
    assert run_cli(*args).stdout == run_cli(*args).stdout


def test_bad_setting_is_a_clear_error_not_a_traceback(tiny_checkpoint_dir):
    result = run_cli("generate", "--model-dir", str(tiny_checkpoint_dir), "--top-p", "2", "Hi")
    assert result.returncode == 2
    assert "--top-p" in result.stderr and "(0, 1]" in result.stderr and "Traceback" not in result.stderr


def test_unknown_size_is_refused_by_the_allowlist():
    result = run_cli("download", "../../etc")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_generate_runs_where_sched_getaffinity_does_not_exist(tiny_checkpoint_dir, monkeypatch, capsys):
    import os

    from gpt2.__main__ import main

    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # as on macOS and Windows
    code = main(["generate", "--model-dir", str(tiny_checkpoint_dir), "--max-new-tokens", "3", "--temperature", "0",
                 "Hi"])
    assert code == 0 and capsys.readouterr().out.startswith("Hi")


def test_runtime_error_exits_1_with_a_message(tmp_path):
    result = run_cli("generate", "--model-dir", str(tmp_path / "nowhere"), "Hi")
    assert result.returncode == 1
    assert "no checkpoint directory" in result.stderr and "Traceback" not in result.stderr


def test_corpus_command_writes_the_stdlib_text(tmp_path):
    result = run_cli("corpus", "--out", str(tmp_path / "corpus.txt"))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "corpus.txt").read_text(encoding="utf-8")
    assert "<|endoftext|>" in text and "def " in text and len(text) > 1_000_000


def test_generate_reads_a_model_trained_here_with_its_own_tokenizer():
    import gpt2

    result = run_cli("generate", "--model-dir", str(gpt2.SHIPPED_MODELS["tiny"]), "--max-new-tokens", "12",
                     "--temperature", "0", "def f(x):")
    assert result.returncode == 0, result.stderr  # GPT-2's tokenizer gave ids past its 4,096-token vocabulary
    assert result.stdout.startswith("def f(x):") and len(result.stdout.strip()) > len("def f(x):")


def test_generate_reads_a_hugging_face_folder(tmp_path, tiny_checkpoint_dir):
    import json

    from safetensors.torch import save_file

    import gpt2

    model = gpt2.load_checkpoint(tiny_checkpoint_dir)
    tensors = {name: (p.detach().T.contiguous() if p.dim() == 2 and name.split(".")[-2] in
                      ("c_attn", "c_proj", "c_fc") else p.detach().clone()) for name, p in model.named_parameters()}
    save_file(tensors, str(tmp_path / "model.safetensors"), {"format": "pt"})
    c = model.config
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "gpt2", "vocab_size": c.n_vocab, "n_positions": c.n_ctx, "n_embd": c.n_embd,
        "n_head": c.n_head, "n_layer": c.n_layer, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5}))
    args = ("generate", "--max-new-tokens", "6", "--temperature", "0", "Every effort moves you")
    from_hf = run_cli(*args[:1], "--model-dir", str(tmp_path), *args[1:])
    from_openai = run_cli(*args[:1], "--model-dir", str(tiny_checkpoint_dir), *args[1:])
    assert from_hf.returncode == 0, from_hf.stderr
    assert from_hf.stdout == from_openai.stdout


def test_the_app_serves_a_folder_train_wrote(trained_dir, tmp_path):
    from gradio_client import Client

    from app_server import AppServer
    from test_app import analyze, model_name

    server = AppServer(trained_dir, tmp_path / "app.log", "--sizes", "")
    try:
        server.wait_until_ready()
        client = Client(server.url, verbose=False)
        assert model_name(client) == f"local: {trained_dir.name}"
        status = analyze(client, "def main(")["Status"]
        assert "× 2 heads" in status and "d_model 32" in status  # its shape, read from its folder
    finally:
        server.stop()


# ---- numbers: the rules generate() applies, refused as usage errors (exit 2) saying what is allowed

SAMPLING_FLAGS = [("--temperature", "nan", "temperature", float("nan")),
                  ("--temperature", "inf", "temperature", float("inf")),
                  ("--top-p", "nan", "top_p", float("nan")),
                  ("--top-p", "2", "top_p", 2.0),
                  ("--top-k", "0", "top_k", 0),
                  ("--seed", str(2**70), "seed", 2**70),
                  ("--seed", "-1", "seed", -1)]


@pytest.mark.parametrize("flag, text, keyword, value", SAMPLING_FLAGS, ids=[f"{f} {t}" for f, t, *_ in SAMPLING_FLAGS])
def test_generate_refuses_a_sampling_number_as_a_usage_error_with_generates_own_rule(flag, text, keyword, value,
                                                                                     capsys):
    from gpt2.__main__ import main

    with pytest.raises(SystemExit) as exit:
        main(["generate", "--size", "tiny", flag, text, "Hi"])
    assert exit.value.code == 2
    with pytest.raises(ValueError) as library:  # the same number given to the library
        list(gpt2.generate(gpt2.GPT2(gpt2.GPTConfig(n_vocab=300, n_ctx=8, n_embd=8, n_head=1, n_layer=1)), [1], 1,
                           **{keyword: value}))
    error = capsys.readouterr().err
    assert f"argument {flag}: {library.value}" in error and "Traceback" not in error


def test_the_largest_seed_torch_takes_is_accepted_and_generates():
    from gpt2.__main__ import _parser

    seed = _parser().parse_args(["generate", "--seed", str(2**64 - 1), "Hi"]).seed
    model = gpt2.GPT2(gpt2.GPTConfig(n_vocab=300, n_ctx=8, n_embd=8, n_head=1, n_layer=1))
    assert seed == 2**64 - 1 and len(list(gpt2.generate(model, [1], 3, seed=seed, stop_at_eos=False))) == 3


@pytest.mark.parametrize("flag, text", [("--lr", "nan"), ("--max-minutes", "inf"), ("--dropout", "nan"),
                                        ("--seed", str(2**70))])
def test_train_refuses_nan_infinity_and_a_seed_past_64_bits_as_usage_errors(flag, text, capsys):
    from gpt2.__main__ import _parser

    with pytest.raises(SystemExit) as exit:
        _parser().parse_args(["train", "--out", "unused", flag, text])
    assert exit.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {flag}:" in error and ("finite number" in error or "2**64 - 1" in error)
