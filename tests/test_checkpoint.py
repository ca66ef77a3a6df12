import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import gpt2
from gpt2.checkpoint import SAFETENSORS_NAME, CheckpointError, torch_name
from openai_layout import random_openai_weights, reference_forward, write_openai_checkpoint

HPARAMS = {"n_vocab": 300, "n_ctx": 16, "n_embd": 16, "n_head": 2, "n_layer": 2}


def test_variable_names_map_to_modules():
    assert torch_name("model/h3/attn/c_attn/w") == "h.3.attn.c_attn.weight"
    assert torch_name("model/h11/ln_2/g") == "h.11.ln_2.weight"
    assert torch_name("model/ln_f/b") == "ln_f.bias"
    assert torch_name("model/wte") == "wte.weight"


def test_loaded_model_matches_float64_reference(tiny_model, tiny_weights):
    from conftest import TINY_HPARAMS

    ids = [6109, 3626, 6100, 345, 15496, 11, 995, 0]
    with torch.no_grad():
        logits = tiny_model(torch.tensor([ids]))[0].double().numpy()
    expected = reference_forward(tiny_weights, TINY_HPARAMS, ids)["logits"]
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)


def test_loaded_model_is_in_eval_mode_with_tied_head(tiny_model):
    assert not tiny_model.training
    # The head reads wte itself: changing the embedding changes the logits.
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        row = tiny_model.wte.weight[7].clone()
        before = tiny_model(ids)
        tiny_model.wte.weight[7] += 1.0
        after = tiny_model(ids)
        tiny_model.wte.weight[7] = row
    assert not torch.allclose(before[..., 7], after[..., 7])
    assert torch.allclose(before[..., 8], after[..., 8])


