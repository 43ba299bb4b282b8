"""Geofence: is the student within the allowed radius of the teacher?

Rules, in order (first failure wins):

1. ``forwarded``        a forwarded location proves nothing about where the student is.
2. ``invalid_location`` missing / non-finite / out-of-range coordinates.
3. ``inaccurate``       the client reported ``horizontal_accuracy`` > radius: the fix cannot tell
                        inside from outside, so we ask for a better fix instead of guessing.
                        Unknown accuracy (``None``) is accepted, as Telegram often omits it.
4. ``too_far``          geodesic distance (WGS-84) > radius. The boundary is inclusive.
5. ``ok``

Live locations are judged exactly like a pin (their first position).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional, Union

from geopy.distance import geodesic

DEFAULT_RADIUS_M = 50.0  # the original system's geofence; LOCATION_DISTANCE_LIMIT_METERS overrides it

PointLike = Union[tuple[float, float], Any]  # (lat, lon) or an object with latitude/longitude


@dataclass(frozen=True)
class GeoResult:
    """Outcome of :func:`check_location`.

    ``distance_m`` is the distance rounded *up* to whole metres, so a refusal never shows a number
    that looks inside the radius ("50 m" for 50.1 m); ``exact_distance_m`` is the raw value.
    """

    ok: bool
    reason: str  # ok | forwarded | invalid_location | inaccurate | too_far
    distance_m: Optional[int] = None
    radius_m: float = 0.0
    accuracy_m: Optional[float] = None
    exact_distance_m: Optional[float] = None

    @property
    def message_key(self) -> str:
        return self.reason

    def params(self) -> dict[str, Any]:
        """Values for message templates, e.g. "You are {distance_m} m from the class ..."."""
        data = asdict(self)
        data["radius_m"] = _whole(self.radius_m)
        if self.accuracy_m is not None:
            data["accuracy_m"] = math.ceil(self.accuracy_m)
        return data


def _whole(value: float) -> Union[int, float]:
    return int(value) if float(value).is_integer() else value


def _coords(point: PointLike) -> Optional[tuple[float, float]]:
    """(lat, lon) from a tuple or a Location-like object; None when unusable."""
    try:
        if hasattr(point, "latitude") and hasattr(point, "longitude"):
            lat, lon = point.latitude, point.longitude
        else:
            lat, lon = point  # type: ignore[misc]
        lat, lon = float(lat), float(lon)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None
    return lat, lon


def point(value: PointLike) -> Optional[tuple[float, float]]:
    """(lat, lon) if ``value`` is a usable point (finite, in range), else None; takes dicts too."""
    if isinstance(value, dict):
        value = (value.get("latitude"), value.get("longitude"))
    return _coords(value)


def distance_m(a: PointLike, b: PointLike) -> Optional[float]:
    """Geodesic distance in metres, or None if either point is unusable."""
    pa, pb = _coords(a), _coords(b)
    if pa is None or pb is None:
        return None
    return float(geodesic(pa, pb).meters)


def check_location(
    student: PointLike,
    teacher: PointLike,
    *,
    radius_m: Optional[float] = None,
    horizontal_accuracy: Optional[float] = None,
    forwarded: bool = False,
) -> GeoResult:
    """Apply the rules above. ``student``/``teacher`` are (lat, lon) or Location-like objects.

    If ``horizontal_accuracy`` is not given it is read from ``student`` when that has one.
    ``radius_m`` defaults to :data:`DEFAULT_RADIUS_M` (callers pass the session's radius).
    """
    try:
        radius = float(radius_m) if radius_m is not None else DEFAULT_RADIUS_M
    except (TypeError, ValueError):
        radius = math.nan  # reported as invalid_location below
    if horizontal_accuracy is None:
        horizontal_accuracy = getattr(student, "horizontal_accuracy", None)
    accuracy: Optional[float]
    try:
        accuracy = float(horizontal_accuracy) if horizontal_accuracy is not None else None
    except (TypeError, ValueError):
        accuracy = None
    if accuracy is not None and (not math.isfinite(accuracy) or accuracy < 0):
        accuracy = None  # garbage from the client: treat as unknown

    if forwarded:
        return GeoResult(False, "forwarded", radius_m=radius, accuracy_m=accuracy)
    exact = distance_m(student, teacher)
    if exact is None or not math.isfinite(radius) or radius <= 0:
        return GeoResult(False, "invalid_location", radius_m=radius, accuracy_m=accuracy)
    exact = round(exact, 3)  # millimetres: below GPS noise, and keeps display and rule consistent
    shown = math.ceil(exact)
    if accuracy is not None and accuracy > radius:
        return GeoResult(False, "inaccurate", shown, radius, accuracy, exact)
    if exact > radius:
        return GeoResult(False, "too_far", shown, radius, accuracy, exact)
    return GeoResult(True, "ok", shown, radius, accuracy, exact)
