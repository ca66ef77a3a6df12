"""Every example prompt says only what is true of the models it is for (assets/examples.json, `for`).

The examples for the models trained here are run on the shipped model, and each one's promise is checked
on its own numbers. GPT-2's examples make their promise about GPT-2 by name ("on GPT-2"), since a random
or other model on screen would not keep it.
"""

from __future__ import annotations

import numpy as np
import pytest

from explorer import story
from explorer.analysis import analyze
from explorer.store import SHIPPED, ModelStore

EXAMPLES = story.load_examples()


@pytest.fixture(scope="module")
def shipped():
    store = ModelStore(None, sizes=[])
    return store.get(next(iter(SHIPPED)))


def promise_kept(target: str, analysis, loaded) -> bool:
    """Whether this prompt's numbers show what an example aimed at `target` promises."""
    trace = analysis.trace
    probs = np.sort(trace.next_token_probs)[::-1]
    surprise = np.asarray(trace.token_surprise, dtype=np.float64)
    if target == "top":  # "most of its probability goes to one token"
        return probs[0] >= 0.5
    if target == "induction":  # an induction head looks at the token after the earlier copy
        found = story.induction_head(analysis, loaded)
        fires = found and story.induction_query(analysis, found[0], found[1])
        return bool(found and found[2] >= story.INDUCTION_THRESHOLD and fires and fires[2] >= 0.5)
    if target == "previous_token":  # a head the app labels previous-token
        return story.previous_token_head(analysis)[2] >= story.PREVIOUS_TOKEN_LABEL
    if target == "surprise":  # the second copy is (GPT-2: far) less surprising than the first
        half = len(surprise) // 2
        return surprise[half:].mean() < 0.75 * surprise[:half].mean()
    if target == "sampling":  # no token takes half: sampling settings change what is drawn
        return probs[0] < 0.5 and probs[:3].sum() > 0.3
    if target == "tokens":  # newlines and runs of spaces, or a character split across tokens
        return any(not piece.strip() or not piece.decode("utf-8", "replace").isprintable()
                   for piece in trace.token_bytes)
    raise AssertionError(f"no check written for {target!r} examples")


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e["for"] in ("trained", "any")],
                         ids=lambda e: e["prompt"][:30])
def test_an_example_for_the_models_trained_here_keeps_its_promise_on_the_shipped_model(example, shipped):
    if example["for"] == "any" and example["target"] != "tokens":
        pytest.fail("an example for any model may only promise what the tokenizer does")
    assert promise_kept(example["target"], analyze(shipped, example["prompt"]), shipped), example["why"]


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e["for"] == "gpt2"], ids=lambda e: e["prompt"][:30])
def test_an_example_for_gpt2_says_its_promise_is_about_gpt2(example):
    assert "GPT-2" in example["why"]


def test_the_first_prompt_follows_the_model(tiny_checkpoint_dir):
    store = ModelStore(tiny_checkpoint_dir, sizes=["124M"])
    shipped_name = next(iter(SHIPPED))
    assert store.speaks_gpt2("124M") and store.speaks_gpt2(store.local_name)  # an OpenAI-layout folder
    assert not store.speaks_gpt2(shipped_name)
    first = {e["prompt"]: e for e in EXAMPLES}
    assert first[story.default_prompt(speaks_gpt2=True)]["for"] == "gpt2"
    assert first[story.default_prompt(speaks_gpt2=False)]["for"] == "trained"
    assert story.default_prompt(speaks_gpt2=False).startswith(("class ", "def ", "import ", "for "))  # Python


def test_every_kind_of_example_is_offered_for_each_model():
    for kind in ("gpt2", "trained"):
        targets = {e["target"] for e in EXAMPLES if e["for"] in (kind, "any")}
        assert {"top", "tokens", "induction", "previous_token", "surprise", "sampling"} <= targets, kind
