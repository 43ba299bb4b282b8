"""Send rate limits: per chat, per bot, fractional rates, bounded memory."""
from __future__ import annotations

import asyncio

import pytest

from engine.types import Outgoing, SendText
from integrations.telegram.ratelimit import SendRateLimiter, make_limiter
from integrations.telegram.sender import TelegramSender


async def timed(coro) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    await coro
    return loop.time() - start


def test_fractional_rate_becomes_one_per_period():
    limiter = make_limiter(0.5)
    assert (limiter.max_rate, limiter.time_period) == (1, 2.0)
    assert (make_limiter(30).max_rate, make_limiter(30).time_period) == (30, 1.0)
    with pytest.raises(ValueError):
        make_limiter(0)


async def test_per_chat_limit_does_not_block_other_chats():
    limiter = SendRateLimiter(per_chat=2, global_rate=1000)
    for _ in range(2):  # the burst
        await limiter.acquire(1)
    throttled = asyncio.create_task(limiter.acquire(1))
    assert await timed(limiter.acquire(2)) < 0.25  # chat 2 is not behind chat 1...
    assert await timed(throttled) >= 0.3  # ...whose third message waits ~1/2 s


async def test_global_limit_spans_chats():
    limiter = SendRateLimiter(per_chat=1000, global_rate=4)
    for chat in range(4):
        await limiter.acquire(chat)
    assert await timed(limiter.acquire(99)) >= 0.15


async def test_sender_paces_one_chat(client, recorder):
    sender = TelegramSender({"teacher": client}, per_chat_rate=4, global_rate=1000)
    out = Outgoing("teacher", 5, tuple(SendText(str(i)) for i in range(6)))
    assert await timed(sender.deliver(out)) >= 0.4  # 4 in the burst, then 2 more at 4/s
    assert [c.message for c in recorder.calls] == [str(i) for i in range(6)]


def test_chat_limiters_are_lru_bounded():
    limiter = SendRateLimiter(max_chats=3)
    for chat in range(5):
        limiter.chat_limiter(chat)
    assert len(limiter) == 3 and list(limiter._chats) == [2, 3, 4]
    limiter.chat_limiter(2)  # touching moves it to the young end
    limiter.chat_limiter(9)
    assert list(limiter._chats) == [4, 2, 9]
