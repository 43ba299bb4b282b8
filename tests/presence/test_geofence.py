from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import pytest
from geopy.distance import geodesic

from integrations.presence.geofence import GeoResult, check_location, distance_m

TEACHER = (17.385044, 78.486671)  # Hyderabad


def moved(origin: tuple[float, float], metres: float, bearing: float = 45.0) -> tuple[float, float]:
    p = geodesic(meters=metres).destination(origin, bearing)
    return (p.latitude, p.longitude)


@dataclass(frozen=True)
class Loc:  # shaped like engine.types.Location, without importing the engine
    latitude: float
    longitude: float
    horizontal_accuracy: Optional[float] = None
    live_period: Optional[int] = None


@pytest.mark.parametrize("bearing", [0.0, 90.0, 200.0])
def test_boundary_inside_49_9(bearing: float) -> None:
    r = check_location(moved(TEACHER, 49.9, bearing), TEACHER, radius_m=50)
    assert r.ok and r.reason == "ok"
    assert r.exact_distance_m == pytest.approx(49.9, abs=0.01)
    assert r.distance_m == 50  # shown rounded up


@pytest.mark.parametrize("bearing", [0.0, 90.0, 200.0])
def test_boundary_outside_50_1(bearing: float) -> None:
    r = check_location(moved(TEACHER, 50.1, bearing), TEACHER, radius_m=50)
    assert not r.ok and r.reason == "too_far" and r.message_key == "too_far"
    assert r.distance_m == 51  # never shows a number that looks inside the radius
    assert r.params()["radius_m"] == 50


def test_message_numbers() -> None:
    r = check_location(moved(TEACHER, 211.6), TEACHER, radius_m=50)
    text = "You are {distance_m} m from the class; you must be within {radius_m} m".format(**r.params())
    assert text == "You are 212 m from the class; you must be within 50 m"


def test_exactly_on_radius_is_inside() -> None:
    assert check_location(moved(TEACHER, 50.0), TEACHER, radius_m=50).ok


def test_across_antimeridian() -> None:
    a, b = (0.0, 179.9999), (0.0, -179.9999)
    d = distance_m(a, b)
    assert d == pytest.approx(22.26, abs=0.05)  # 0.0002 deg of longitude at the equator, not 40 000 km
    assert check_location(a, b, radius_m=50).ok
    assert check_location(a, b, radius_m=20).reason == "too_far"


def test_forwarded_refused_first() -> None:
    r = check_location(TEACHER, TEACHER, radius_m=50, forwarded=True)
    assert (r.ok, r.reason) == (False, "forwarded")


def test_inaccurate_refused_when_accuracy_exceeds_radius() -> None:
    r = check_location(moved(TEACHER, 5), TEACHER, radius_m=50, horizontal_accuracy=65.2)
    assert (r.ok, r.reason) == (False, "inaccurate")
    assert r.params()["accuracy_m"] == 66


def test_accuracy_equal_to_radius_and_unknown_accepted() -> None:
    assert check_location(moved(TEACHER, 5), TEACHER, radius_m=50, horizontal_accuracy=50).ok
    assert check_location(moved(TEACHER, 5), TEACHER, radius_m=50, horizontal_accuracy=None).ok


def test_location_objects_and_live_locations() -> None:
    lat, lon = moved(TEACHER, 30)
    live = Loc(lat, lon, horizontal_accuracy=12.0, live_period=900)
    r = check_location(live, Loc(*TEACHER), radius_m=50)
    assert r.ok and r.accuracy_m == 12.0
    bad = Loc(lat, lon, horizontal_accuracy=300.0)
    assert check_location(bad, TEACHER, radius_m=50).reason == "inaccurate"


@pytest.mark.parametrize(
    "student",
    [(float("nan"), 0.0), (91.0, 0.0), (0.0, 181.0), ("x", 1), None, (1.0,), object()],
)
def test_garbage_coordinates_never_raise(student: object) -> None:
    r = check_location(student, TEACHER, radius_m=50)
    assert isinstance(r, GeoResult) and r.reason == "invalid_location"


@pytest.mark.parametrize("acc", [float("nan"), -3, "abc"])
def test_garbage_accuracy_is_treated_as_unknown(acc: object) -> None:
    assert check_location(moved(TEACHER, 10), TEACHER, radius_m=50, horizontal_accuracy=acc).ok


def test_default_radius_from_settings() -> None:
    r = check_location(moved(TEACHER, 10), TEACHER)
    assert r.radius_m == 50.0 and r.ok
    assert math.isfinite(r.exact_distance_m or math.nan)


@pytest.mark.parametrize("radius", ["fifty", -5, 0, float("inf")])
def test_bad_radius_is_invalid_not_an_exception(radius: object) -> None:
    assert check_location(TEACHER, TEACHER, radius_m=radius).reason == "invalid_location"
