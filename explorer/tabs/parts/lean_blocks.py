"""`LeanBlocks`: the page's gr.Blocks, changed in two places where Gradio's defaults cost the server
and the page.

How an event's answer is made. The page's events name many outputs (Analyze names every tab's
panels, since any tab may be the open one) and a handler fills a few. For each output left out,
Gradio builds a new copy of the component and keeps it in the visitor's session, only to send the
page an empty update; with ~100 outputs that adds up to a good part of making Analyze's answer
(benchmarks/README.md, page_latency.py). Here those outputs get the same empty update directly.

Where an event shows its progress: on at most one component, and never on a figure. The page keeps a
loading status for every component any event has shown progress on, and at the start and end of
*every* event it writes all of them again, changed or not, taking a copy of each one's properties
first: for a figure that is a copy of the whole figure. With Gradio's default (all outputs) that was
every output of every event, ~125 components and 25-40 ms of the page's main thread twice per event;
with one figure per event it was still a copy of each figure an event had ever shown progress on,
before an Analyze's request left the page and again before its figure was drawn. So:
- an event with hidden progress shows it nowhere (no component is tracked for it);
- an event that names its `show_progress_on` keeps it;
- any other shows it on its first output the page can show, unless that is a figure; then on the
  page's status line (`LeanBlocks.status_line`, set by ui.py), which sits just above the tabs.
"""

from __future__ import annotations

from copy import copy

import gradio as gr
from gradio.blocks import Block


class LeanBlocks(gr.Blocks):
    """gr.Blocks whose events pass over the outputs a handler left out and show their progress on at most
    one component, never a figure (see the module's docstring)."""

    status_line: gr.components.Component | None = None  # where progress shows instead of on a figure

    def __exit__(self, exc_type=None, *args):
        if exc_type is None:
            for block_fn in self.fns.values():
                block_fn.show_progress_on = self.progress_target(block_fn)
        return super().__exit__(exc_type, *args)

    def progress_target(self, block_fn) -> list:
        """The one component (or none) an event shows its progress on; see the module's docstring."""
        if block_fn.show_progress == "hidden":
            return []
        if block_fn.show_progress_on is not None:
            return list(block_fn.show_progress_on)
        shown = [block for block in block_fn.outputs if not block.stateful
                 and not isinstance(block, gr.blocks.BlockContext)]
        if shown and isinstance(shown[0], gr.Plot):
            return [self.status_line] if self.status_line is not None else []
        return shown[:1]  # none, when it fills only states and layout

    async def postprocess_data(self, block_fn, predictions, state) -> list:
        outputs = list(block_fn.outputs)
        if not (isinstance(predictions, dict) and predictions and all(isinstance(k, Block) for k in predictions)):
            return await super().postprocess_data(block_fn, predictions, state)
        filled = {c._id: value for c, value in predictions.items()}
        kept = [block for block in outputs if block._id in filled]
        if len(kept) != len(filled) or len(kept) == len(outputs):  # a stranger answer, or nothing left out
            return await super().postprocess_data(block_fn, predictions, state)
        subset = copy(block_fn)
        subset.outputs = kept
        # With a single output Gradio takes the handler's answer to be that output's value.
        answers = await super().postprocess_data(subset, predictions if len(kept) > 1 else filled[kept[0]._id],
                                                 state)
        by_id = dict(zip((block._id for block in kept), answers, strict=True))
        return [by_id[block._id] if block._id in by_id else None if block.stateful else {"__type__": "update"}
                for block in outputs]
