"""Text from outside (roster files, the attendance API, what users type) made safe to store and show.

NUL, right-to-left overrides and zero-width characters were stored and shown as they came: a
name could hide characters, reorder a report line or look like another. :func:`clean_text`
normalises to NFKC and drops control (Cc) and format (Cf) characters, keeping only the zero-width
joiners that sit between two letters (Indic scripts need them to spell names), and collapses
runs of white space. Passwords are never cleaned: they are compared exactly as typed.
"""
from __future__ import annotations

import unicodedata

_JOINERS = {"\u200c", "\u200d"}  # ZWNJ, ZWJ: part of the spelling in Devanagari, Malayalam...
_SPACES = {"\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\u2028", "\u2029"}


def _letter(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LM"


def clean_text(value: object, max_length: int = 0) -> str:
    """NFKC, no control or format characters, single spaces, stripped; cut to ``max_length`` if given."""
    text = unicodedata.normalize("NFKC", str(value or ""))
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch in _SPACES:
            out.append(" ")
            continue
        category = unicodedata.category(ch)
        if category in ("Cc", "Cs", "Co", "Cn") or category == "Cf" and not (
                ch in _JOINERS and 0 < i < len(text) - 1 and _letter(text[i - 1]) and _letter(text[i + 1])):
            continue
        out.append(ch)
    cleaned = " ".join("".join(out).split())
    return cleaned[:max_length] if max_length > 0 else cleaned

