"""Issue 14 items 6, 7: attempt limits live in MongoDB (one atomic update per attempt)."""
from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import time_machine

from integrations.storage.throttle import Backoff, WindowLimit

T0 = dt.datetime(2030, 1, 1, 9, 0, 5, tzinfo=dt.timezone.utc)


def test_a_window_allows_its_limit_then_says_when_it_ends(db) -> None:
    limit = WindowLimit("otp", 3, 600)
    with time_machine.travel(T0, tick=False) as clock:
        assert [limit.take(42)[0] for _ in range(4)] == [True, True, True, False]
        clock.shift(dt.timedelta(minutes=4))
        allowed, wait = limit.take(42)
        assert not allowed and 359 <= wait <= 361  # until the first one is 10 min old
        assert limit.take(43)[0]  # another user has their own window
        clock.shift(dt.timedelta(minutes=6, seconds=1))  # the first attempts have left the window
        assert [limit.take(42)[0] for _ in range(4)] == [True, True, True, False]


def test_the_window_survives_a_new_limiter_object_as_after_a_restart(db) -> None:
    with time_machine.travel(T0, tick=False):
        for _ in range(3):
            WindowLimit("otp", 3, 600).take(7)
        allowed, wait = WindowLimit("otp", 3, 600).take(7)
        assert not allowed and 599 <= wait <= 601


def test_racing_attempts_never_exceed_the_limit(db) -> None:
    limit = WindowLimit("otp", 5, 600)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: limit.take(1)[0], range(40)))
    assert results.count(True) == 5


def test_clear_forgets_only_its_own_limit(db) -> None:
    codes, other = WindowLimit("otp", 1, 600), WindowLimit("otp-x", 1, 600)
    assert codes.take(5)[0] and other.take(5)[0]
    codes.clear()
    assert codes.take(5)[0] and not other.take(5)[0]


def test_backoff_grows_and_a_success_clears_it(db) -> None:
    backoff = Backoff("login", free=2, base_s=60, cap_s=300)
    assert [backoff.fail("u1", T0) for _ in range(6)] == [0, 60, 120, 240, 300, 300]
    assert backoff.wait("u1", T0) == 300
    assert backoff.wait("u1", T0 + dt.timedelta(seconds=301)) == 0
    backoff.reset("u1")
    assert backoff.wait("u1", T0) == 0 and backoff.fail("u1", T0) == 0
