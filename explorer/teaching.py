"""The teaching texts shown under each panel, filled with the current prompt's numbers.

The texts are markdown files in assets/teaching/, written with `{placeholders}`
(Python format syntax, e.g. `{top_prob:.1%}`). Keeping prose out of the code lets a
teacher edit the explanations without touching Python.

A sentence that is only true for some prompts sits in a conditional section,

    <!-- if has_space -->A leading space belongs to the token ...<!-- end -->

kept when the caller passes `when={"has_space": True}` and dropped when False. Every
section's flag must be given, so a template and its caller cannot drift apart silently.
"""

from __future__ import annotations

import functools
import re

from gpt2.resources import ASSETS

TEACHING_DIR = ASSETS / "teaching"
PANELS = ("tokens", "embeddings", "attention", "head_walk", "block", "layers", "next_token", "surprise", "generate",
          "attribution", "patching", "training", "compare")
_SECTION = re.compile(r"<!-- if (not )?(\w+) -->\n?(.*?)<!-- end -->\n?", re.DOTALL)


@functools.cache
def template(panel: str) -> str:
    if panel not in PANELS:
        raise ValueError(f"no teaching text for {panel!r}")
    return (TEACHING_DIR / f"{panel}.md").read_text(encoding="utf-8")


def flags(text: str) -> set[str]:
    """The names of a template's conditional sections."""
    return {match.group(2) for match in _SECTION.finditer(text)}


def select_sections(text: str, when: dict[str, bool]) -> str:
    """Keep the sections whose flag holds (`<!-- if not x -->`: whose flag does not), drop the rest."""
    missing = flags(text) - set(when)
    if missing:
        raise ValueError(f"no value given for the template's section flags {sorted(missing)}")

    def keep(match: re.Match) -> str:
        negated, name, body = match.groups()
        return body if bool(when[name]) != bool(negated) else ""
    return _SECTION.sub(keep, text)


def render(panel: str, when: dict[str, bool] | None = None, **numbers) -> str:
    """The panel's text with its conditional sections chosen and its placeholders filled in."""
    return select_sections(template(panel), when or {}).format(**numbers)
