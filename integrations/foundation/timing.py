"""Per-session timings of external API calls, summarised once at INFO when the report is sent.

The API client records every call (method and path, seconds, whether it answered) into the
*scope* active in its context; the http roster backend opens a scope named after the session for
every session-specific call (a student's attendance, the report), and the teacher's `open_session`
hook one for loading the class. Context variables follow calls into worker threads
(`run_blocking` copies the context), so nothing is passed around.
"""
from __future__ import annotations

import contextlib
import contextvars
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

_scope: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("api_timing_scope", default=None)
_SAMPLES = 1000  # durations kept per scope for the percentile (counts and totals are exact)
_MAX_SCOPES = 10000  # a scope nobody collects (a session deleted) must not grow memory forever


@dataclass
class _Calls:
    count: int = 0
    errors: int = 0
    total: float = 0.0
    longest: float = 0.0
    samples: list[float] = field(default_factory=list)
    paths: dict[str, int] = field(default_factory=dict)


_lock = threading.Lock()
_scopes: dict[str, _Calls] = {}


@contextlib.contextmanager
def scope(name: Optional[str]) -> Iterator[None]:
    """Attribute the API calls made inside (this task, and threads it runs) to ``name``."""
    token = _scope.set(str(name) if name else None)
    try:
        yield
    finally:
        _scope.reset(token)


def current() -> Optional[str]:
    return _scope.get()


def record(label: str, seconds: float, ok: bool) -> None:
    """One API call; ignored outside a scope."""
    name = _scope.get()
    if name is None:
        return
    with _lock:
        calls = _scopes.get(name)
        if calls is None:
            if len(_scopes) >= _MAX_SCOPES:
                _scopes.pop(next(iter(_scopes)))
            calls = _scopes[name] = _Calls()
        calls.count += 1
        calls.errors += 0 if ok else 1
        calls.total += seconds
        calls.longest = max(calls.longest, seconds)
        if len(calls.samples) < _SAMPLES:
            calls.samples.append(seconds)
        calls.paths[label] = calls.paths.get(label, 0) + 1


def merge(source: str, target: str) -> None:
    """Move what was recorded under ``source`` (e.g. before the session had an id) to ``target``."""
    with _lock:
        moved = _scopes.pop(source, None)
        if moved is None:
            return
        into = _scopes.setdefault(target, _Calls())
        into.count += moved.count
        into.errors += moved.errors
        into.total += moved.total
        into.longest = max(into.longest, moved.longest)
        into.samples = (into.samples + moved.samples)[:_SAMPLES]
        for label, n in moved.paths.items():
            into.paths[label] = into.paths.get(label, 0) + n


def take(name: str) -> Optional[dict[str, Any]]:
    """The summary of a scope, which is then forgotten; None if it made no calls."""
    with _lock:
        calls = _scopes.pop(str(name), None)
    if calls is None or not calls.count:
        return None
    ordered = sorted(calls.samples)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else 0.0
    return {"calls": calls.count, "errors": calls.errors, "total_s": round(calls.total, 3),
            "mean_s": round(calls.total / calls.count, 3), "p95_s": round(p95, 3),
            "max_s": round(calls.longest, 3), "by_call": dict(sorted(calls.paths.items()))}


def describe(summary: dict[str, Any]) -> str:
    """One log line's worth: '12 calls (0 failed), mean 0.210 s, p95 0.400 s, max 0.800 s; GET /attend x2, ...'."""
    by_call = ", ".join(f"{label} x{n}" for label, n in summary.get("by_call", {}).items())
    return (f"{summary['calls']} calls ({summary['errors']} failed), total {summary['total_s']:.3f} s, "
            f"mean {summary['mean_s']:.3f} s, p95 {summary['p95_s']:.3f} s, max {summary['max_s']:.3f} s"
            + (f"; {by_call}" if by_call else ""))
