"""The small GPT-2 this project trains and ships (assets/models/tiny) has the structure the explorer teaches.

Measured with tests/head_probe.py, which reads `h.{l}.attn.hook_pattern` directly and never
the explorer's own head scores, on the model's own validation text (the last tokens of the
corpus it was trained on, rebuilt from this Python's standard library).
"""

from __future__ import annotations

import json
import sys

import pytest

import gpt2
from gpt2.corpus import stdlib_corpus
from head_probe import frequent_tokens, induction_probe, previous_token_scores

SHIPPED = gpt2.SHIPPED_MODELS["tiny"]
LOG = json.loads((SHIPPED / "training_log.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def shipped():
    return gpt2.load_pretrained("tiny")


@pytest.fixture(scope="module")
def corpus_ids():
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the shipped model's corpus is Python 3.11's standard library")
    return gpt2.get_tokenizer(SHIPPED).encode(stdlib_corpus())


@pytest.fixture(scope="module")
def validation_ids(corpus_ids):
    return corpus_ids[-LOG["data"]["val_tokens"]:]


def test_loads_offline_with_its_own_tokenizer(shipped):
    enc = gpt2.get_tokenizer(SHIPPED)
    assert enc.n_vocab == shipped.config.n_vocab < gpt2.get_tokenizer().n_vocab
    text = "def __init__(self, name):\n    return self.name"
    assert enc.decode(enc.encode(text)) == text


def test_has_a_previous_token_head_on_natural_text(shipped, validation_ids):
    scores = previous_token_scores(shipped, validation_ids)
    assert float(scores.max()) >= 0.3


def test_has_an_induction_head_that_makes_copying_cheap(shipped, corpus_ids, validation_ids):
    train_ids = corpus_ids[:-len(validation_ids)]
    probe = induction_probe(shipped, frequent_tokens(train_ids, 500))
    assert float(probe["induction"].max()) >= 0.3
    assert probe["second_copy_loss"] < 0.5 * probe["first_copy_loss"]


def test_the_first_snapshot_has_neither(corpus_ids, validation_ids):
    """The heads were learned: at step 0 the same measurements are near uniform attention."""
    first = gpt2.load_checkpoint(SHIPPED / LOG["snapshots"][0]["path"])
    assert float(previous_token_scores(first, validation_ids).max()) < 0.1
    probe = induction_probe(first, frequent_tokens(corpus_ids[:-len(validation_ids)], 500))
    assert float(probe["induction"].max()) < 0.1


def test_logged_validation_loss_is_what_the_model_gives(shipped, validation_ids):
    import torch
    import torch.nn.functional as F

    n_ctx = shipped.config.n_ctx
    ids = torch.tensor(validation_ids[: (len(validation_ids) - 1) // n_ctx * n_ctx + 1])
    x, y = ids[:-1].view(-1, n_ctx)[:64], ids[1:].view(-1, n_ctx)[:64]
    with torch.no_grad():
        loss = F.cross_entropy(shipped(x).flatten(0, 1), y.flatten())
    assert abs(float(loss) - LOG["evals"][-1]["val_loss"]) < 0.05
