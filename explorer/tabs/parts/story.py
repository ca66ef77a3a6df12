"""The guided story: Back/Next cards above the tabs that walk a learner through the model.

Each card (explorer/story.py) names a tab, the controls to set and the explanation to open,
and a text with this prompt's numbers. Showing a card selects its tab (`gr.Tabs(selected=id)`,
a tab's id is its module's name) and hands the card's controls to that tab's `story` function,
which sets them and redraws what they change; a tab that owns controls the card's tab does not
(the Generate card's sampling settings belong to Next token) is handed them too.

The learner can leave the story (the strip hides, a button brings it back) and come back to
the card they left. Example prompts show why they are worth running; clicking one runs it and
opens the story at the example's card.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr

from ... import story as cards
from .open_tabs import OpenTabs, is_fresh, marked
from .shared import Shared, View, user_errors

START = {"index": 0, "on": True}  # a visitor's place in the story


@dataclass
class StoryStrip:
    shared: Shared
    state: gr.State
    column: gr.Column
    card: gr.Markdown
    back: gr.Button
    next: gr.Button
    leave: gr.Button
    resume: gr.Button
    tabs: gr.Tabs | None = None
    open_tabs: OpenTabs | None = None  # the tabs by id, and which of them the page shows up to date

    @property
    def by_id(self) -> dict:
        return self.open_tabs.tabs

    @property
    def outputs(self) -> list:
        """Every component showing a card may change."""
        changed = [self.state, self.column, self.card, self.back, self.next, self.resume, self.tabs,
                   self.open_tabs.open_tab, self.open_tabs.shown, *self.open_tabs.outputs]
        for tab in self.by_id.values():
            changed += tab.story_outputs
        return list(dict.fromkeys(changed))  # once each, in order

    def place(self, state) -> dict:
        """The strip shown or hidden, as the visitor's state says."""
        on = bool((state or START)["on"])
        return {self.column: gr.Column(visible=on), self.resume: gr.Button(visible=not on)}

    def show_card(self, analysis, loaded, index: int, why: str | None = None, *, handle=None, shown=None,
                  values: dict | None = None) -> dict:
        """Card `index` for this analysis: its text, its tab selected, its controls set and panels redrawn.

        With the visitor's `handle`, `shown` and control `values`, the card's tab is first built whole
        if the page does not show it for this analysis yet (tabs/parts/open_tabs.py)."""
        card = cards.story_card(index, analysis, loaded)
        had_lens = analysis.lens is not None
        unknown = set(card["controls"]) - set().union(*(tab.story_keys for tab in self.by_id.values()))
        if unknown:  # a card whose controls no tab applies would silently leave them as they were
            raise KeyError(f"story card {index} sets {', '.join(sorted(unknown))}, which no tab's story_keys lists")
        view = View(analysis, loaded, card["controls"])
        home = self.by_id[card["tab"]]
        result = {}
        if handle is not None and not is_fresh(handle, shown, card["tab"]):
            page_view = View(analysis, loaded, {**(values or {}), **card["controls"]})
            result = self.open_tabs.panels(card["tab"], page_view) | {
                self.open_tabs.shown: marked(handle, shown, card["tab"])}
        for tab_id, tab in self.by_id.items():
            keys = tab.story_keys & card["controls"].keys()
            if tab.story is not None and (tab is home or (keys and not keys <= home.story_keys)):
                result |= tab.story(view, card["explanation"] if tab is home else "")
        if not had_lens and analysis.lens is not None:  # the Layers card's text reads the lens its tab just made
            card = cards.story_card(index, analysis, loaded)
        text = card["markdown"] + (f"\n\n*Why this example:* {why}" if why else "")
        return result | {
            self.card: text, self.tabs: gr.Tabs(selected=card["tab"]), self.open_tabs.open_tab: card["tab"],
            self.back: gr.Button(interactive=index > 0), self.next: gr.Button(interactive=index < card["count"] - 1),
            self.state: {"index": index, "on": True}} | self.place({"on": True})

    def for_prompt(self, prompt: str, state) -> tuple[int, str | None]:
        """The card Analyze opens: an example's own card, else the card the visitor is on."""
        why = cards.example_why(prompt, EXAMPLES)
        if why is not None:
            return cards.card_for_example(prompt, EXAMPLES), why
        return int((state or START)["index"]), None

    def connect(self, tabs: gr.Tabs, open_tabs: OpenTabs) -> None:
        """Wire Back, Next, Leave and Resume once the tabs exist."""
        self.tabs, self.open_tabs = tabs, open_tabs
        shared = self.shared

        def step(delta: int):
            @user_errors
            def go(handle, state, shown, **values) -> dict:
                analysis, loaded = shared.analysis_of(handle)
                index = min(max(int((state or START)["index"]) + delta, 0), len(cards.CARDS) - 1)
                result = self.show_card(analysis, loaded, index, handle=handle, shown=shown, values=values)
                shared.remember(handle)  # a card may have widened the lens or measured the surprise
                return result
            return go

        for button, delta, name in ((self.back, -1, "story_back"), (self.next, 1, "story_next"),
                                    (self.resume, 0, "story_resume")):
            button.click(step(delta), inputs=[shared.analysis, self.state, open_tabs.shown],
                         inputs_kwargs=open_tabs.values, outputs=self.outputs, api_name=name,
                         api_visibility="undocumented", show_progress="minimal")

        def leave(state) -> dict:
            state = {**(state or START), "on": False}
            return {self.state: state} | self.place(state)
        self.leave.click(leave, inputs=[self.state], outputs=[self.state, self.column, self.resume],
                         api_visibility="private", queue=False)