def test_first_load_writes_safetensors_and_later_loads_skip_tensorflow(tiny_checkpoint_dir, tiny_model):
    assert (tiny_checkpoint_dir / SAFETENSORS_NAME).exists()
    script = (
        "import sys, torch, gpt2\n"
        f"m = gpt2.load_openai_checkpoint({str(tiny_checkpoint_dir)!r})\n"
        "print('tensorflow' in sys.modules, float(m.wte.weight.sum()))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "False"
    assert float(out[1]) == pytest.approx(float(tiny_model.wte.weight.detach().sum()), rel=1e-6)


def test_stale_safetensors_from_another_checkpoint_is_ignored(tmp_path):
    first = random_openai_weights(HPARAMS, seed=1)
    write_openai_checkpoint(tmp_path, HPARAMS, first)
    gpt2.load_openai_checkpoint(tmp_path)
    second = random_openai_weights(HPARAMS, seed=2)
    write_openai_checkpoint(tmp_path, HPARAMS, second)  # same directory, new weights
    model = gpt2.load_openai_checkpoint(tmp_path)
    np.testing.assert_array_equal(model.wte.weight.detach().numpy(), second["model/wte"])


def _write_and_load(directory, weights, hparams=HPARAMS):
    write_openai_checkpoint(directory, hparams, weights)
    return gpt2.load_openai_checkpoint(directory)


def test_missing_variable_is_named(tmp_path):
    weights = random_openai_weights(HPARAMS)
    del weights["model/h1/mlp/c_fc/b"]
    with pytest.raises(CheckpointError, match=r"missing from checkpoint: h\.1\.mlp\.c_fc\.bias"):
        _write_and_load(tmp_path, weights)


def test_extra_variable_is_named(tmp_path):
    weights = random_openai_weights(HPARAMS)
    weights["model/h2/ln_1/g"] = np.ones(16, np.float32)  # a third layer the config doesn't have
    with pytest.raises(CheckpointError, match=r"not in the model: h\.2\.ln_1\.weight"):
        _write_and_load(tmp_path, weights)


def test_misshaped_variable_is_named(tmp_path):
    weights = random_openai_weights(HPARAMS)
    weights["model/h0/attn/c_proj/w"] = np.zeros((1, 16, 12), np.float32)
    with pytest.raises(CheckpointError, match=r"wrong shape: h\.0\.attn\.c_proj\.weight"):
        _write_and_load(tmp_path, weights)


def test_missing_directory_and_hparams_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
        gpt2.load_openai_checkpoint(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="hparams.json"):
        gpt2.load_openai_checkpoint(tmp_path)


def test_checkpoint_pointer_written_elsewhere_still_resolves(tmp_path):
    directory = tmp_path / "moved"
    write_openai_checkpoint(directory, HPARAMS, random_openai_weights(HPARAMS))
    # OpenAI's `checkpoint` file names an absolute path from their machine.
    (directory / "checkpoint").write_text('model_checkpoint_path: "/somewhere/else/model.ckpt"\n')
    model = gpt2.load_openai_checkpoint(directory)
    assert json.loads((directory / "hparams.json").read_text())["n_layer"] == len(model.h)


def test_saved_project_checkpoint_loads_with_the_same_logits(tmp_path):
    torch.manual_seed(0)
    model = gpt2.GPT2(gpt2.GPTConfig(**HPARAMS, dropout=0.1, mlp_ratio=2)).eval()
    gpt2.save_checkpoint(tmp_path / "m", model, training_log={"note": "test"}, step=7)
    loaded = gpt2.load_checkpoint(tmp_path / "m")
    ids = torch.tensor([[1, 2, 3, 299]])
    with torch.no_grad():
        assert torch.equal(loaded(ids), model(ids))
    assert loaded.config == model.config and not loaded.training
    assert json.loads((tmp_path / "m" / "training_log.json").read_text()) == {"note": "test"}


def test_loaded_project_checkpoint_keeps_the_head_tied(tmp_path):
    gpt2.save_checkpoint(tmp_path / "m", gpt2.GPT2(gpt2.GPTConfig(**HPARAMS)))
    loaded = gpt2.load_checkpoint(tmp_path / "m")
    ids = torch.tensor([[1, 2]])
    with torch.no_grad():
        before = loaded(ids)[..., 5].clone()
        # One feature only: adding the same amount to every feature would not move the logit, since
        # LN_f's output sums to 0 over the features while its gain is 1 and its bias 0.
        loaded.wte.weight[5, 0] += 1.0
        assert not torch.allclose(before, loaded(ids)[..., 5])


def test_load_checkpoint_reads_openai_layout_too(tiny_checkpoint_dir, tiny_model):
    assert torch.equal(gpt2.load_checkpoint(tiny_checkpoint_dir).wte.weight, tiny_model.wte.weight)


def test_save_leaves_no_partial_files(tmp_path):
    gpt2.save_checkpoint(tmp_path / "m", gpt2.GPT2(gpt2.GPTConfig(**HPARAMS)), training_log={},
                         training_state={"x": torch.zeros(2)}, step=3)
    names = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert names == ["hparams.json", "model.safetensors", "training_log.json", "training_state.pt"]


def test_truncated_weights_are_a_checkpoint_error(tmp_path):
    gpt2.save_checkpoint(tmp_path / "m", gpt2.GPT2(gpt2.GPTConfig(**HPARAMS)))
    weights = tmp_path / "m" / SAFETENSORS_NAME
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        gpt2.load_checkpoint(tmp_path / "m")


def test_loading_reads_each_tensor_into_the_parameter_it_fills(tmp_path, monkeypatch):
    # No second copy of the weights: every float32 tensor is read straight into its parameter's storage.
    from gpt2 import checkpoint

    gpt2.save_checkpoint(tmp_path / "m", gpt2.GPT2(gpt2.GPTConfig(**HPARAMS)))
    monkeypatch.setattr(checkpoint.torch, "frombuffer", lambda *a, **k: pytest.fail("copied through a buffer"))
    gpt2.load_checkpoint(tmp_path / "m")
