"""Sliding-window attempt counting, to slow down code guessing across accounts and sessions.

In memory on purpose: it limits the rate of guesses from one Telegram user; the lockouts that
must survive restarts (5 wrong codes for one session) are stored on the session itself.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Callable, Hashable


class SlidingWindow:
    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._hits: dict[Hashable, deque[float]] = {}

    def _recent(self, key: Hashable) -> deque[float]:
        hits = self._hits.setdefault(key, deque())
        cutoff = self.clock() - self.window_s
        while hits and hits[0] <= cutoff:
            hits.popleft()
        return hits

    def blocked(self, key: Hashable) -> bool:
        """True when `key` has used up its attempts in the current window."""
        blocked = len(self._recent(key)) >= self.limit
        if not self._hits.get(key):
            self._hits.pop(key, None)  # keep memory bounded by active keys only
        return blocked

    def hit(self, key: Hashable) -> int:
        """Count one attempt; returns the attempts in the window so far."""
        hits = self._recent(key)
        hits.append(self.clock())
        return len(hits)

    def retry_after(self, key: Hashable) -> float:
        hits = self._recent(key)
        return max(0.0, hits[0] + self.window_s - self.clock()) if hits else 0.0

    def clear(self) -> None:
        """Forget every attempt (a new process starts with none)."""
        self._hits.clear()
