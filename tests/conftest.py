"""Shared fixtures: a small random checkpoint in OpenAI's layout, written once per test session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest
import torch

from openai_layout import random_openai_weights, write_openai_checkpoint

# Small enough to run in milliseconds, with GPT-2's real vocabulary so real text tokenizes.
TINY_HPARAMS = {"n_vocab": 50257, "n_ctx": 64, "n_embd": 32, "n_head": 4, "n_layer": 2}

torch.set_num_threads(2)

# No test may reach the Hugging Face Hub or see the developer's own Hugging Face cache. huggingface_hub
# reads these variables once, when imported, so they are set before any test imports it; the app servers
# the tests start inherit them. A test that needs the Hub online or a filled cache patches its constants.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="empty-hf-cache-")
atexit.register(shutil.rmtree, os.environ["HF_HUB_CACHE"], ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_weights():
    return random_openai_weights(TINY_HPARAMS, seed=1234)


@pytest.fixture(scope="session")
def tiny_checkpoint_dir(tmp_path_factory, tiny_weights):
    """A directory exactly like OpenAI's: checkpoint, model.ckpt.{index,meta,data-...}, hparams.json."""
    return write_openai_checkpoint(tmp_path_factory.mktemp("tiny-gpt2"), TINY_HPARAMS, tiny_weights)


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint_dir):
    import gpt2

    return gpt2.load_openai_checkpoint(tiny_checkpoint_dir)


@pytest.fixture(scope="session")
def app_server(tiny_checkpoint_dir, tmp_path_factory):
    """`python app.py --model-dir <tiny checkpoint>` serving on 127.0.0.1 for the whole session."""
    from app_server import serving

    with serving(tiny_checkpoint_dir, tmp_path_factory.mktemp("app") / "app.log") as server:
        yield server


@pytest.fixture(scope="session")
def shipped_app_server(tmp_path_factory):
    """`python app.py --model-dir assets/models/tiny`: the model the app ships, shared by the browser modules that
    walk it (one server start instead of one per module)."""
    from app_server import ROOT, serving

    with serving(ROOT / "assets" / "models" / "tiny", tmp_path_factory.mktemp("shipped") / "app.log") as server:
        yield server


@pytest.fixture(scope="session")
def offline_app_server(tmp_path_factory):
    """`python app.py` with no flags, an empty cache and the download server a closed 127.0.0.1 port: offline."""
    from app_server import serving
    from test_store import closed_port_url

    folder = tmp_path_factory.mktemp("offline")
    with serving(None, folder / "app.log", "--cache-dir", str(folder / "empty-cache"),
                 env={"GPT2_EXPLORER_DOWNLOAD_URL": closed_port_url()}) as server:
        yield server


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint_dir):
    """The tiny random model as the app loads it: a LoadedModel from a ModelStore (one per test module)."""
    from explorer.store import ModelStore

    store = ModelStore(tiny_checkpoint_dir)
    return store.get(store.default)


@pytest.fixture(scope="session")
def small_text(tmp_path_factory):
    """A small training text (20 of pydoc's help topics) for training runs that take seconds."""
    from gpt2.corpus import pydoc_topics

    path = tmp_path_factory.mktemp("data") / "small.txt"
    path.write_text("\n".join(list(pydoc_topics())[:20]), encoding="utf-8")
    return path
