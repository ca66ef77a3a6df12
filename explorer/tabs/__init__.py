"""One module per tab of the app: its components, its events, its handlers.

The pattern every tab follows (tokens.py is the smallest example, attention.py the fullest):

    def build(shared: Shared) -> Tab:
        with gr.Tab("Name"):
            ...components...                       # laid out here, nowhere else
        some_slider.input(redraw, inputs=[shared.analysis, ...], outputs=[...])  # its own events

        @user_errors
        def redraw(handle, value):
            analysis, loaded = shared.analysis_of(handle)    # kept or, if dropped, recomputed
            return {plot: ..., text: ...}                    # a dict keyed by component

        def show(view: View) -> dict:                        # called by Analyze
            return {plot: ..., text: ...}

        return Tab(show=show, outputs=[plot, text], inputs={"name": some_slider})

- `Tab.inputs` are the tab's controls whose values Analyze needs, by keyword name: they become
  Analyze's API parameters (e.g. `layer`, `temperature`) and reach `show` as `view.values[name]`,
  already checked by the controls (controls.py, validation.py).
- `Tab.outputs` lists every component `show` may fill; `show` returns a dict of some of them.
- `Tab.controls` publishes components another tab reads (the sampling sliders, used by Generate).

Adding a panel touches one place: a new module with `build`, named in ui.TABS (or a component
added inside an existing tab's module). Handlers never run the model outside
`shared.compute()`, and never keep an analysis themselves: the budget keeps it
(explorer/budget.py), the visitor's gr.State holds only its handle.
"""

from .shared import Shared, Tab, View, user_errors

__all__ = ["Shared", "Tab", "View", "user_errors"]
