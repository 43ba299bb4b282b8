"""Hooks of the example flow (flows/example.yaml): small, offline, and deterministic."""
from __future__ import annotations

import csv
import io

from geopy.distance import geodesic

from engine import HookContext, HookRegistry, HookResult, VideoNote

# The example club's groups (name, latitude, longitude).
GROUPS = [("Hyderabad", 17.385, 78.4867), ("Vijayawada", 16.5062, 80.648)]
MAX_KM = 100.0


def register(registry: HookRegistry) -> HookRegistry:
    registry.register("check_own_contact", check_own_contact, outcomes=("ok", "not_own"))
    registry.register("list_topics", list_topics, kind="options")
    registry.register("nearest_group", nearest_group, outcomes=("ok", "far"),
                      provides=("group", "distance_km"))
    registry.register("check_video", check_video, outcomes=("ok", "empty"))
    registry.register("make_summary", make_summary, provides=("_summary_csv",),
                      reads=("name", "age", "level", "topics", "group"))
    return registry


def check_own_contact(ctx: HookContext) -> str:
    """A shared contact counts only if it is the sender's own."""
    contact = ctx.answer or {}
    return "ok" if contact.get("user_id") == ctx.update.user_id else "not_own"


def list_topics(ctx: HookContext) -> list[tuple[str, str]]:
    """The topics to tick (a fixed list)."""
    return [("math", "Mathematics"), ("physics", "Physics"), ("code", "Programming")]


def nearest_group(ctx: HookContext) -> HookResult:
    """The study group nearest to the shared location; `far` beyond 100 km."""
    place = ctx.answer
    here = (place["latitude"], place["longitude"])
    name, km = min(((g, geodesic(here, (lat, lon)).km) for g, lat, lon in GROUPS), key=lambda x: x[1])
    data = {"group": name, "distance_km": round(km, 1)}
    return HookResult("ok" if km <= MAX_KM else "far", data)


def check_video(ctx: HookContext) -> str:
    """A round video note with some content."""
    video = ctx.answer
    return "ok" if isinstance(video, VideoNote) and video.data else "empty"


def make_summary(ctx: HookContext) -> HookResult:
    """The answers as a CSV file, sent as a document."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["field", "value"])
    for key in ("name", "age", "level", "topics", "group"):
        value = ctx.data.get(key)
        writer.writerow([key, ";".join(value) if isinstance(value, list) else value])
    return HookResult("ok", {"_summary_csv": out.getvalue()})
