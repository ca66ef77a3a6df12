"""One module per tab of the app: its components, its events, its handlers.

The pattern every tab follows (tokens.py is the smallest example, attention.py the fullest):

    def build(shared: Shared) -> Tab:
        with gr.Tab("Name"):
            slider = Slider(1, 32, value=8, step=1, label="Window")   # controls.py: checked controls
            plot = gr.Plot(label="Name plot", show_label=False)      # a label names it in the API
            text = explanation("Name explained")

        def show(view: View) -> dict:                       # builds the tab for one analysis (below)
            return {plot: ..., text: ...}                   # a dict keyed by component

        @user_errors                                        # errors a visitor causes -> a readable message
        def redraw(handle, value) -> dict:
            analysis, loaded = shared.analysis_of(handle)   # kept, or recomputed if the budget dropped it
            return {plot: ..., text: ...}

        slider.input(redraw, inputs=[shared.analysis, slider], outputs=[plot, text],
                     api_name="name", api_visibility="undocumented")
        return Tab(show=show, outputs=[plot, text], inputs={"window": slider})

- `show` builds the whole tab for one analysis. It is called when the tab is built: by Analyze
  when the tab is open, else the first time the visitor opens it after that Analyze, or by the
  story when a card opens it (parts/open_tabs.py). The page keeps what it was sent, so a tab is
  built at most once per analysis; a tab never builds another tab's panels.
- `Tab.inputs` are the tab's controls whose values `show` needs, by keyword name: they become
  Analyze's API parameters (e.g. `layer`, `temperature`) and reach `show` as `view.values[name]`,
  already checked by the controls (controls.py, validation.py).
- `Tab.outputs` lists every component `show` may fill; `show` returns a dict of some of them.
- `Tab.controls` publishes components another tab reads (the sampling sliders, used by Generate).
- `Tab.code` is the tab's "The code" box (`code_view("name")`, made inside its gr.Tab); it is built with the tab.
- `Tab.story(view, explanation)` applies a story card (story.py): it sets the card's controls
  (`view.values`, the keys in `Tab.story_keys`), redraws what they change and opens the named
  explanation (`opened(text)`); what it may return beyond `outputs` is listed in `Tab.story_outputs`.
- A tab's id, `gr.Tab(label, id=...)`, is its module's name: the story selects tabs by it.

Adding a panel touches one place: a new module with `build`, named in ui.TABS (or a component
added inside an existing tab's module). A handler that runs a forward pass (a capture, a lens
over the vocabulary, a generation step) does it inside `with shared.compute():`, one pass at a
time for the whole app. No handler keeps an analysis itself: the budget keeps it
(explorer/budget.py) and the visitor's gr.State (`shared.analysis`) holds only its handle; a
handler that caches something new on the analysis calls `shared.remember(handle)` so the
budget counts it. Per-visitor state of a tab's own (like Generate's step state) is a small
gr.State made in the tab's module.
"""

from .parts.shared import Shared, Tab, View, user_errors

__all__ = ["Shared", "Tab", "View", "user_errors"]
