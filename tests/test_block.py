import numpy as np
import pytest

from explorer import block
from explorer.analysis import analyze


@pytest.fixture(scope="module")
def analysis(loaded):
    return analyze(loaded, "The cat sat on the mat because the cat")


@pytest.mark.parametrize("layer,position", [(0, 0), (1, 5), (1, -1)])
def test_recomputed_mlp_output_equals_what_the_trace_recorded(loaded, analysis, layer, position):
    trace = analysis.trace
    position %= trace.n_tokens
    view = block.open_block(loaded.model, trace, layer, position)
    np.testing.assert_allclose(view.mlp_out, trace.mlp_out[layer, position], atol=1e-4, rtol=1e-4)


def test_layer_norm_centres_and_scales_before_gamma_and_beta(loaded, analysis):
    ln = block.open_block(loaded.model, analysis.trace, 1, 2).ln_1
    assert abs(ln.normalised.mean()) < 1e-5 and abs(ln.normalised.std() - 1) < 1e-3
    np.testing.assert_allclose(ln.output, ln.gamma * ln.normalised + ln.beta, atol=1e-5)
    assert ln.mean == pytest.approx(float(ln.input.mean()), abs=1e-5)


def test_layer_norm_input_is_the_blocks_residual_stream(loaded, analysis):
    view = block.open_block(loaded.model, analysis.trace, 1, 3)
    np.testing.assert_array_equal(view.ln_1.input, analysis.trace.residual[1, 3])
    np.testing.assert_array_equal(view.ln_2.input, analysis.trace.resid_mid[1, 3])


def test_mlp_has_four_times_d_model_neurons_on_the_gelu_curve(loaded, analysis):
    view = block.open_block(loaded.model, analysis.trace, 0, 1)
    assert view.d_mlp == 4 * analysis.trace.config.n_embd
    np.testing.assert_allclose(view.mlp_post, block.gelu(view.mlp_pre), atol=1e-5)


def test_most_active_neurons_come_first(loaded, analysis):
    view = block.open_block(loaded.model, analysis.trace, 0, 1, top=5)
    active = view.mlp_post[view.top_neurons]
    assert len(active) == 5 and np.all(np.diff(active) <= 0) and active[0] == view.mlp_post.max()


@pytest.mark.parametrize("layer,position,field", [(2, 0, "Layer must be a whole number from 0 to 1"),
                                                  (-1, 0, "Layer"), (0, 99, "Position"), ("x", 0, "whole number")])
def test_out_of_range_selection_names_the_field(loaded, analysis, layer, position, field):
    with pytest.raises(ValueError, match=field):
        block.open_block(loaded.model, analysis.trace, layer, position)


def test_gelu_is_gpt2s_tanh_form():
    x = np.array([-3.0, -1.0, 0.0, 1.0, 3.0])
    expected = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(block.gelu(x), expected)
    assert block.gelu(np.array([0.0]))[0] == 0 and block.gelu(np.array([10.0]))[0] == pytest.approx(10.0)


def test_summary_counts_positive_pre_activations(loaded, analysis):
    view = block.open_block(loaded.model, analysis.trace, 1, 0)
    summary = block.block_summary(view)
    assert summary["n_positive"] == int((view.mlp_pre > 0).sum()) and summary["d_mlp"] == view.d_mlp
    assert "| " + str(summary["top_neuron"]) + " |" in block.neuron_table(view)
