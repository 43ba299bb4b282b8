"""Per-chat and per-bot send rate limits.

Why ``aiolimiter``: it is a small, maintained, dependency-free asyncio leaky bucket that waits
fairly (FIFO) without polling, which is exactly Telegram's model ("about 1 message per second
to one chat, about 30 per second overall"). Hand-rolled token buckets tend to get fairness and
cancellation wrong; this one is tested upstream. We only add the per-chat keying, an LRU bound
so a bot talking to many students does not keep a limiter per chat forever, and the
conversion of fractional rates (0.5/s becomes 1 per 2 s, since a bucket must hold one message).
"""
from __future__ import annotations

from collections import OrderedDict

from aiolimiter import AsyncLimiter


def make_limiter(rate_per_second: float) -> AsyncLimiter:
    """A bucket allowing ``rate_per_second`` on average, with a burst of ``max(1, rate)``."""
    if rate_per_second <= 0:
        raise ValueError("rate must be positive")
    if rate_per_second >= 1:
        return AsyncLimiter(rate_per_second, 1.0)
    return AsyncLimiter(1, 1.0 / rate_per_second)


class SendRateLimiter:
    """One bot's limits: a global bucket plus one bucket per chat (LRU-bounded)."""

    def __init__(self, per_chat: float = 1.0, global_rate: float = 30.0, max_chats: int = 10_000):
        self.per_chat = per_chat
        self.global_limiter = make_limiter(global_rate)
        self.max_chats = max_chats
        self._chats: OrderedDict[int, AsyncLimiter] = OrderedDict()

    def chat_limiter(self, chat_id: int) -> AsyncLimiter:
        limiter = self._chats.get(chat_id)
        if limiter is None:
            limiter = self._chats[chat_id] = make_limiter(self.per_chat)
            while len(self._chats) > self.max_chats:
                # Evicting a limiter can at worst grant that chat one extra burst.
                self._chats.popitem(last=False)
        else:
            self._chats.move_to_end(chat_id)
        return limiter

    async def acquire(self, chat_id: int) -> None:
        """Wait for the chat's slot first, so a busy chat does not hold global capacity."""
        await self.chat_limiter(chat_id).acquire()
        await self.global_limiter.acquire()

    def __len__(self) -> int:
        return len(self._chats)
