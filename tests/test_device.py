"""Where models run: one rule for device and dtype (gpt2/device.py), used by the CLIs, the store and the app.

This machine has no GPU: what needs one is checked by benchmarks/gpu_check.py on a GPU machine.
Here: the names, the refusals and their messages, the CPU in both dtypes, and that a capture
moves its results to the host once, after the pass.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import gpt2
from gpt2.device import place, resolve_device, resolve_dtype, to_host, to_numpy
from gpt2.fast import is_prepacked, make_fast


def test_auto_means_cuda_when_present_else_the_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected
    assert resolve_device("CPU") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_cuda_without_a_gpu_says_so():
    with pytest.raises(ValueError, match="no CUDA GPU.*--device cpu or auto"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda:1")


def test_unknown_devices_and_dtypes_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown device 'tpu'.*auto, cpu, cuda"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="unknown dtype 'float16'.*float32, bfloat16"):
        resolve_dtype("float16")
    assert resolve_dtype("bfloat16") is torch.bfloat16 and resolve_dtype(None) is torch.float32


def test_make_fast_refuses_a_model_that_is_not_on_the_cpu():
    with torch.device("meta"):
        model = gpt2.GPT2(gpt2.GPTConfig(n_vocab=64, n_ctx=16, n_embd=16, n_head=2, n_layer=1))
    with pytest.raises(ValueError, match="CPU only|speeds up the CPU"):
        make_fast(model)


def test_place_makes_a_cpu_model_fast_and_keeps_its_outputs(tiny_weights, tiny_checkpoint_dir):
    reference = gpt2.load_checkpoint(tiny_checkpoint_dir)
    fast = place(gpt2.load_checkpoint(tiny_checkpoint_dir), "cpu")
    assert is_prepacked(fast)
    ids = torch.tensor([[464, 3290, 318, 257, 1049, 13]])
    with torch.no_grad():
        torch.testing.assert_close(fast(ids), reference(ids), atol=1e-5, rtol=1e-5)


def test_a_bfloat16_model_keeps_its_attention_in_float32_and_close_to_float32(tiny_checkpoint_dir):
    from explorer.capture import capture

    ids = gpt2.get_tokenizer().encode("The cat sat on the mat because the cat was tired")
    full = capture(place(gpt2.load_checkpoint(tiny_checkpoint_dir), "cpu"), ids)
    half = capture(place(gpt2.load_checkpoint(tiny_checkpoint_dir), "cpu", torch.bfloat16), ids)
    rows = half.attention.astype(np.float32).sum(-1)
    np.testing.assert_allclose(rows, 1.0, atol=2e-3)  # each row still a distribution
    np.testing.assert_allclose(half.attention, full.attention, atol=0.02)
    assert half.logits.dtype == np.float32


def test_a_capture_moves_its_results_to_the_host_once_after_the_pass(tiny_model, monkeypatch):
    from explorer import capture as capture_module

    calls = []
    real = capture_module.to_host

    def counting(tensors):
        calls.append(sorted(tensors))
        return real(tensors)
    monkeypatch.setattr(capture_module, "to_host", counting)
    trace = capture_module.capture(tiny_model, [464, 3290, 318, 257])
    assert calls == [["attention", "logits", "pos_embed", "resid_mid", "residual", "tok_embed"]]
    assert isinstance(trace.attention, np.ndarray)


def test_to_host_and_to_numpy_give_numpy_arrays_also_for_bfloat16():
    arrays = to_host({"a": torch.ones(2, 3), "b": torch.arange(4)})
    assert arrays["a"].shape == (2, 3) and arrays["b"].dtype == np.int64
    assert to_numpy(torch.ones(3, dtype=torch.bfloat16)).dtype == np.float32


def test_the_store_runs_its_models_in_the_dtype_it_is_given(tiny_checkpoint_dir):
    from explorer.analysis import analyze
    from explorer.store import ModelStore

    store = ModelStore(tiny_checkpoint_dir, device="cpu", dtype=torch.bfloat16)
    loaded = store.get(store.default)
    assert loaded.model.wte.weight.dtype is torch.bfloat16 and loaded.device.type == "cpu"
    assert loaded.wpe.dtype == np.float32 and loaded.cpu_twin is None and loaded.view_model is loaded.model
    analysis = analyze(loaded, "Every effort moves you")
    assert np.isfinite(analysis.trace.token_surprise).all()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("command", [["-m", "gpt2", "generate", "hi", "--device", "cuda"],
                                     ["-m", "explorer", "export", "hi", "--out", "x.html", "--device", "cuda"]])
def test_the_clis_take_device_and_refuse_cuda_where_there_is_none(command, tmp_path, tiny_checkpoint_dir):
    done = subprocess.run([sys.executable, *command, "--model-dir", str(tiny_checkpoint_dir)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parent.parent),
                               "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1, done.stderr
    assert "no CUDA GPU" in done.stderr


def test_the_app_refuses_a_device_it_does_not_have_before_loading_anything(tmp_path):
    done = subprocess.run([sys.executable, "app.py", "--device", "tpu"], capture_output=True, text=True, timeout=120,
                          cwd=str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    assert done.returncode != 0
    assert "unknown device 'tpu'" in done.stderr
