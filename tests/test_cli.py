import subprocess
import sys


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "gpt2", *args], capture_output=True, text=True, timeout=120)


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
