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
    assert "top_p" in result.stderr and "Traceback" not in result.stderr


def test_unknown_size_is_refused_by_the_allowlist():
    result = run_cli("download", "../../etc")
    assert result.returncode == 2 and "invalid choice" in result.stderr
