"""GPT-2 weights in the Hugging Face layout, and where `gpt2.load_pretrained` finds them.

The models here are tiny random GPT2LMHeadModels made by transformers itself, so the files are
exactly what `save_pretrained` writes. No test touches the network: the Hub is played by a
closed port, a local HTTP server or a stand-in for `hf_hub_download`, and the Hugging Face
cache is a folder built here (conftest.py keeps every test away from the developer's own).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants
from safetensors.torch import load_file, save_file

import gpt2
from gpt2 import download, hub
from gpt2.checkpoint import CheckpointError
from gpt2.download import DATA_FILE, FILES, DownloadError, model_dir

SHAPE = {"vocab_size": 50257, "n_positions": 64, "n_embd": 32, "n_layer": 2, "n_head": 4}
IDS = [6109, 3626, 6100, 345, 15496, 11, 995, 0]
COMMIT = "0123456789abcdef0123456789abcdef01234567"  # the Hub snapshot our hand-made HF caches hold


# ---- tiny Hugging Face models, written by transformers

@pytest.fixture(scope="module")
def hf_model():
    """A random GPT2LMHeadModel whose LayerNorms and biases are not at their initial 1 and 0."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(**SHAPE, initializer_range=0.2)).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "ln_" in name or name.endswith(".bias"):
                param.add_(0.2 * torch.randn_like(param))
    return model


@pytest.fixture(scope="module")
def saved(hf_model, tmp_path_factory):
    """The folder `save_pretrained` writes: config.json, model.safetensors with `transformer.` names."""
    folder = tmp_path_factory.mktemp("save_pretrained")
    hf_model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def hub_layout(saved, tmp_path_factory):
    """The same weights as the Hub's files name them: no prefix, mask buffers stored, no lm_head."""
    folder = tmp_path_factory.mktemp("hub_layout")
    shutil.copy(saved / "config.json", folder)
    stored = load_file(saved / "model.safetensors")
    tensors = {name.removeprefix("transformer."): tensor for name, tensor in stored.items() if name != "lm_head.weight"}
    n_ctx = SHAPE["n_positions"]
    for layer in range(SHAPE["n_layer"]):
        tensors[f"h.{layer}.attn.bias"] = torch.tril(torch.ones(n_ctx, n_ctx)).view(1, 1, n_ctx, n_ctx)
        tensors[f"h.{layer}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(tensors, folder / "model.safetensors", {"format": "pt"})
    return folder


def hf_logits(hf_model) -> torch.Tensor:
    with torch.no_grad():
        return hf_model(torch.tensor([IDS])).logits


def our_logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([IDS]))


def rewrite(source: Path, target: Path, config_changes=None, change_tensors=None) -> Path:
    """A copy of an HF folder with some config fields and tensors changed."""
    target.mkdir()
    config = json.loads((source / "config.json").read_text()) | (config_changes or {})
    (target / "config.json").write_text(json.dumps(config))
    tensors = load_file(source / "model.safetensors")
    if change_tensors:
        change_tensors(tensors)
    save_file(tensors, target / "model.safetensors", {"format": "pt"})
    return target


def test_a_save_pretrained_folder_loads_with_the_logits_of_transformers(hf_model, saved):
    model = gpt2.load_checkpoint(saved)
    assert model.config == gpt2.GPTConfig(n_vocab=50257, n_ctx=64, n_embd=32, n_head=4, n_layer=2)
    assert not model.training
    torch.testing.assert_close(our_logits(model), hf_logits(hf_model), atol=1e-4, rtol=0)


def test_the_hubs_key_layout_loads_the_same_weights(hf_model, saved, hub_layout):
    from_hub = gpt2.load_checkpoint(hub_layout)
    for (name, ours), (_, theirs) in zip(from_hub.named_parameters(), gpt2.load_checkpoint(saved).named_parameters()):
        assert torch.equal(ours, theirs), name
    torch.testing.assert_close(our_logits(from_hub), hf_logits(hf_model), atol=1e-4, rtol=0)


