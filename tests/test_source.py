import pytest

import gpt2
from explorer import source


@pytest.mark.parametrize("tab", source.TABS)
def test_every_tabs_snippet_is_found_in_the_running_source(tab):
    for snippet in source.snippets(tab):
        assert snippet.lines and not snippet.missing, (snippet.target, snippet.missing)


@pytest.mark.parametrize("tab", source.TABS)
def test_snippet_lines_are_the_files_own_lines(tab):
    for snippet in source.snippets(tab):
        file_lines = open(snippet.file, encoding="utf-8").read().splitlines()
        for number, text in snippet.lines:
            assert file_lines[number - 1] == text


def test_attention_snippet_shows_the_softmax_of_the_scaled_scores():
    code = source.code_markdown("attention", gpt2.GPTConfig(), 7)
    assert "softmax(" in code and "c_attn(" in code and "```python" in code


def test_docstrings_are_not_picked_as_code():
    text = "\n".join(line for s in source.snippets("attention") for _, line in s.lines)
    assert "head_h = softmax" not in text  # CausalSelfAttention's docstring says this


def test_shape_comments_get_this_prompts_numbers():
    values = source.shape_values(gpt2.GPTConfig(), 7)
    assert source.annotate_shapes("x = f(x)  # (B, T, d_model)", values) == "x = f(x)  # (B, T, d_model) = (1, 7, 768)"
    assert source.annotate_shapes("p = a  # (T,)", values).endswith("(T,) = (7,)")
    assert source.annotate_shapes("y  # (B, T, 3C)", values).endswith("= (1, 7, 2304)")


def test_parentheses_that_are_not_shapes_stay_as_they_are():
    values = source.shape_values(gpt2.GPTConfig(), 7)
    for line in ("s = 1  # q.k / sqrt(d_head)", "x = g(a, b)", "z  # (B, T, something_else)"):
        assert source.annotate_shapes(line, values) == line


def test_shapes_follow_the_model_and_prompt(tiny_model):
    code = source.code_markdown("embeddings", tiny_model.config, 3)
    c = tiny_model.config
    assert f"(1, 3, {c.n_embd})" in code


def test_unknown_tab_is_refused_with_the_list():
    with pytest.raises(ValueError, match="attention"):
        source.code_markdown("nope", gpt2.GPTConfig(), 3)
