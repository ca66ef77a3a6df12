import pytest
import torch

import gpt2
from explorer import about
from explorer.model_facts import model_facts
from gpt2.checkpoint import to_torch_layout, torch_name


@pytest.fixture(scope="module")
def meta_124m():
    """GPT-2 124M's shapes without its memory: parameters on the meta device."""
    with torch.device("meta"):
        return gpt2.GPT2(gpt2.GPTConfig.preset("124M"))


def test_124m_breaks_down_as_the_paper_shapes_say(meta_124m):
    count = about.parameter_count(meta_124m)
    assert (count.wte, count.wpe, count.per_block, count.n_blocks, count.ln_f) == (
        50257 * 768, 1024 * 768, 7_087_872, 12, 2 * 768)
    assert count.total == 124_439_808 == meta_124m.num_parameters()


def test_untied_head_adds_one_more_embedding_matrix(meta_124m):
    assert about.parameter_count(meta_124m).untied_total == 124_439_808 + 50257 * 768


def test_breakdown_sums_to_the_model_total(tiny_model):
    count = about.parameter_count(tiny_model)
    assert count.total == tiny_model.num_parameters()
    assert sum(count.block_parts.values()) == count.per_block


def test_openai_names_map_back_through_the_loader(tiny_model):
    for theirs, _, ours, _, _ in about.checkpoint_rows(tiny_model):
        assert torch_name(theirs) == ours


def test_checkpoint_shapes_become_ours_through_the_loaders_layout_rule(tiny_model, tiny_weights):
    for theirs, their_shape, _, our_shape, transposed in about.checkpoint_rows(tiny_model):
        assert tiny_weights[theirs].shape == their_shape
        assert tuple(to_torch_layout(theirs, tiny_weights[theirs]).shape) == our_shape
        assert transposed == theirs.endswith("/w")


def test_about_page_quotes_the_loaded_models_numbers(tiny_model):
    text = about.about_markdown(tiny_model, model_facts("a random model", tiny_model, openai_layout=True))
    count = about.parameter_count(tiny_model)
    assert f"{count.total:,}" in text and f"{count.untied_total:,}" in text
    assert f"{tiny_model.config.n_ctx:,} positions" in text
