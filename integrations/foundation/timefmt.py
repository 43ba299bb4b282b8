"""Times, dates and numbers as users read them: in the configured zone, in the user's language.

Without a language (``language=None``) the formats are the plain ones logs and backups use
(``15:45``, ``2025-03-07 15:45``, ``12``). With one (a conversation's language, e.g. from
``HookContext.language``), Babel formats them the way that language writes them in India
(``en`` → ``3:45 pm``, ``7 Mar 2025``; ``hi`` → ``7 मार्च 2025``; ``te`` → ``7 మార్చి, 2025``;
numbers grouped ``12,34,567``).
"""
from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any, Optional
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time
from babel.numbers import format_decimal

REGION = "IN"  # the users are in Indian colleges: en_IN, hi_IN, te_IN


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=32)
def locale_of(language: str) -> Locale:
    """The Babel locale of a language: the Indian one when Babel has it (en_IN), else the language's."""
    for tag in (f"{language}_{REGION}", language):
        try:
            return Locale.parse(tag)
        except (UnknownLocaleError, ValueError):
            continue
    return Locale.parse("en")


def as_utc(moment: dt.datetime) -> dt.datetime:
    """Drivers hand back naive datetimes unless tz_aware; they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _local(moment: dt.datetime, zone: str) -> dt.datetime:
    return as_utc(moment).astimezone(_zone(zone))


def clock(moment: Optional[dt.datetime], zone: str = "UTC", seconds: bool = False,
          language: Optional[str] = None) -> str:
    if moment is None:
        return ""
    local = _local(moment, zone)
    if language is None:
        return local.strftime("%H:%M:%S" if seconds else "%H:%M")
    return format_time(local, "medium" if seconds else "short", tzinfo=local.tzinfo, locale=locale_of(language))


def day(moment: Optional[dt.datetime], zone: str = "UTC", language: Optional[str] = None) -> str:
    """A date with its time to the minute."""
    if moment is None:
        return ""
    local = _local(moment, zone)
    if language is None:
        return local.strftime("%Y-%m-%d %H:%M")
    locale = locale_of(language)
    date = format_date(local, "medium", locale=locale)
    time = format_time(local, "short", tzinfo=local.tzinfo, locale=locale)
    return locale.datetime_formats["medium"].format(time, date)  # "{1}, {0}": the language's order


def number(value: Any, language: Optional[str] = None) -> Any:
    """A count as the language writes it (the value itself without a language)."""
    if language is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return value
    return format_decimal(value, locale=locale_of(language))