def test_the_loaded_head_stays_tied_to_the_embedding(saved):
    model = gpt2.load_checkpoint(saved)
    before = our_logits(model)[..., 5].clone()
    with torch.no_grad():
        model.wte.weight[5, 0] += 1.0
    assert not torch.allclose(before, our_logits(model)[..., 5])


def test_an_lm_head_equal_to_wte_is_accepted(hf_model, saved, tmp_path):
    def add_head(tensors):
        tensors["lm_head.weight"] = tensors["transformer.wte.weight"].clone()

    model = gpt2.load_checkpoint(rewrite(saved, tmp_path / "m", change_tensors=add_head))
    torch.testing.assert_close(our_logits(model), hf_logits(hf_model), atol=1e-4, rtol=0)


def test_an_lm_head_that_differs_from_wte_is_refused(saved, tmp_path):
    def add_head(tensors):
        tensors["lm_head.weight"] = tensors["transformer.wte.weight"] + 1.0

    with pytest.raises(CheckpointError, match="lm_head.weight differs from wte.weight"):
        gpt2.load_checkpoint(rewrite(saved, tmp_path / "m", change_tensors=add_head))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights_load_as_float32(saved, tmp_path, dtype):
    def halve(tensors):
        for name in tensors:
            tensors[name] = tensors[name].to(dtype)

    model = gpt2.load_checkpoint(rewrite(saved, tmp_path / "m", change_tensors=halve))
    expected = load_file(saved / "model.safetensors")["transformer.h.1.mlp.c_fc.weight"].to(dtype).float()
    assert model.h[1].mlp.c_fc.weight.dtype == torch.float32
    assert torch.equal(model.h[1].mlp.c_fc.weight, expected.T)


def test_loading_either_layout_imports_no_tensorflow(saved, hub_layout):
    script = ("import sys, gpt2\n"
              f"gpt2.load_checkpoint({str(saved)!r}); gpt2.load_checkpoint({str(hub_layout)!r})\n"
              "print('tensorflow' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False"]


def test_the_tokenizer_of_an_hf_folder_is_gpt2s(saved):
    assert gpt2.get_tokenizer(saved) is gpt2.get_tokenizer()


# ---- clear errors

def test_a_config_of_another_model_type_is_refused(saved, tmp_path):
    with pytest.raises(CheckpointError, match=r"model_type is 'llama', not 'gpt2'"):
        gpt2.load_checkpoint(rewrite(saved, tmp_path / "m", {"model_type": "llama"}))


@pytest.mark.parametrize("field, value", [("activation_function", "relu"), ("scale_attn_weights", False),
                                          ("scale_attn_by_inverse_layer_idx", True), ("add_cross_attention", True),
                                          ("n_inner", 100)])
def test_a_config_the_model_cannot_represent_is_refused_by_field(saved, tmp_path, field, value):
    with pytest.raises(CheckpointError, match=field):
        gpt2.load_checkpoint(rewrite(saved, tmp_path / "m", {field: value}))


def test_a_missing_tensor_is_named(saved, tmp_path):
    def drop(tensors):
        del tensors["transformer.h.1.mlp.c_fc.bias"]

    with pytest.raises(CheckpointError, match=r"missing from checkpoint: h\.1\.mlp\.c_fc\.bias"):
        gpt2.load_checkpoint(rewrite(saved, tmp_path / "m", change_tensors=drop))


def test_a_misshaped_tensor_is_named_in_our_layout(saved, tmp_path):
    def reshape(tensors):
        tensors["transformer.h.0.attn.c_proj.weight"] = torch.zeros(32, 12)  # HF's (in, out)

    with pytest.raises(CheckpointError, match=r"wrong shape: h\.0\.attn\.c_proj\.weight: checkpoint \(12, 32\)"):
        gpt2.load_checkpoint(rewrite(saved, tmp_path / "m", change_tensors=reshape))


