"""Step mode and Generate follow one sliding-window rule, so they write the same text token for token."""

import pytest
from gradio_client import Client

import gpt2
from explorer.stepping import next_step, start_steps
from gpt2.generate import slide_keep, window_length

N_CTX = 64  # the tiny test model's context


def test_the_window_holds_every_token_until_the_context_is_full():
    assert [window_length(n, N_CTX) for n in (1, 2, 63, 64)] == [1, 2, 63, 64]


def test_past_the_context_the_window_restarts_at_three_quarters_and_grows_back():
    keep = slide_keep(N_CTX)
    assert keep == 48
    assert [window_length(n, N_CTX) for n in (65, 66, 81, 82, 98, 99)] == [48, 49, 64, 48, 64, 48]


def test_gpt2_sized_windows_keep_768_of_1024():
    assert slide_keep(1024) == 768 and window_length(1025, 1024) == 768 and window_length(1281, 1024) == 1024


def steps(loaded, prompt, n, temperature, top_k, top_p, seed) -> list[int]:
    state = start_steps(loaded, prompt, seed)
    for _ in range(n):
        next_step(loaded, state, temperature, top_k, top_p)
    return state.ids[state.prompt_length:]


@pytest.mark.parametrize("temperature, top_k, top_p, seed", [(0.9, 40, 0.95, 3), (0.0, 0, 1.0, 0), (1.3, 0, 1.0, 11),
                                                              (0.7, 5, 1.0, 2**40)])
def test_step_mode_writes_what_generate_writes_over_one_and_a_half_contexts(loaded, temperature, top_k, top_p, seed):
    prompt = "Every effort moves you"
    n_new = N_CTX * 3 // 2  # slides twice: at 65 and at 82 tokens
    ids = loaded.tokenizer.encode(prompt)
    generated = list(gpt2.generate(loaded.model, ids, n_new, temperature=temperature, top_k=top_k or None,
                                   top_p=None if top_p == 1.0 else top_p, seed=seed, stop_at_eos=False))
    assert steps(loaded, prompt, n_new, temperature, top_k, top_p, seed) == generated


def test_step_with_another_prompt_starts_over(app_server):
    client = Client(app_server.url, verbose=False)
    model = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/analyze"]["parameters"][1][
        "parameter_default"]
    for _ in range(3):
        client.predict("one two three", model, 1.0, 0, 1.0, 5, api_name="/step")
    text, *_ = client.predict("The capital of France is", model, 1.0, 0, 1.0, 5, api_name="/step")
    expected = client.predict("The capital of France is", api_name="/generate", max_new_tokens=1, temperature=1.0,
                              top_k=0, top_p=1.0, seed=5)
    assert text == expected
