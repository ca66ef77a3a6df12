"""The map of the model beside the story and the tabs (explorer/model_map.py, tabs/parts/model_map.py):
drawn from the loaded model's config, its parts naming real tabs, and a click on a part opening that tab
(checked, since anyone can send the click). The page's side (lighting up the part in view, the phone's
bar) is checked in a real browser in test_browser_story.py."""

import dataclasses
from html.parser import HTMLParser

import gradio as gr
import pytest

from explorer import model_map, ui
from explorer.analysis import analyze
from explorer.budget import AnalysisBudget, AnalysisHandle
from explorer.model_facts import ModelFacts
from explorer.store import ModelStore

TAB_IDS = [module.__name__.rsplit(".", 1)[-1] for module in ui.TABS]


class Parts(HTMLParser):
    """Every element of the map with a data-* attribute, as (tag, {attribute: value})."""

    def __init__(self, page: str):
        super().__init__()
        self.elements = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if any(name.startswith("data-") for name in attrs):
            self.elements.append((tag, attrs))


def facts(n_layer: int, **sizes) -> ModelFacts:
    shape = dict(n_vocab=50257, n_ctx=1024, n_head=25, n_embd=1600, d_head=64, d_mlp=6400) | sizes
    return ModelFacts(name=f"{n_layer}-block model", origin="folder", n_layer=n_layer, parameters=10**9,
                      tokenizer_tokens=shape["n_vocab"], n_special=1, special_token="<|endoftext|>",
                      special_id=shape["n_vocab"] - 1, gpt2_tokenizer=True, openai_layout=False, data=None, **shape)


@pytest.mark.parametrize("n_layer", [1, 2, 12, 48])
def test_the_map_has_one_row_per_block_and_thin_rows_only_for_many_blocks(n_layer):
    page = model_map.model_map_html(facts(n_layer))
    parts = Parts(page).elements
    blocks = [a for tag, a in parts if a.get("data-kind") == "block"]
    assert [int(b["data-layer"]) for b in blocks] == list(range(n_layer))
    for kind in ("attention", "mlp"):
        assert [int(a["data-layer"]) for _, a in parts if a.get("data-kind") == kind] == list(range(n_layer))
    assert ("mm-many" in page) == (n_layer > model_map.MANY_BLOCKS)
    assert "25 heads × 64" in page and "1,600 → 6,400 → 1,600" in page and "1,600 → 50,257 logits" in page


def test_every_part_opens_a_real_tab_and_every_tab_but_about_lights_a_part():
    parts = Parts(model_map.model_map_html(facts(3))).elements
    clickable = {a["data-tab"] for tag, a in parts if tag == "button"}
    assert clickable <= set(TAB_IDS)
    assert {"tokens", "embeddings", "attention", "block", "layers", "next_token"} <= clickable
    lit = {tab for _, a in parts for tab in a.get("data-here", "").split()}
    assert lit == set(TAB_IDS) - {"about"}
    assert set(model_map.HERE) == lit and set(model_map.captions(facts(3))) == lit
    assert set(model_map.LAYERED) <= lit
    # In data order: tokens first, the next token last, every block between the embeddings and LN_f.
    kinds = [a["data-kind"] for tag, a in parts if tag == "button"]
    assert kinds[:2] == ["tokens", "embeddings"] and kinds[-3:] == ["ln_f", "unembed", "next"]


def test_a_models_name_is_escaped_in_its_map():
    page = model_map.model_map_html(dataclasses.replace(facts(1), name="<b onclick=x>evil</b>"))
    assert "<b onclick" not in page and "&lt;b onclick=x&gt;evil&lt;/b&gt;" in page


# ------------------------------------------------------------------------- a click on a part, in the app

@pytest.fixture(scope="module")
def page(tiny_checkpoint_dir):
    store = ModelStore(tiny_checkpoint_dir, sizes=[])
    budget = AnalysisBudget(2**28)
    app = ui.build_app(store, budget=budget)
    loaded = store.get(store.default)
    prompt = "Every effort moves you forward, every effort moves you"
    key = budget.new_key("visitor")
    budget.put(key, analyze(loaded, prompt))
    handle = AnalysisHandle(key, loaded.name, prompt, 8, 7)
    values = {"layer": 0, "head": 2, "mean_heads": False, "block_layer": 0, "lens_positions": 8,
              "temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 0}
    return app, handle, values, loaded


def click(page, data, handle="handle"):
    app, the_handle, values, _ = page
    return app.explorer_map.open_part(the_handle if handle == "handle" else handle, None,
                                      gr.EventData(None, data), **values)


def by_label(result: dict) -> dict:
    return {getattr(c, "label", None) or getattr(c, "elem_id", None) or type(c).__name__: v
            for c, v in result.items()}


def test_clicking_a_blocks_attention_opens_attention_at_that_layer_and_keeps_the_head(page):
    app, _, values, loaded = page
    out = click(page, {"tab": "attention", "layer": 1})
    tabs_update = next(v for c, v in out.items() if isinstance(c, gr.Tabs))
    assert tabs_update.selected == "attention"
    labels = by_label(out)
    assert labels["Layer"]["value"] == 1 and labels["Head"]["value"] == values["head"]
    assert "Layer 1, head 2" in labels["Attention heatmap"].layout.title.text


def test_clicking_a_part_outside_the_blocks_opens_and_builds_its_tab(page):
    out = click(page, {"tab": "layers", "layer": None})
    assert next(v for c, v in out.items() if isinstance(c, gr.Tabs)).selected == "layers"
    assert by_label(out)["Logit lens"] is not None


def test_a_click_before_any_analysis_only_switches_the_tab(page):
    out = click(page, {"tab": "next_token"}, handle=None)
    assert [v.selected for c, v in out.items() if isinstance(c, gr.Tabs)] == ["next_token"]


@pytest.mark.parametrize("data, message", [
    ({"tab": "../etc/passwd"}, "Map part must be one of: tokens"),
    ({"tab": None}, "Map part must be one of"),
    ("not a dict", "Map part must be one of"),
    ({"tab": "attention", "layer": 2}, "Map layer must be a whole number from 0 to 1"),
    ({"tab": "block", "layer": "1"}, "Map layer must be a whole number from 0 to 1"),
    ({"tab": "attention", "layer": 0.5}, "Map layer must be a whole number from 0 to 1"),
])
def test_a_click_the_page_would_never_send_gets_a_message_saying_what_is_allowed(page, data, message):
    with pytest.raises(gr.Error) as err:
        click(page, data)
    assert message in str(err.value.message)