# ---- where load_pretrained finds the weights

def put_in_hf_cache(cache: Path, size: str, folder: Path) -> Path:
    """Lay `folder`'s config.json and model.safetensors out as huggingface_hub caches a repo; returns the snapshot."""
    repo = cache / ("models--" + hub.HUB_REPOS[size].replace("/", "--"))
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    for name in hub.HUB_FILES:
        data = (folder / name).read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(Path("..", "..", "blobs", blob.name))
    return snapshot


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline: huggingface_hub read both settings at import, so its constants are set."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture
def project_cache(tmp_path):
    return tmp_path / "project-cache"


@pytest.fixture
def no_downloads(monkeypatch):
    """Any attempt to download, from the Hub or from OpenAI, fails the test."""
    monkeypatch.setattr("huggingface_hub.hf_hub_download", lambda *a, **k: pytest.fail("downloaded from the Hub"))
    monkeypatch.setattr(hub, "download_model", lambda *a, **k: pytest.fail("downloaded from OpenAI"))


@pytest.fixture
def openai_server(tmp_path, monkeypatch):
    """OpenAI's storage played by a local HTTP server with small stand-ins for one size's files."""
    root = tmp_path / "openai"
    (root / "124M").mkdir(parents=True)
    for name in FILES:
        (root / "124M" / name).write_bytes(b"{}" if name.endswith(".json") else b"#version\n" if name == "vocab.bpe"
                                           else b'model_checkpoint_path: "model.ckpt"\n' if name == "checkpoint"
                                           else bytes(100))
    monkeypatch.setattr(download, "EXPECTED_SIZES", {("124M", DATA_FILE): 100})
    handler = partial(type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}), directory=root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def fake_project_download(cache: Path, size: str = "124M") -> Path:
    """OpenAI's files of `size` in the project's cache, as `download_model` leaves them (contents not read)."""
    folder = model_dir(size, cache)
    folder.mkdir(parents=True)
    for name in FILES:
        with open(folder / name, "wb") as f:
            f.truncate(download.EXPECTED_SIZES.get((size, name), 1))  # sparse: the known size, no disk used
    return folder


OFFLINE_OPTIONS = {"retries": 0, "progress_bar": False}


def test_offline_the_hf_cache_copy_loads_without_any_download(hf_model, saved, hf_cache, project_cache, no_downloads,
                                                              monkeypatch):
    monkeypatch.setenv(download.BASE_URL_ENV_VAR, closed_port_url())
    put_in_hf_cache(hf_cache, "124M", saved)
    model = gpt2.load_pretrained("124M", project_cache)
    torch.testing.assert_close(our_logits(model), hf_logits(hf_model), atol=1e-4, rtol=0)
    assert not project_cache.exists()


def test_available_offline_sees_either_cache_and_nothing_else(saved, hf_cache, project_cache, no_downloads):
    assert not hub.available_offline("124M", project_cache)
    put_in_hf_cache(hf_cache, "124M", saved)
    assert hub.available_offline("124M", project_cache) and not hub.available_offline("355M", project_cache)
    assert hub.available_offline("355M", fake_project_download(project_cache, "355M").parent)


def test_a_safetensors_copy_made_from_openais_files_counts_as_the_project_cache(tiny_checkpoint_dir, tiny_model,
                                                                                  hf_cache, tmp_path, no_downloads):
    # tiny_model's first load wrote the safetensors copy beside the TensorFlow files.
    folder = model_dir("124M", tmp_path)
    folder.mkdir(parents=True)
    for name in ("hparams.json", "model.safetensors", "model.ckpt.index"):  # the TensorFlow data itself deleted
        shutil.copy(tiny_checkpoint_dir / name, folder)
    assert hub.locate("124M", tmp_path) == folder
    assert torch.equal(gpt2.load_pretrained("124M", tmp_path).wte.weight, tiny_model.wte.weight)


