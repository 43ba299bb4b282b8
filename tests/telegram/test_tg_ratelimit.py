"""The rate-limit primitives: a smooth global budget (aiolimiter) and the per-chat GCRA."""
from __future__ import annotations

import asyncio

import pytest

from integrations.telegram.ratelimit import ChatPacer, ChatPacers, global_limiter
from tests.fakes.virtual_clock import run_virtual


def test_global_limiter_is_one_message_per_interval():
    limiter = global_limiter(30)
    assert (limiter.max_rate, limiter.time_period) == (1, pytest.approx(1 / 30))
    with pytest.raises(ValueError):
        global_limiter(0)


def test_global_limiter_never_lets_more_than_the_rate_through_in_any_second():
    async def main() -> list[float]:
        limiter = global_limiter(30)
        loop = asyncio.get_running_loop()
        times: list[float] = []

        async def one() -> None:
            await limiter.acquire()
            times.append(loop.time())

        await asyncio.sleep(5)  # idle first: an idle bucket must not have saved up a burst
        await asyncio.gather(*(one() for _ in range(200)))
        return times

    times = run_virtual(main)
    worst = max(sum(1 for t in times if start <= t < start + 1.0 - 1e-9) for start in times)
    assert worst <= 30
    assert times[-1] - times[0] == pytest.approx(199 / 30, abs=0.01)


def test_chat_pacer_allows_the_burst_then_the_rate():
    pacer = ChatPacer(rate=1.0, burst=2)
    assert pacer.ready_at() == float("-inf")
    pacer.take(10.0)
    assert pacer.ready_at() <= 10.0  # second of the burst may go at once
    pacer.take(10.0)
    assert pacer.ready_at() == pytest.approx(11.0)
    pacer.take(11.0)
    assert pacer.ready_at() == pytest.approx(12.0)
    pacer.take(20.0)  # after a pause, the burst is back (not more)
    assert pacer.ready_at() <= 20.0
    pacer.take(20.0)
    assert pacer.ready_at() == pytest.approx(21.0)
    with pytest.raises(ValueError):
        ChatPacer(rate=0)


def test_fractional_per_chat_rate():
    pacer = ChatPacer(rate=0.5, burst=1)
    pacer.take(0.0)
    assert pacer.ready_at() == pytest.approx(2.0)


def test_chat_pacers_are_lru_bounded():
    pacers = ChatPacers(1.0, 2, max_chats=3)
    for chat in range(5):
        pacers[chat]
    assert len(pacers) == 3 and list(pacers._pacers) == [2, 3, 4]
    pacers[2]  # touching moves it to the young end
    pacers[9]
    assert list(pacers._pacers) == [4, 2, 9]
