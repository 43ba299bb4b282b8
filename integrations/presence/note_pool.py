"""A process pool for the CPU-heavy part of a face check (issue 13, item 8).

Decoding a note, HOG detection and dlib's landmarks hold the GIL for ~100-200 ms per note. Run in
the bot's process (even in a thread) they delay every other update by as much; run here, in
``processes`` worker processes, the event loop only waits on a future.

* Workers are started with ``spawn`` (forking a process that runs asyncio, thread pools and
  OpenCV is unsafe) and load the models once, in their initializer.
* ``run`` blocks the calling thread (the verify queue's executor thread), not the event loop.
* A worker that dies (a decoder crash on a malicious file) breaks the pool: it is rebuilt and the
  job retried once; a second crash raises :class:`NotePoolError`, which the caller reports as an
  unreadable video. The bot process is never at risk.
* Workers are replaced after ``max_tasks_per_child`` notes, bounding any native memory growth.
"""
from __future__ import annotations

import cv2
import logging
import multiprocessing
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Optional, TypeVar

from integrations.presence.note_analysis import warm_up

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_TASKS_PER_CHILD = 1000


class NotePoolError(RuntimeError):
    """The pool's worker died twice on one job."""


def _initialize_worker() -> None:
    """Runs once in each new worker: one OpenCV thread (the pool gives each note one core; more
    threads per worker only fight each other), and the models built before the first note."""
    cv2.setNumThreads(1)
    warm_up()


def _ready() -> bool:
    return True


class NotePool:
    """``processes`` workers, started on :meth:`start` or on the first :meth:`run`."""

    def __init__(self, processes: int, *, max_tasks_per_child: int = MAX_TASKS_PER_CHILD):
        if processes < 1:
            raise ValueError("a NotePool needs at least one process (0 means: decode in the caller's thread)")
        self.processes = int(processes)
        self.max_tasks_per_child = max(1, int(max_tasks_per_child))
        self._lock = threading.Lock()
        self._executor: Optional[ProcessPoolExecutor] = None
        self.restarts = 0

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_initialize_worker,
                    max_tasks_per_child=self.max_tasks_per_child,
                )
            return self._executor

    def start(self) -> None:
        """Start the workers and load their models now, without waiting (call at start-up)."""
        pool = self._pool()
        for _ in range(self.processes):
            pool.submit(_ready)

    def _rebuild(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:
                self._executor = None
                self.restarts += 1
        broken.shutdown(wait=False, cancel_futures=True)

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in a worker and wait for it (blocking the calling thread).

        ``fn`` must be a module-level function; arguments and result must pickle.
        """
        for attempt in (1, 2):
            pool = self._pool()
            try:
                future: Future[T] = pool.submit(fn, *args, **kwargs)
                return future.result()
            except BrokenProcessPool:
                log.warning("a note worker process died (attempt %d); restarting the pool", attempt)
                self._rebuild(pool)
        raise NotePoolError("the note worker died twice on this job")

    def close(self) -> None:
        """Stop the workers (running jobs finish first). A later :meth:`run` starts new ones."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