def test_the_project_cache_wins_over_the_hf_cache(saved, hf_cache, project_cache, no_downloads):
    put_in_hf_cache(hf_cache, "124M", saved)
    folder = fake_project_download(project_cache)
    assert hub.locate("124M", project_cache) == folder


def test_the_hf_cache_wins_over_the_network(saved, hf_cache, project_cache, no_downloads, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # online: still no request is made
    snapshot = put_in_hf_cache(hf_cache, "124M", saved)
    assert hub.locate("124M", project_cache, hub_endpoint=closed_port_url()) == snapshot


def test_online_the_hub_download_fetches_config_and_weights_into_the_hf_cache(saved, hf_cache, project_cache,
                                                                                openai_server, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    asked = []

    def hf_hub_download(repo_id, filename, **options):  # leaves in the cache what huggingface_hub would
        asked.append((repo_id, filename))
        snapshot = hf_cache / "models--openai-community--gpt2" / "snapshots" / COMMIT
        if not snapshot.exists():
            put_in_hf_cache(hf_cache, "124M", saved)
        return str(snapshot / filename)

    monkeypatch.setattr("huggingface_hub.hf_hub_download", hf_hub_download)
    monkeypatch.setattr(hub, "download_model", lambda *a, **k: pytest.fail("downloaded from OpenAI"))
    folder = hub.locate("124M", project_cache, hub_endpoint=openai_server)  # any HTTP answer: the Hub is reachable
    assert asked == [("openai-community/gpt2", "config.json"), ("openai-community/gpt2", "model.safetensors")]
    assert gpt2.load_checkpoint(folder).config.n_embd == SHAPE["n_embd"]


def test_a_hub_that_cannot_be_reached_falls_through_to_openai(hf_cache, project_cache, openai_server, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.hf_hub_download", lambda *a, **k: pytest.fail("no probe answered"))
    folder = hub.locate("124M", project_cache, hub_endpoint=closed_port_url(), base_url=openai_server,
                        **OFFLINE_OPTIONS)
    assert folder == model_dir("124M", project_cache)
    assert sorted(path.name for path in folder.iterdir() if path.name in FILES) == sorted(FILES)


def test_with_hf_hub_offline_the_hub_is_skipped_for_openai(hf_cache, project_cache, openai_server, no_downloads,
                                                          monkeypatch):
    monkeypatch.setattr(hub, "download_model", download.download_model)
    folder = hub.locate("124M", project_cache, base_url=openai_server, **OFFLINE_OPTIONS)
    assert folder == model_dir("124M", project_cache)


def test_source_openai_never_touches_the_hf_cache(saved, hf_cache, project_cache, openai_server, monkeypatch):
    put_in_hf_cache(hf_cache, "124M", saved)
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: pytest.fail("read the HF cache"))
    folder = hub.locate("124M", project_cache, source="openai", base_url=openai_server, **OFFLINE_OPTIONS)
    assert folder == model_dir("124M", project_cache)


def test_source_hub_ignores_the_project_cache(saved, hf_cache, project_cache, no_downloads):
    fake_project_download(project_cache)
    snapshot = put_in_hf_cache(hf_cache, "124M", saved)
    assert hub.locate("124M", project_cache, source="hub") == snapshot


def test_when_every_source_fails_the_error_names_each_and_the_fix(hf_cache, project_cache):
    with pytest.raises(DownloadError) as raised:
        hub.locate("124M", project_cache, base_url=closed_port_url(), **OFFLINE_OPTIONS)
    message = str(raised.value)
    for part in ("project's cache: not there", "Hugging Face cache: not there", "HF_HUB_OFFLINE",
                 "OpenAI's storage: Could not download", "python -m gpt2 download 124M", "openai-community/gpt2"):
        assert part in message


# ---- the command lines' quick check (hub.check_obtainable)

def test_a_cached_size_is_obtainable_without_asking_any_server(saved, hf_cache, project_cache, monkeypatch):
    put_in_hf_cache(hf_cache, "124M", saved)
    monkeypatch.setattr(hub, "_probe", lambda *a: pytest.fail("asked a server"))
    hub.check_obtainable("124M", project_cache)


def test_any_answer_from_a_server_makes_a_size_obtainable(hf_cache, project_cache, openai_server, monkeypatch):
    monkeypatch.setenv(download.BASE_URL_ENV_VAR, openai_server)
    hub.check_obtainable("124M", project_cache)  # hparams.json is there
    hub.check_obtainable("355M", project_cache)  # a 404 is an answer too: the download will say what it means


def test_with_no_server_answering_the_check_fails_once_naming_each(hf_cache, project_cache, monkeypatch):
    monkeypatch.setenv(download.BASE_URL_ENV_VAR, closed_port_url())
    with pytest.raises(DownloadError) as raised:
        hub.check_obtainable("124M", project_cache)
    message = str(raised.value)
    for part in ("not downloaded and no server answered", "the Hugging Face Hub: HF_HUB_OFFLINE is set",
                 "OpenAI's storage: could not connect to 127.0.0.1", "python -m gpt2 download 124M", str(project_cache)):
        assert part in message


def test_hub_download_progress_reaches_the_callback_even_with_the_bar_hidden():
    seen = []
    bar = hub._progress_class("model.safetensors", lambda *report: seen.append(report))(total=10, disable=True)
    bar.update(4)
    bar.update(6)
    assert seen == [("model.safetensors", 4, 10), ("model.safetensors", 10, 10)]


@pytest.mark.parametrize("size, source", [("../../etc", "auto"), ("125M", "auto"), ("124M", "web")])
def test_unknown_sizes_and_sources_are_refused_before_any_lookup(size, source, no_downloads):
    with pytest.raises(ValueError, match="unknown"):
        hub.locate(size, source=source)


# ---- the app's model store and the command line

def test_the_store_counts_the_hf_cache_as_downloaded(saved, hf_cache, project_cache):
    from explorer.store import ModelStore

    store = ModelStore(cache_dir=project_cache, sizes=["124M"])
    assert store.needs_download("124M")
    put_in_hf_cache(hf_cache, "124M", saved)
    assert not store.needs_download("124M")
    assert store.starting_model(reachable=lambda: pytest.fail("no check when cached")) == "124M"


def test_download_source_flag_parses_and_rejects_bad_values(capsys):
    from gpt2.__main__ import _parser, main

    assert _parser().parse_args(["download", "124M"]).source == "auto"
    assert _parser().parse_args(["download", "124M", "--source", "openai"]).source == "openai"
    with pytest.raises(SystemExit) as exited:
        main(["download", "124M", "--source", "web"])
    assert exited.value.code == 2 and "invalid choice: 'web'" in capsys.readouterr().err


def test_download_source_openai_calls_only_openais_download(monkeypatch, capsys, tmp_path):
    from gpt2 import __main__ as cli

    monkeypatch.setattr(download, "download_model", lambda size, cache_dir: Path(f"/openai/{size}"))
    monkeypatch.setattr(hub, "locate", lambda *a, **k: pytest.fail("looked beyond OpenAI"))
    monkeypatch.setattr(hub, "check_obtainable", lambda *a, **k: None)  # as if OpenAI's storage answered
    assert cli.main(["download", "355M", "--source", "openai"]) == 0
    assert capsys.readouterr().out.strip() == "/openai/355M"


def test_download_source_hub_prints_the_folder_found(saved, hf_cache, tmp_path, capsys, no_downloads):
    from gpt2 import __main__ as cli

    snapshot = put_in_hf_cache(hf_cache, "124M", saved)
    assert cli.main(["download", "124M", "--source", "hub", "--cache-dir", str(tmp_path / "empty")]) == 0
    assert capsys.readouterr().out.strip() == str(snapshot)
