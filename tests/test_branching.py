"""Branching generation as a tree: extend, branch to an alternative, go back, bounded."""

import pytest

from explorer.branching import Alternative, BranchLimitError, BranchTree, model_window

PROMPT = [6109, 3626, 6100, 345]  # "Every effort moves you"
TOP = (Alternative(284, "␣to", 0.4), Alternative(617, "␣forward", 0.3), Alternative(13, ".", 0.1))


def tree_with_two_steps():
    tree = BranchTree(PROMPT, "Every effort moves you")
    tree.extend(284, " to", 0.4, TOP)
    tree.extend(262, " the", 0.2, (Alternative(262, " the", 0.2), Alternative(257, " a", 0.1)))
    return tree


def test_extending_appends_tokens_to_the_path_and_moves_there():
    tree = tree_with_two_steps()
    assert tree.current == 2
    assert tree.path_ids() == PROMPT + [284, 262]
    assert tree.text() == "Every effort moves you to the"
    assert [node.depth for node in tree.path()] == [0, 1, 2]


def test_a_node_keeps_its_probability_and_the_alternatives_it_was_chosen_from():
    node = tree_with_two_steps().node(1)
    assert node.prob == 0.4 and node.alternatives == TOP


def test_branching_picks_any_alternative_as_a_sibling_and_continues_from_it():
    tree = tree_with_two_steps()
    sibling = tree.branch(1, 1)  # " forward" instead of " to"
    assert sibling.parent == 0 and sibling.token_id == 617 and sibling.prob == 0.3
    assert tree.current == sibling.index and tree.path_ids() == PROMPT + [617]
    assert sibling.alternatives == TOP  # the same distribution it was picked from
    tree.extend(11, ",", 0.5)
    assert tree.path_ids() == PROMPT + [617, 11]
    assert tree.path_ids(2) == PROMPT + [284, 262]  # the first branch is still there


def test_choosing_a_token_already_tried_returns_to_it_instead_of_copying():
    tree = tree_with_two_steps()
    again = tree.branch(2, 0)  # alternative 0 of node 2 is " the" itself
    assert again.index == 2 and len(tree.nodes) == 3
    tree.go_to(0)
    assert tree.extend(284, " to", 0.4, TOP).index == 1


def test_going_back_to_any_node_sets_the_path():
    tree = tree_with_two_steps()
    tree.go_to(1)
    assert tree.path_ids() == PROMPT + [284]
    tree.go_to(0)
    assert tree.path_ids() == PROMPT


def test_the_tree_is_bounded_in_nodes_with_a_clear_error():
    tree = BranchTree(PROMPT, "x", max_nodes=3)
    tree.extend(1, "a", 0.5, TOP)
    tree.extend(2, "b", 0.5, TOP)
    with pytest.raises(BranchLimitError, match="at most 3 tokens"):
        tree.extend(3, "c", 0.5, TOP)


def test_the_tree_is_bounded_in_depth_with_a_clear_error():
    tree = BranchTree(PROMPT, "x", max_depth=2)
    tree.extend(1, "a", 0.5)
    tree.extend(2, "b", 0.5)
    with pytest.raises(BranchLimitError, match="at most 2 tokens after the prompt"):
        tree.extend(3, "c", 0.5)


@pytest.mark.parametrize("call, message", [
    (lambda t: t.branch(1, 3), "alternative must be 0 to 2"),
    (lambda t: t.branch(0, 0), "prompt has no alternatives"),
    (lambda t: t.go_to(9), "node must be a whole number from 0 to 2"),
    (lambda t: t.go_to(True), "node must be"),
    (lambda t: t.extend(-1, "x", 0.5), "token_id must be"),
    (lambda t: t.extend(5, "x", 1.5), "prob must be in"),
    (lambda t: t.extend(5, "x", 0.5, [Alternative(1, "a", 2.0)]), "alternatives"),
])
def test_bad_requests_are_refused_with_a_message(call, message):
    with pytest.raises(ValueError, match=message):
        call(tree_with_two_steps())


def test_an_empty_prompt_is_refused():
    with pytest.raises(ValueError, match="empty"):
        BranchTree([], "")


def test_the_model_reads_the_whole_path_while_it_fits_the_context():
    tree = tree_with_two_steps()
    assert tree.model_input(n_ctx=64) == PROMPT + [284, 262]


def test_a_path_past_the_context_is_cut_to_a_window_that_ends_at_the_current_token():
    ids = list(range(70))
    window = model_window(ids, n_ctx=64)
    assert len(window) <= 64 and window[-1] == 69 and window == ids[-len(window):]


def test_plot_data_lists_every_node_and_the_current_one():
    tree = tree_with_two_steps()
    tree.branch(1, 2)
    parents, labels, probs, current = tree.plot_data()
    assert parents == [None, 0, 1, 0] and labels[3] == "." and probs[3] == 0.1 and current == 3


def test_the_window_follows_generates_sliding_rule_full_context_then_three_quarters():
    # gpt2.generate keeps all n_ctx tokens while they fit, then restarts at n_ctx - n_ctx // 4 (48 of 64)
    assert len(model_window(list(range(64)), n_ctx=64)) == 64
    assert len(model_window(list(range(65)), n_ctx=64)) == 48
    assert len(model_window(list(range(66)), n_ctx=64)) == 49
