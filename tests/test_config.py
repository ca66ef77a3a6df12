import json

import pytest

from gpt2 import PRESETS, SIZES, GPTConfig


def test_presets_have_openai_shapes():
    shapes = {size: (c.n_embd, c.n_head, c.n_layer) for size, c in PRESETS.items()}
    assert shapes == {"124M": (768, 12, 12), "355M": (1024, 16, 24), "774M": (1280, 20, 36), "1558M": (1600, 25, 48)}
    assert set(SIZES) == set(PRESETS)
    assert all(c.n_vocab == 50257 and c.n_ctx == 1024 for c in PRESETS.values())


def test_124m_preset_has_124m_parameters():
    from gpt2 import GPT2

    assert GPT2(PRESETS["124M"]).num_parameters() == 124_439_808


def test_from_hparams_file(tmp_path):
    path = tmp_path / "hparams.json"
    path.write_text(json.dumps({"n_vocab": 100, "n_ctx": 16, "n_embd": 8, "n_head": 2, "n_layer": 3}))
    config = GPTConfig.from_hparams(path)
    assert (config.n_vocab, config.n_ctx, config.n_embd, config.n_head, config.n_layer) == (100, 16, 8, 2, 3)
    assert config.d_head == 4
    assert config.to_hparams() == json.loads(path.read_text())


def test_from_hparams_names_missing_fields():
    with pytest.raises(ValueError, match="n_head"):
        GPTConfig.from_hparams({"n_vocab": 100, "n_ctx": 16, "n_embd": 8, "n_layer": 3})


def test_from_hparams_rejects_broken_json(tmp_path):
    path = tmp_path / "hparams.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        GPTConfig.from_hparams(path)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"n_embd": 10, "n_head": 3}, "divisible"),
        ({"n_layer": 0}, "n_layer"),
        ({"n_ctx": -5}, "n_ctx"),
        ({"n_head": 2.5}, "n_head"),
        ({"dropout": 1.0}, "dropout"),
        ({"layer_norm_eps": 0.0}, "layer_norm_eps"),
    ],
)
def test_impossible_configs_raise_clear_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**changes)


def test_unknown_preset_lists_choices():
    with pytest.raises(ValueError, match="124M"):
        GPTConfig.preset("125M")


def test_config_is_frozen():
    with pytest.raises(Exception):
        GPTConfig().n_layer = 3
