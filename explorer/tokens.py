"""How a GPT-2 token is shown to a learner.

GPT-2's tokens are byte strings, not text: " moves" carries its leading space, a
newline is a token of its own, and a character outside ASCII may be split across two
or three tokens that are each an incomplete piece of UTF-8. Printed naively, spaces
vanish and split characters turn into "�". Here every byte stays visible:

    " moves"     -> "␣moves"      spaces shown as ␣
    "\\n\\n"       -> "↵↵"          newlines as ↵, tabs as ⇥
    b"\\xe6\\x97"   -> "⟨E6⟩⟨97⟩"    bytes that are not complete UTF-8, in hex
"""

from __future__ import annotations

import codecs

_VISIBLE = str.maketrans({" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"})


def _mark_bytes(error: UnicodeDecodeError):
    return "".join(f"⟨{byte:02X}⟩" for byte in error.object[error.start:error.end]), error.end


codecs.register_error("gpt2explorer.mark", _mark_bytes)


def display_token(piece: bytes) -> str:
    """A token's bytes as readable text: whitespace made visible, partial UTF-8 in hex."""
    text = piece.decode("utf-8", errors="gpt2explorer.mark").translate(_VISIBLE)
    # Other control characters would be invisible or break a layout: show their code point.
    return "".join(ch if ch.isprintable() else f"⟨U+{ord(ch):04X}⟩" for ch in text)


def describe_bytes(piece: bytes) -> str:
    """The raw bytes for a hover label, e.g. b' moves' or b'\\xe6\\x97'."""
    return repr(piece)
