"""The map of the model beside the story and the tabs: the whole model, the part in view lit up.

explorer/model_map.py draws it from the loaded model; assets/model_map.js lights the parts the open
tab shows, in the page, and sends a click on a part here, where it opens the part's tab (for a part
inside a block, at that block's layer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from gpt2.resources import ASSETS

from ... import validation
from ...budget import AnalysisHandle
from ...model_map import LAYERED, model_map_html
from .open_tabs import OpenTabs
from .shared import Shared, user_errors

MAP_JS = (ASSETS / "model_map.js").read_text(encoding="utf-8")


@dataclass
class ModelMap:
    shared: Shared
    html: gr.HTML
    open_part: Callable | None = None  # the click's handler, once connected (tests call it directly)

    def for_model(self, loaded, handle=None) -> dict:
        """The map of `loaded`'s model, or nothing to send when the page already shows that model's map
        (`handle` is the visitor's previous analysis)."""
        if isinstance(handle, AnalysisHandle) and handle.model_name == loaded.name:
            return {}
        return {self.html: model_map_html(loaded.facts)}

    def connect(self, open_tabs: OpenTabs) -> None:
        shared = self.shared

        @user_errors
        def clicked(handle, shown, event: gr.EventData, **values) -> dict:
            data = event._data if isinstance(event._data, dict) else {}
            tab_id = validation.choice("Map part", data.get("tab"), list(open_tabs.tabs))
            if not isinstance(handle, AnalysisHandle):  # nothing analysed yet: the tab alone
                return {open_tabs.strip: gr.Tabs(selected=tab_id), open_tabs.open_tab: tab_id}
            analysis, loaded = shared.analysis_of(handle)
            if tab_id in LAYERED and data.get("layer") is not None:
                layer = validation.index("Map layer", data["layer"], analysis.trace.config.n_layer)
                keep = {"attention": ("head", "mean_heads")}.get(tab_id, ())  # the learner's head stays
                return open_tabs.go_to(tab_id, handle, shown, values,
                                       {"layer": layer, **{k: values[k] for k in keep if k in values}})
            return open_tabs.build(tab_id, handle, shown, values) | {open_tabs.strip: gr.Tabs(selected=tab_id)}

        self.open_part = clicked
        outputs = list(dict.fromkeys(c for tab_id in open_tabs.tabs for c in open_tabs.go_to_outputs(tab_id)))
        self.html.click(clicked, inputs=[shared.analysis, open_tabs.shown], inputs_kwargs=open_tabs.values,
                        outputs=outputs, api_name="open_map_part", api_visibility="undocumented",
                        queue=shared.queue_views, show_progress="minimal")


def build(shared: Shared) -> ModelMap:
    """The map (placed where this is called); filled by Analyze with the analysed model's map."""
    html = gr.HTML("", label="Model map", js_on_load=MAP_JS, elem_id="model-map", apply_default_css=False)
    return ModelMap(shared, html)
