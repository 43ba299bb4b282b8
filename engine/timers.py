"""State timeouts on the event loop: one ``loop.call_at`` handle per conversation.

asyncio keeps its timers in a heap, so arming is O(log n) and cancelling O(1) however many
conversations wait (APScheduler's in-memory job store was O(n) per add, update and remove). The
store holds every deadline, so nothing here needs to survive a restart: :meth:`Engine.start`
re-arms each stored deadline.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Optional

from .store import Key

log = logging.getLogger(__name__)

FireFn = Callable[[Key, int], Awaitable[None]]


class TimerService:
    """One pending timeout per conversation; a newer one replaces the older.

    ``schedule`` before :meth:`start` only records the deadline; :meth:`start` arms them all.
    A timer fires ``fire(key, epoch)`` in a task; one that is late (e.g. re-armed after a restart
    past its deadline) fires at once: late is better than never.
    """

    def __init__(self, fire: FireFn, clock: Callable[[], float] = time.time) -> None:
        self._fire = fire
        self._clock = clock  # the clock deadlines are written in (wall time)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._deadlines: dict[Key, tuple[int, float]] = {}  # key -> (epoch, when)
        self._handles: dict[Key, asyncio.TimerHandle] = {}
        self._firing: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> bool:
        return self._loop is not None

    def start(self) -> None:
        """Arm every recorded deadline on the running loop."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        for key, (epoch, when) in self._deadlines.items():
            self._arm(key, epoch, when)

    def shutdown(self) -> None:
        """Fire nothing more (timeouts already firing finish their step)."""
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
        self._deadlines.clear()
        self._loop = None

    def schedule(self, key: Key, epoch: int, when: float) -> None:
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()
        self._deadlines[key] = (epoch, when)
        if self._loop is not None:
            self._arm(key, epoch, when)

    def cancel(self, key: Key) -> None:
        self._deadlines.pop(key, None)
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()

    def pending(self) -> list[tuple[Key, float]]:
        """(conversation, wall-clock deadline) of every timeout not yet fired."""
        return [(key, when) for key, (_, when) in self._deadlines.items()]

    def pending_for(self, key: Key) -> bool:
        return key in self._deadlines

    def _arm(self, key: Key, epoch: int, when: float) -> None:
        assert self._loop is not None
        delay = max(0.0, when - self._clock())
        self._handles[key] = self._loop.call_at(self._loop.time() + delay, self._due, key, epoch)

    def _due(self, key: Key, epoch: int) -> None:
        if self._deadlines.get(key, (None,))[0] != epoch or self._loop is None:
            return  # replaced or cancelled after this handle was queued
        del self._deadlines[key]
        self._handles.pop(key, None)
        task = self._loop.create_task(self._fire(key, epoch))
        self._firing.add(task)
        task.add_done_callback(self._fired)

    def _fired(self, task: asyncio.Task[None]) -> None:
        self._firing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("timeout failed", exc_info=task.exception())
