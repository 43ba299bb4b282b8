"""A fake clock for asyncio: an event loop whose time jumps ahead whenever nothing is ready.

Why: the send queue's behaviour is about time (30 messages/s, 1/s per chat, FloodWait pauses);
measuring a class of 1,000 students in real time takes minutes and depends on the machine's
load. On this loop the *real* sender, limiter (aiolimiter reads ``loop.time()``) and engine run
unchanged; only ``loop.time()`` is virtual:

* while callbacks are ready, the clock moves by ``TICK`` (1 µs) per loop iteration: CPU work
  takes (almost) no virtual time, and code that waits for "a moment later" (aiolimiter wakes
  at ``now + 1e-17`` after a rounding error) still sees time pass, as on a real clock;
* while a thread started with ``run_in_executor``/``asyncio.to_thread`` is working, the clock
  stands still and the loop waits for it for real (so hooks that use threads stay correct);
* otherwise the clock jumps to the next timer, or to the wake-up of a thread sleeping in
  :meth:`VirtualClockLoop.thread_sleep` (how simulated services in threads model latency).

Use it with ``asyncio.Runner(loop_factory=VirtualClockLoop)``. Wall-clock code
(``time.time()``, APScheduler's deadlines) is not affected and keeps real time.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import selectors
import threading
from typing import Any, Callable, Optional

REAL_POLL_S = 0.05  # how long the loop waits for real at a time while a thread works
TICK = 1e-6  # virtual seconds one loop iteration takes


class _VirtualSelector:
    """Wraps the loop's selector: an idle ``select`` advances the virtual clock instead of waiting."""

    def __init__(self, selector: selectors.BaseSelector, loop: "VirtualClockLoop") -> None:
        self._selector = selector
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._selector, name)

    def select(self, timeout: Optional[float] = None) -> list:
        loop = self._loop
        loop._now += TICK
        events = self._selector.select(0)
        if events or timeout == 0:
            return events
        with loop._lock:
            running = loop._jobs - len(loop._sleepers)
            if running <= 0:
                target = None if timeout is None else loop._now + max(0.0, timeout - TICK)
                if loop._sleepers and (target is None or loop._sleepers[0][0] <= target):
                    when = loop._sleepers[0][0]
                    loop._now = max(loop._now, when)
                    while loop._sleepers and loop._sleepers[0][0] <= loop._now:
                        heapq.heappop(loop._sleepers)[2].set()
                    return []
                if target is not None:
                    loop._now = max(loop._now, target)
                    return []
        # A thread is working (or only outside events can wake us): wait for real, briefly.
        return self._selector.select(REAL_POLL_S if timeout is None else min(REAL_POLL_S, timeout))


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """A selector event loop on a virtual clock (see the module docstring)."""

    def __init__(self, start: float = 0.0) -> None:
        super().__init__()
        self._now = start
        self._jobs = 0
        self._sleepers: list[tuple[float, int, threading.Event]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._selector = _VirtualSelector(self._selector, self)  # type: ignore[assignment]

    def time(self) -> float:
        return self._now

    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> asyncio.Future:
        with self._lock:
            self._jobs += 1
        future = super().run_in_executor(executor, func, *args)
        future.add_done_callback(self._job_done)
        return future

    def _job_done(self, _future: asyncio.Future) -> None:
        with self._lock:
            self._jobs -= 1

    def thread_sleep(self, seconds: float) -> None:
        """Block the calling executor thread for ``seconds`` of *virtual* time."""
        event = threading.Event()
        with self._lock:
            heapq.heappush(self._sleepers, (self._now + max(0.0, seconds), next(self._order), event))
        self._write_to_self()  # let the loop see the new sleeper
        event.wait()


def run_virtual(main: Callable[[], Any], start: float = 0.0) -> Any:
    """Run the coroutine function ``main`` on a fresh :class:`VirtualClockLoop`."""
    with asyncio.Runner(loop_factory=lambda: VirtualClockLoop(start)) as runner:
        return runner.run(main())
