"""Times as users read them: in the configured zone, to the minute or second."""
from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Optional
from zoneinfo import ZoneInfo


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """Drivers hand back naive datetimes unless tz_aware; they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def clock(moment: Optional[dt.datetime], zone: str = "UTC", seconds: bool = False) -> str:
    if moment is None:
        return ""
    local = as_utc(moment).astimezone(_zone(zone))
    return local.strftime("%H:%M:%S" if seconds else "%H:%M")


def day(moment: Optional[dt.datetime], zone: str = "UTC") -> str:
    if moment is None:
        return ""
    return as_utc(moment).astimezone(_zone(zone)).strftime("%Y-%m-%d %H:%M")