EXAMPLES = cards.load_examples()


def build(shared: Shared) -> StoryStrip:
    """The card strip (placed where this is called: above the tabs) and the button that brings it back."""
    state = gr.State(dict(START), time_to_live=1800)
    with gr.Column(elem_id="story", elem_classes=["story"]) as column:
        card = gr.Markdown("Loading the story…", label="Story card", elem_id="story-card")
        with gr.Row(elem_classes=["story-buttons"]):
            back = gr.Button("← Back", size="sm", interactive=False, elem_id="story-back", min_width=80)
            next_button = gr.Button("Next →", size="sm", variant="primary", elem_id="story-next", min_width=80)
            leave = gr.Button("Leave the story", size="sm", variant="secondary", elem_id="story-leave", min_width=80)
    resume = gr.Button("Back to the story", size="sm", visible=False, elem_id="story-resume")
    return StoryStrip(shared, state, column, card, back, next_button, leave, resume)


def examples_table(prompt: gr.Textbox) -> gr.Dataset:
    """The example prompts with why each is worth running; `pick` puts the clicked one in the prompt."""
    # The why as HTML: a Textbox or Markdown column would cut it after 60 characters.
    # Which models each example is for leads its why (a third column would not fit a phone).
    return gr.Dataset(components=[gr.Textbox(visible=False), gr.HTML(visible=False)],
                      samples=[[e["prompt"], f"<b>For {cards.EXAMPLE_MODELS[e['for']]}.</b> {html.escape(e['why'])}"]
                               for e in EXAMPLES],
                      headers=["Example prompt", "Why try it"],
                      type="index", label="Example prompts: click one to run it", samples_per_page=len(EXAMPLES),
                      elem_id="examples")


def pick(index, state) -> tuple[str, dict]:
    """The clicked example's prompt, and the story switched on (Analyze then opens the example's card)."""
    try:
        example = EXAMPLES[int(index)]
    except (TypeError, ValueError, IndexError):
        raise gr.Error(f"Example: choose one of the {len(EXAMPLES)} examples", print_exception=False) from None
    return example["prompt"], {**(state or START), "on": True}
