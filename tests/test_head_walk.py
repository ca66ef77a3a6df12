import numpy as np
import pytest

from explorer import head_walk, heads
from explorer.analysis import analyze


@pytest.fixture(scope="module")
def analysis(loaded):
    return analyze(loaded, "one two three one two three")


@pytest.mark.parametrize("layer,head,query", [(0, 0, 0), (1, 2, 4), (1, 3, 5)])
def test_softmax_of_the_scaled_scores_is_the_recorded_pattern(loaded, analysis, layer, head, query):
    walk = head_walk.walk_head(loaded.model, analysis.trace, layer, head, query)
    np.testing.assert_allclose(walk.weights, analysis.trace.attention[layer, head, query, : query + 1], atol=2e-3)
    np.testing.assert_allclose(walk.scaled, walk.dot / np.sqrt(walk.d_head))


def test_scaled_scores_are_the_score_row_heads_computes(loaded, analysis):
    walk = head_walk.walk_head(loaded.model, analysis.trace, 1, 2, 4)
    expected = heads.attention_scores_row(loaded.model, analysis.trace, 1, 2, 4)
    np.testing.assert_allclose(walk.scaled, expected, atol=1e-4, rtol=1e-4)


def test_weighted_sum_of_values_is_the_heads_output_z(loaded, analysis):
    walk = head_walk.walk_head(loaded.model, analysis.trace, 1, 1, 5)
    np.testing.assert_allclose(walk.weights @ walk.values, walk.z, atol=1e-6)
    np.testing.assert_allclose(walk.z, heads.head_z(loaded.model, analysis.trace, 1)[5, 1], atol=1e-4, rtol=1e-4)


def test_output_is_the_heads_contribution_to_the_stream(loaded, analysis):
    walk = head_walk.walk_head(loaded.model, analysis.trace, 0, 3, 4)
    expected = heads.head_outputs(loaded.model, analysis.trace, 0)[4, 3]
    np.testing.assert_allclose(walk.output, expected, atol=1e-4, rtol=1e-4)


def test_walk_table_lists_only_visible_keys_largest_weight_first(loaded, analysis):
    walk = head_walk.walk_head(loaded.model, analysis.trace, 1, 0, 2)
    table = head_walk.walk_table(walk, analysis.trace.tokens)
    rows = [line for line in table.splitlines()[2:]]
    assert len(rows) == 3
    listed = [float(row.split("|")[5]) for row in rows]
    assert listed == sorted(listed, reverse=True)
