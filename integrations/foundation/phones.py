"""Phone numbers in one form, E.164 as digits ('919876543210'), and exact matching.

Parsing is `phonenumbers` (libphonenumber's metadata). A number written without a country code
(`98765 43210`, `098765 43210`) belongs to ``DEFAULT_PHONE_REGION`` (IN unless set); Telegram's
contacts always carry their country code, with or without the '+'. Two numbers match only when
their E.164 forms are equal: the last 10 digits alone would take a +1 number for a +91 student.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Optional

import phonenumbers

from integrations.settings import get_settings

_NON_DIGITS = re.compile(r"\D+")
NATIONAL_DIGITS = 10  # the indexed lookup key is the last 10 digits; matching is on the whole number


def _digits(raw: object) -> str:
    return _NON_DIGITS.sub("", str(raw or ""))


def default_region() -> str:
    return get_settings().default_phone_region


def _parse(text: str, region: Optional[str]) -> Optional[phonenumbers.PhoneNumber]:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


def e164(raw: str, region: Optional[str] = None, international: bool = False) -> str:
    """E.164 digits of ``raw``, or "" when it cannot be a phone number.

    ``international``: the number carries its country code even without a '+' (Telegram
    contacts). Otherwise a number with '+' or '00' is international, and one without is read in
    ``region`` (default: DEFAULT_PHONE_REGION) first, then as international if only that reading
    is a valid number."""
    return _e164(str(raw or "").strip(), region or default_region(), international)


@lru_cache(maxsize=4096)
def _e164(text: str, region: str, international: bool) -> str:
    digits = _digits(text)
    if not digits or len(digits) > 17:
        return ""
    if text.startswith("+") or (text.startswith("00") and not text.startswith("000")):
        readings = [_parse("+" + digits.removeprefix("00"), None)]
    elif international:
        readings = [_parse("+" + digits, None), _parse(text, region)]
    else:
        readings = [_parse(text, region), _parse("+" + digits, None)]
    found = [n for n in readings if n is not None]
    if not found:
        return ""
    # With one possible reading it is the answer; with two, the valid one (validity is the costly check).
    chosen = found[0] if len(found) == 1 else next((n for n in found if phonenumbers.is_valid_number(n)), found[0])
    return phonenumbers.format_number(chosen, phonenumbers.PhoneNumberFormat.E164).removeprefix("+")


def normalise_phone(raw: object) -> str:
    """The stored form: E.164 digits ('+91 98765-43210' and '098765 43210' -> '919876543210');
    the bare digits when it cannot be parsed (kept, never matched by accident: see phones_match)."""
    return e164(str(raw or "")) or _digits(raw)


def contact_phone(raw: object) -> str:
    """A Telegram contact's number (it has its country code, maybe without '+'), as E.164 digits."""
    return e164(str(raw or ""), international=True) or _digits(raw)


def phones_match(a: str, b: str) -> bool:
    """The same number: equal E.164 forms (each side read as :func:`normalise_phone` does)."""
    left, right = e164(str(a or "")), e164(str(b or ""))
    return bool(left) and left == right


def is_phone(raw: object) -> bool:
    """``raw`` can be a phone number (of the default region unless it has a country code)."""
    return bool(e164(str(raw or "")))


def display(digits: str) -> str:
    """'+91 98765 43210' for messages (international format)."""
    number = _parse("+" + _digits(digits), None)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL) if number else digits


def phone_tail(digits: str) -> str:
    """The indexed lookup key of a phone: its last 10 digits ("" when it has fewer)."""
    digits = _digits(digits)
    return digits[-NATIONAL_DIGITS:] if len(digits) >= NATIONAL_DIGITS else ""
