"""Every value a visitor can send, checked in one place per field (no Gradio here).

A public app gets whatever a browser, a script or a raw HTTP post sends: strings or null
where numbers go, NaN, infinities, booleans, lists, values far out of range. Each
function below takes such a raw value and returns it in the type the code needs, or
raises `BadInput`, a ValueError whose message names the field and says what is allowed.
The UI's controls (tabs/parts/controls.py) call these before any handler runs, so handlers see
only valid values.
"""

from __future__ import annotations

import math
from numbers import Real

MAX_PROMPT_CHARS = 20_000
MAX_NEW_TOKENS = 256
MIN_TEMPERATURE = 0.01  # below this (and above 0) logits / T overflows float32: 0 means greedy
MAX_TEMPERATURE = 2.0
MAX_TOP_K = 200
MIN_TOP_P = 0.01
MAX_SEED = 2**63 - 1


class BadInput(ValueError):
    """A value a visitor sent that the app cannot use; the message is shown to them as is."""


def _describe(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def number(field: str, value, minimum: float, maximum: float, whole: bool = False) -> float | int:
    """A finite number in [minimum, maximum] (a whole one if `whole`)."""
    kind = "a whole number" if whole else "a number"
    allowed = f"{field} must be {kind} from {minimum:g} to {maximum:g}"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise BadInput(f"{allowed}; got {_describe(value)}")
    value = float(value)
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise BadInput(f"{allowed}; got {_describe(value)}")
    if whole:
        if value != int(value):
            raise BadInput(f"{allowed}; got {_describe(value)}")
        return int(value)
    return value


def layer_and_head(layer, head, n_layer: int, n_head: int) -> tuple[int, int]:
    """A layer and a head of a model with `n_layer` layers of `n_head` heads, as whole numbers."""
    return number("Layer", layer, 0, n_layer - 1, whole=True), number("Head", head, 0, n_head - 1, whole=True)


def index(field: str, value, count: int) -> int:
    """A position among `count` (a token of the prompt, a layer): a whole number from 0 to count - 1."""
    return number(field, value, 0, count - 1, whole=True)


def flag(field: str, value) -> bool:
    if not isinstance(value, bool):
        raise BadInput(f"{field} must be true or false; got {_describe(value)}")
    return value


def prompt(value, field: str = "Prompt") -> str:
    if not isinstance(value, str):
        raise BadInput(f"{field} must be text; got {_describe(value)}")
    if not value.strip():
        raise BadInput(f"{field}: the prompt is empty: type some text first.")
    if len(value) > MAX_PROMPT_CHARS:
        raise BadInput(f"{field} must be at most {MAX_PROMPT_CHARS:,} characters long; got {len(value):,}")
    return value


def choice(field: str, value, choices: list[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise BadInput(f"{field} must be one of: {', '.join(choices)}; got {_describe(value)}")
    return value


def temperature(value, field: str = "Temperature") -> float:
    allowed = f"{field} must be 0 (greedy) or from {MIN_TEMPERATURE} to {MAX_TEMPERATURE:g}"
    try:
        value = number(field, value, 0.0, MAX_TEMPERATURE)
    except BadInput:
        raise BadInput(f"{allowed}; got {_describe(value)}") from None
    if 0 < value < MIN_TEMPERATURE:
        raise BadInput(f"{allowed}; got {_describe(value)}")
    return value


def top_k(value, field: str = "Top-k") -> int:
    return number(field, value, 0, MAX_TOP_K, whole=True)


def top_p(value, field: str = "Top-p") -> float:
    return number(field, value, MIN_TOP_P, 1.0)


def seed(value, field: str = "Seed") -> int | None:
    """A seed, or None (an empty field) for a fresh random draw."""
    if value is None or value == "":
        return None
    return number(field, value, 0, MAX_SEED, whole=True)


def max_new_tokens(value, field: str = "Max new tokens") -> int:
    return number(field, value, 1, MAX_NEW_TOKENS, whole=True)
