"""The collapsed "The code" box of a tab: the lines of gpt2/model.py that compute what the tab shows.

The lines are cut from the running source (explorer/source.py), and their shape comments get
this prompt's numbers, e.g. `# (B, T, d_model) = (1, 7, 768)`. A tab makes one with
`code = code_view("attention")` inside its `gr.Tab` and hands it to `Tab(code=code)`; it is filled when the tab is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ... import source
from .shared import View


@dataclass
class CodeView:
    tab: str  # a key of source.SNIPPETS
    markdown: gr.Markdown

    def show(self, view: View) -> dict:
        trace = view.analysis.trace
        return {self.markdown: source.code_markdown(self.tab, trace.config, trace.n_tokens)}


def code_view(tab: str) -> CodeView:
    if tab not in source.SNIPPETS:
        raise ValueError(f"no code view for {tab!r}; tabs with one: {', '.join(source.TABS)}")
    with gr.Accordion("The code", open=False, elem_classes=["code-view"]):
        markdown = gr.Markdown("Analyze a prompt to see the code with its shapes.", label=f"Code: {tab}")
    return CodeView(tab, markdown)
