"""Send rate limits: a smooth per-bot budget and a per-chat pace with a small burst.

**Per bot** (``SEND_RATE_GLOBAL``, 30/s): :func:`global_limiter` is aiolimiter's leaky bucket
with a capacity of *one* message, leaking at the rate: messages leave at least ``1/rate`` apart
and never in a burst. aiolimiter's ``AsyncLimiter(30, 1)`` (what this module used to build)
starts with room for 30 and refills continuously, so it lets ~30 through at once and another
~30 within the same second: measured 51-59 messages in one second at start, which is exactly
what earns a FloodWait. aiolimiter's documentation ("Bursting") gives ``AsyncLimiter(1, 1/rate)``
as the way to disable bursts; that is what is used here. It waits fairly (FIFO), without polling,
on the event loop's clock (so a virtual clock in tests drives it too).

**Per chat** (``SEND_RATE_PER_CHAT`` 1/s, ``SEND_BURST_PER_CHAT`` 2): :class:`ChatPacer` is a
GCRA (generic cell rate algorithm). The sender has to know *when* a chat may send next without
blocking on it (a chat that must wait must not hold a sender while other chats are ready), and
aiolimiter only offers "wait" or "is there room now", so this small, pure, clock-free class is
used instead. :class:`ChatPacers` keeps one per chat, LRU-bounded.
"""
from __future__ import annotations

from collections import OrderedDict

from aiolimiter import AsyncLimiter

from integrations.telegram.constants import MAX_CHATS_TRACKED


def global_limiter(rate_per_second: float) -> AsyncLimiter:
    """``rate_per_second`` as a smooth rate: one message every ``1/rate`` s, no burst."""
    if not rate_per_second > 0:
        raise ValueError("rate must be positive")
    return AsyncLimiter(1, 1.0 / rate_per_second)


class ChatPacer:
    """GCRA for one chat: ``rate`` messages/s on average, up to ``burst`` back to back.

    ``tat`` is the theoretical arrival time of the next message if the chat sent exactly at its
    rate; a message may go when ``now >= tat - (burst - 1) / rate``.
    """

    __slots__ = ("interval", "tolerance", "tat")

    def __init__(self, rate: float, burst: int = 1) -> None:
        if not rate > 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.interval = 1.0 / rate
        self.tolerance = (burst - 1) * self.interval
        self.tat = float("-inf")

    def ready_at(self) -> float:
        """Earliest time the next message may go (``-inf`` for a fresh chat)."""
        return self.tat - self.tolerance

    def take(self, now: float) -> None:
        """Record a message sent at ``now`` (call only when ``now >= ready_at()``)."""
        self.tat = max(self.tat, now) + self.interval


class ChatPacers:
    """One :class:`ChatPacer` per chat; the least recently used are forgotten past ``max_chats``.

    Forgetting a pacer can at worst grant that chat one extra burst.
    """

    def __init__(self, rate: float, burst: int, max_chats: int = MAX_CHATS_TRACKED) -> None:
        ChatPacer(rate, burst)  # validate once, up front
        self.rate, self.burst, self.max_chats = rate, burst, max_chats
        self._pacers: OrderedDict[int, ChatPacer] = OrderedDict()

    def __getitem__(self, chat_id: int) -> ChatPacer:
        pacer = self._pacers.get(chat_id)
        if pacer is None:
            pacer = self._pacers[chat_id] = ChatPacer(self.rate, self.burst)
            while len(self._pacers) > self.max_chats:
                self._pacers.popitem(last=False)
        else:
            self._pacers.move_to_end(chat_id)
        return pacer

    def __len__(self) -> int:
        return len(self._pacers)
