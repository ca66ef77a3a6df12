import pytest
import torch

import gpt2
from conftest import TINY_HPARAMS

PROMPT = [6109, 3626, 6100, 345]


def greedy_by_full_recomputation(model, ids, steps):
    ids = list(ids)
    with torch.no_grad():
        for _ in range(steps):
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    return ids[-steps:]


def test_greedy_generation_equals_full_recomputation(tiny_model):
    tokens = list(gpt2.generate(tiny_model, PROMPT, max_new_tokens=12, temperature=0.0, stop_at_eos=False))
    assert tokens == greedy_by_full_recomputation(tiny_model, PROMPT, 12)


def test_generate_streams_one_token_at_a_time(tiny_model):
    stream = gpt2.generate(tiny_model, PROMPT, max_new_tokens=3, temperature=0.0)
    first = next(stream)
    assert isinstance(first, int) and 0 <= first < TINY_HPARAMS["n_vocab"]
    assert len([first, *stream]) == 3


def test_seed_gives_the_same_tokens_every_time(tiny_model):
    run = lambda seed: list(gpt2.generate(tiny_model, PROMPT, 15, temperature=1.0, top_k=50, seed=seed))  # noqa: E731
    assert run(42) == run(42)
    assert run(42) != run(43)


def test_seeded_generation_leaves_global_rng_alone(tiny_model):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    list(gpt2.generate(tiny_model, PROMPT, 5, temperature=1.0, seed=1))
    assert torch.equal(torch.rand(3), expected)


def test_top_k_one_is_greedy(tiny_model):
    sampled = list(gpt2.generate(tiny_model, PROMPT, 8, temperature=1.3, top_k=1, seed=5, stop_at_eos=False))
    assert sampled == list(gpt2.generate(tiny_model, PROMPT, 8, temperature=0.0, stop_at_eos=False))


def test_generation_stops_after_end_of_text():
    # A model whose only sensible prediction is <|endoftext|>: push its embedding far out.
    config = gpt2.GPTConfig(n_vocab=50257, n_ctx=16, n_embd=8, n_head=2, n_layer=1)
    model = gpt2.GPT2(config).eval()
    with torch.no_grad():
        model.ln_f.weight.fill_(1.0)
        model.wte.weight[gpt2.EOT_ID] = 50 * model.ln_f(model.wte.weight[:5].mean(0, keepdim=True))[0]
    tokens = list(gpt2.generate(model, [1, 2], 10, temperature=0.0))
    assert tokens[-1] == gpt2.EOT_ID and len(tokens) < 10
    assert len(list(gpt2.generate(model, [1, 2], 10, temperature=0.0, stop_at_eos=False))) == 10


def test_running_past_the_context_slides_the_window(tiny_model):
    n_ctx = TINY_HPARAMS["n_ctx"]
    prompt = list(range(100, 100 + n_ctx - 2))
    tokens = list(gpt2.generate(tiny_model, prompt, max_new_tokens=10, temperature=0.0, stop_at_eos=False))
    assert len(tokens) == 10
    text = prompt + tokens
    # The third new token is predicted from a full context of n_ctx tokens ...
    assert tokens[2] == greedy_by_full_recomputation(tiny_model, text[:n_ctx], 1)[0]
    # ... after it the window slides: the model sees the most recent 3/4 of the context.
    keep = n_ctx - n_ctx // 4
    assert tokens[3] == greedy_by_full_recomputation(tiny_model, text[: n_ctx + 1][-keep:], 1)[0]
    assert tokens[4] == greedy_by_full_recomputation(tiny_model, text[: n_ctx + 2][-(keep + 1):], 1)[0]


@pytest.mark.parametrize(
    "kwargs, message",
    [({"temperature": -1.0}, "temperature"), ({"top_p": 0.0}, "top_p"), ({"top_p": 1.01}, "top_p"),
     ({"top_k": 0}, "top_k"), ({"max_new_tokens": -1}, "max_new_tokens")],
)
def test_invalid_settings_raise_before_running(tiny_model, kwargs, message):
    kwargs = {"max_new_tokens": 3} | kwargs
    with pytest.raises(ValueError, match=message):
        gpt2.generate(tiny_model, PROMPT, **kwargs)  # raises at the call, not on first next()


def test_prompt_longer_than_context_is_refused(tiny_model):
    with pytest.raises(ValueError, match="at most 64"):
        gpt2.generate(tiny_model, [1] * (TINY_HPARAMS["n_ctx"] + 1), 3)


def test_empty_prompt_and_bad_ids_are_refused(tiny_model):
    with pytest.raises(ValueError, match="empty"):
        gpt2.generate(tiny_model, [], 3)
    with pytest.raises(ValueError, match="token ids"):
        gpt2.generate(tiny_model, [1, TINY_HPARAMS["n_vocab"]], 3)
