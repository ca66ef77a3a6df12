"""The figures of the experiments: surprise per token, before/after an ablation, a branch tree."""

import numpy as np
import pytest

from explorer import plots


def test_surprise_tokens_wrap_into_rows_with_the_first_token_grey():
    tokens = [f"t{i}" for i in range(10)]
    surprise = np.linspace(0.5, 5, 9)
    fig = plots.surprise_tokens(tokens, surprise, per_row=4)
    z = np.asarray(fig.data[1].z, dtype=float)
    assert z.shape == (3, 4)  # 10 tokens in rows of 4
    assert np.isnan(z[0, 0]) and z[0, 1] == pytest.approx(0.5) and z[2, 1] == pytest.approx(5.0)
    assert np.isnan(z[2, 2:]).all()  # cells past the end are empty
    assert fig.data[1].text[0][1] == "t1"
    first = np.asarray(fig.data[0].z, dtype=float)  # the grey cell of the first token, and only that one
    assert first[0, 0] == 0 and np.isnan(first).sum() == first.size - 1


def test_surprise_tokens_hover_says_what_probability_the_model_gave():
    fig = plots.surprise_tokens(["The", "␣capital", "␣Paris"], np.array([3.0, -np.log(0.71)]), model_name="GPT-2")
    assert fig.data[1].hovertext[0][2].startswith("GPT-2 gave ␣Paris 71%")
    assert "first token" in fig.data[1].hovertext[0][0]


def test_surprise_tokens_state_the_loss_and_perplexity():
    fig = plots.surprise_tokens(["a", "b", "c"], np.array([1.0, 3.0]))
    note = fig.layout.title.subtitle.text.replace("<br>", " ")  # a long note is wrapped
    assert "mean 2.00 nats" in note and f"perplexity {np.exp(2):.1f}" in note


def test_surprise_tokens_refuse_a_mismatched_length():
    with pytest.raises(ValueError, match="3 tokens need 2 surprise values"):
        plots.surprise_tokens(["a", "b", "c"], np.array([1.0]))


def test_token_text_with_angle_brackets_is_escaped_in_hover():
    fig = plots.surprise_tokens(["<b>", "x"], np.array([1.0]))
    assert "&lt;b&gt;" in fig.data[1].hovertext[0][0]


def test_before_after_bars_put_both_distributions_side_by_side():
    fig = plots.before_after_bars(["a", "b"], np.array([0.6, 0.4]), np.array([0.1, 0.9]), "x", after_name="head 1.2 off")
    assert fig.layout.barmode == "group"
    assert [trace.name for trace in fig.data] == ["before", "head 1.2 off"]
    assert list(fig.data[1].x) == pytest.approx([0.1, 0.9])


def test_moved_most_bars_show_percentage_points_coloured_by_direction():
    fig = plots.moved_most_bars(["up", "down"], np.array([0.1, 0.5]), np.array([0.3, 0.2]), "x")
    assert list(fig.data[0].x) == pytest.approx([20.0, -30.0])
    assert fig.data[0].marker.color == (plots.INCREASE_COLOUR, plots.DECREASE_COLOUR)


def test_branch_tree_places_steps_left_to_right_and_highlights_the_current_path():
    # root -> a -> b, and root -> c (an alternative at step 1); current is b
    fig = plots.branch_tree([None, 0, 1, 0], ["prompt", "a", "b", "c"], np.array([1, 0.5, 0.4, 0.2]), current=2)
    nodes = fig.data[-1]
    assert list(nodes.x) == [0, 1, 2, 1]
    assert list(nodes.marker.color) == [plots.PICKED_COLOUR] * 3 + ["#888888"]
    assert nodes.y[3] != nodes.y[1]  # the alternative gets its own row
    path_lines = [trace for trace in fig.data[:-1] if trace.line.color == plots.PICKED_COLOUR][0]
    assert [x for x in path_lines.x if x is not None] == [0, 1, 1, 2]


def test_branch_tree_refuses_a_current_node_that_does_not_exist():
    with pytest.raises(ValueError, match="current"):
        plots.branch_tree([None], ["prompt"], np.array([1.0]), current=3)


def test_top_token_bars_put_the_most_likely_token_on_top():
    fig = plots.top_token_bars(["␣the", "␣a"], np.array([0.6, 0.3]), "124M: next token")
    assert list(fig.layout.yaxis.ticktext) == ["␣the", "␣a"] and fig.layout.yaxis.autorange == "reversed"
    assert np.asarray(fig.data[0].x, dtype=float)[0] == pytest.approx(0.6)


def test_head_type_map_colours_each_label_the_same_in_every_map():
    kinds = ["induction", "previous-token", "mixed"]
    first = plots.head_type_map([["mixed", "induction"]], kinds, "a")
    second = plots.head_type_map([["induction", "previous-token"]], kinds, "b")
    assert np.asarray(first.data[0].z, dtype=float).tolist() == [[2, 0]]
    assert np.asarray(second.data[0].z, dtype=float).tolist() == [[0, 1]]
    assert first.data[0].colorscale == second.data[0].colorscale and first.data[0].zmax == 2.5
    assert first.data[0].text[0][1] == "induction"


def test_head_type_map_refuses_a_label_it_has_no_colour_for():
    with pytest.raises(ValueError, match="not among the kinds"):
        plots.head_type_map([["sink"]], ["mixed"], "a")
