"""Bounded verification queue: face checks run in a thread pool so the bot keeps answering.

``submit`` never blocks and never drops silently: it returns False when the queue is full (or
closed) and the caller tells the student to resend. Each job's async ``on_done`` receives a
:class:`VerifyOutcome`. Failed attempts are counted per (session, student): only the student's
own failures (``mismatch``, ``no_face``) count; after ``max_attempts`` of them the outcome is
``attempts_exhausted`` and no more verification calls are made for that pair.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional

from integrations.foundation.names import attempt_key
from integrations.presence.faces.base import (
    SERVICE_ERROR,
    STUDENT_FAULTS,
    FaceResult,
    FaceVerifier,
)
from integrations.presence.video import extract_frame

log = logging.getLogger(__name__)

ATTEMPTS_EXHAUSTED = "attempts_exhausted"


@dataclass(frozen=True)
class VerifyOutcome:
    """What ``on_done`` receives. ``cause`` keeps the last real reason behind ``attempts_exhausted``."""

    ok: bool
    reason: str
    attempts_used: int
    attempts_left: int
    max_attempts: int
    face: Optional[FaceResult] = None
    cause: str = ""
    wait_s: float = 0.0
    run_s: float = 0.0

    @property
    def message_key(self) -> str:
        return self.reason

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attempts_used": self.attempts_used,
            "attempts_left": self.attempts_left,
            "max_attempts": self.max_attempts,
        }
        if self.face is not None:
            out.update(similarity=self.face.similarity, distance=self.face.distance)
        return out


OnDone = Callable[[VerifyOutcome], Awaitable[None]]


@dataclass
class VerifyJob:
    """One video note to verify. ``meta`` is passed back untouched (chat ids, message ids...).

    ``prior_failures`` lets a caller that persists the counter (e.g. across restarts) seed it.
    """

    session_id: str
    student_id: str
    batch: str
    data: bytes
    on_done: OnDone
    meta: dict[str, Any] = field(default_factory=dict)
    prior_failures: int = 0
    submitted_at: float = field(default_factory=time.monotonic)
    user_id: Optional[int] = None  # the Telegram account that sent the note: attempts count per account too

    @property
    def key(self) -> tuple[str, str]:
        return (str(self.session_id), attempt_key(self.student_id, self.user_id))


Processor = Callable[[VerifyJob], FaceResult]


class VideoNoteProcessor:
    """Default blocking work: pick the frame from the note, then ask the verifier.

    ``require_face=False`` sends frame 7 to the verifier even when the cheap detector saw no face
    (useful with Rekognition, whose detector is better; costs a paid call per faceless note).
    """

    def __init__(self, verifier: FaceVerifier, *, require_face: bool = True, max_seconds: Optional[float] = None):
        self.verifier = verifier
        self.require_face = require_face
        self.max_seconds = max_seconds

    def __call__(self, job: VerifyJob) -> FaceResult:
        frame = extract_frame(job.data, max_seconds=self.max_seconds)
        usable = frame.ok or (frame.reason == "no_face" and not self.require_face and frame.frame_jpeg)
        if not usable:
            return FaceResult(False, frame.reason, backend=self.verifier.name)
        assert frame.frame_jpeg is not None
        return self.verifier.verify(frame.frame_jpeg, job.batch, job.student_id)


def _p95(values: "deque[float]") -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 4)


class VerifyQueue:
    """``capacity`` waiting jobs, ``workers`` running at once (each in its own pool thread)."""

    def __init__(
        self,
        process: Processor,
        *,
        capacity: int = 1000,
        workers: int = 8,
        max_attempts: int = 3,
        executor: Optional[ThreadPoolExecutor] = None,
        window: int = 10000,
    ):
        self.process = process
        self.capacity = max(1, int(capacity))
        self.workers = max(1, int(workers))
        self.max_attempts = max(1, int(max_attempts))
        self._queue: asyncio.Queue[VerifyJob] = asyncio.Queue(maxsize=self.capacity)
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(self.workers, thread_name_prefix="verify")
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._failures: dict[tuple[str, str], int] = {}
        self._in_flight = 0
        self._peak = 0
        self._counts: Counter[str] = Counter()
        self._outcomes: Counter[str] = Counter()
        self._waits: deque[float] = deque(maxlen=window)
        self._totals: deque[float] = deque(maxlen=window)

    @classmethod
    def from_settings(cls, process: Processor, settings: Any, **kwargs: Any) -> "VerifyQueue":
        return cls(
            process,
            capacity=settings.verify_queue_capacity,
            workers=settings.verify_workers,
            max_attempts=settings.face_max_attempts,
            **kwargs,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker tasks (idempotent; needs a running loop, ``submit`` calls it)."""
        if self._tasks or self._closed:
            return
        self._tasks = [asyncio.create_task(self._worker(i), name=f"verify-{i}") for i in range(self.workers)]

    async def drain(self) -> None:
        """Wait until every queued and running job has finished (its on_done included)."""
        if self._queue.qsize() or self._in_flight:
            self.start()
        await self._queue.join()

    async def close(self) -> None:
        """Refuse new jobs, finish everything accepted, then stop workers and the pool."""
        self._closed = True
        if self._tasks:
            await self._queue.join()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._own_executor:
            self._executor.shutdown(wait=False)

    # -- submitting ------------------------------------------------------------------------

    def submit(self, job: VerifyJob) -> bool:
        """Queue ``job``; False when full or closed (tell the student to resend)."""
        if self._closed:
            self._counts["rejected"] += 1
            return False
        self.start()
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._counts["rejected"] += 1
            return False
        self._counts["submitted"] += 1
        self._peak = max(self._peak, self._queue.qsize())
        return True

    def attempts(self, session_id: str, student_id: str, user_id: Optional[int] = None) -> int:
        return self._failures.get((str(session_id), attempt_key(student_id, user_id)), 0)

    def forget_session(self, session_id: str) -> None:
        """Drop the attempt counters of a finished session (keeps memory bounded)."""
        sid = str(session_id)
        for key in [k for k in self._failures if k[0] == sid]:
            del self._failures[key]

    # -- work ------------------------------------------------------------------------------

    async def _worker(self, number: int) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await self._queue.get()
            self._in_flight += 1
            try:
                outcome = await self._run(loop, job)
                self._totals.append(time.monotonic() - job.submitted_at)
                self._outcomes[outcome.reason] += 1
                try:
                    await job.on_done(outcome)
                except Exception:
                    self._counts["callback_errors"] += 1
                    log.exception("verification on_done callback failed")
            finally:
                self._in_flight -= 1
                self._queue.task_done()

    async def _run(self, loop: asyncio.AbstractEventLoop, job: VerifyJob) -> VerifyOutcome:
        started = time.monotonic()
        wait = started - job.submitted_at
        self._waits.append(wait)
        key = job.key
        failures = max(self._failures.get(key, 0), int(job.prior_failures or 0))
        self._failures[key] = failures
        if failures >= self.max_attempts:
            return VerifyOutcome(False, ATTEMPTS_EXHAUSTED, failures, 0, self.max_attempts, wait_s=wait)
        try:
            face = await loop.run_in_executor(self._executor, self.process, job)
        except Exception as exc:  # processors should not raise; keep the worker alive if one does
            log.exception("verification processor failed")
            face = FaceResult(False, SERVICE_ERROR, detail=type(exc).__name__)
        run = time.monotonic() - started
        counted = not face.matched and face.reason in STUDENT_FAULTS
        if counted:
            failures = self._failures[key] = max(self._failures.get(key, 0), failures) + 1
        left = max(0, self.max_attempts - failures)
        reason = ATTEMPTS_EXHAUSTED if counted and left == 0 else face.reason
        return VerifyOutcome(
            face.matched, reason, failures, left, self.max_attempts, face, face.reason, wait, run
        )

    # -- metrics ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Current depth, peak depth, in-flight, p95 waits (seconds) and outcome counts."""
        return {
            "depth": self._queue.qsize(),
            "peak_depth": self._peak,
            "capacity": self.capacity,
            "workers": self.workers,
            "in_flight": self._in_flight,
            "submitted": self._counts["submitted"],
            "rejected": self._counts["rejected"],
            "completed": sum(self._outcomes.values()),
            "callback_errors": self._counts["callback_errors"],
            "wait_p95_s": _p95(self._waits),
            "total_p95_s": _p95(self._totals),
            "outcomes": dict(self._outcomes),
            "closed": self._closed,
        }
