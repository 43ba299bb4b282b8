"""Phone numbers as digits, and a lenient match between a Telegram contact and a roster entry."""
from __future__ import annotations

import re

_NON_DIGITS = re.compile(r"\D+")
NATIONAL_DIGITS = 10  # compare on the last 10 digits when country codes differ (+91 vs 0-prefix)


def normalise_phone(raw: object) -> str:
    """Keep only digits: '+91 98765-43210' -> '919876543210'."""
    return _NON_DIGITS.sub("", str(raw or ""))


def phones_match(a: str, b: str) -> bool:
    """Equal digits, or equal national numbers when one side has a country code or trunk 0."""
    a, b = normalise_phone(a), normalise_phone(b)
    if not a or not b:
        return False
    if a == b:
        return True
    return min(len(a), len(b)) >= NATIONAL_DIGITS and a[-NATIONAL_DIGITS:] == b[-NATIONAL_DIGITS:]


def phone_tail(digits: str) -> str:
    """The indexed lookup key of a phone: its last 10 digits ("" when it has fewer)."""
    digits = normalise_phone(digits)
    return digits[-NATIONAL_DIGITS:] if len(digits) >= NATIONAL_DIGITS else ""
