"""Controls that check what they receive before any handler runs, and the shared explanation box.

Gradio converts a control's value (`preprocess`) before calling a handler; for a slider it
compares the value with its range and says "Value -1 is less than minimum value 0" without
naming the control, and a string or NaN gets a generic error. These subclasses hand every
value to explorer/validation.py instead, so the visitor reads which field was wrong and what
it accepts. `is_template` makes Gradio draw them as the built-in component they extend.

They keep the built-in constructor (Gradio reads a component's properties from its signature),
so a control's own check is attached with `checked(Slider(...), validation.temperature)`.
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from ... import validation

ANALYZE_FIRST = "Analyze a prompt to see this panel explained with its own numbers."


def _checked(check: Callable, value):
    try:
        return check(value)
    except validation.BadInput as err:
        raise gr.Error(str(err), print_exception=False) from None


def checked(component, check: Callable):
    """Attach a check (a validation.py function) to one of the controls below."""
    component.check = check
    return component


class Slider(gr.Slider):
    """A slider whose value must be a finite number in its current range (whole if its step is)."""

    is_template = True

    check: Callable | None = None  # set with `checked`

    def preprocess(self, payload):
        if self.check is not None:
            return _checked(self.check, payload)
        whole = float(self.step).is_integer()
        return _checked(lambda v: validation.number(self.label, v, self.minimum, self.maximum, whole), payload)


class Number(gr.Number):
    """A number field checked by `check` (e.g. validation.seed)."""

    is_template = True

    check: Callable | None = None  # set with `checked`

    def preprocess(self, payload):
        return _checked(self.check or (lambda v: v), payload)


class Checkbox(gr.Checkbox):
    is_template = True

    def preprocess(self, payload):
        return _checked(lambda v: validation.flag(self.label, v), payload)


class Textbox(gr.Textbox):
    """A text field checked by `check` (e.g. validation.prompt)."""

    is_template = True

    check: Callable | None = None  # set with `checked`

    def preprocess(self, payload):
        return _checked(self.check or (lambda v: v), payload)


class Dropdown(gr.Dropdown):
    """A single choice that must be one of the current choices."""

    is_template = True

    def preprocess(self, payload):
        choices = [value for _, value in self.choices]
        return _checked(lambda v: validation.choice(self.label, v, choices), payload)


def explanation(label: str, open: bool = False, title: str = "How this works") -> gr.Markdown:
    """A panel's collapsible teaching text, filled in once a prompt is analysed (`label` names it in the API).

    The markdown carries its accordion as `.accordion`, so the story can open it (`opened`).
    """
    with gr.Accordion(title, open=open) as accordion:
        text = gr.Markdown(ANALYZE_FIRST, label=label)
    text.accordion = accordion
    return text


def opened(text: gr.Markdown) -> dict:
    """The update that opens an explanation's accordion."""
    return {text.accordion: gr.Accordion(open=True)}


def index_slider_update(count: int, value: int, sent: int | None = None) -> dict:
    """A 0..count-1 slider set to `value`. With one choice (one token, one layer) its range stays 0..1,
    which Gradio accepts where 0..0 is refused, and it is disabled: there is nothing to choose.

    `sent` is the value the slider had when the request left the page. When `value` equals it the
    update leaves the value alone, so a number the learner typed while the tab was being built is
    not put back."""
    update = gr.update(maximum=max(1, count - 1), interactive=count > 1)
    return update if value == sent else update | {"value": value}
