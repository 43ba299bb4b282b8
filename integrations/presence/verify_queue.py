"""Bounded verification queue: face checks run in a thread pool so the bot keeps answering.

The decoding half of each check (frame choice, liveness) can run in a process pool
(:class:`.note_pool.NotePool`, ``VERIFY_PROCESSES``), so it never holds the event loop's GIL.

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
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable, Optional

from integrations.foundation.names import attempt_key
from integrations.presence import liveness as lv
from integrations.presence.faces.base import (
    CORRUPT_VIDEO,
    NO_FACE,
    NOT_LIVE,
    SERVICE_ERROR,
    STUDENT_FAULTS,
    TOO_SHORT,
    FaceResult,
    FaceVerifier,
)
from integrations.presence.note_analysis import NoteAnalysis, analyse_note, verify_in_worker
from integrations.presence.note_pool import NotePool, NotePoolError

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

    @property
    def liveness(self) -> Optional[lv.LivenessResult]:
        """The note's liveness verdict (None when the note was not analysed, e.g. attempts exhausted)."""
        return self.face.liveness if self.face is not None else None

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
    """Default blocking work: analyse the note (frame + liveness), then ask the verifier.

    ``require_face=False`` sends frame 7 to the verifier even when the cheap detector saw no face
    (useful with Rekognition, whose detector is better; costs a paid call per faceless note).

    ``liveness`` is the LIVENESS mode: ``off`` (only the minimum length is checked), ``flag`` (the
    verdict rides along on the result, ``FaceResult.liveness``, and a doubtful note still matches)
    or ``enforce`` (a doubtful note is refused with ``not_live`` and the verifier is not called).
    Whatever the mode, a note under a second or with too few frames (with a face) is refused with
    ``too_short``: a still picture sent as a note must not match.

    ``pool`` runs the analysis in worker processes; without one it runs in the calling thread.
    """

    def __init__(
        self,
        verifier: FaceVerifier,
        *,
        require_face: bool = True,
        max_seconds: Optional[float] = None,
        liveness: str = lv.FLAG,
        liveness_params: lv.LivenessParams = lv.DEFAULT_PARAMS,
        pool: Optional[NotePool] = None,
    ):
        if liveness not in lv.MODES:
            raise ValueError(f"unknown liveness mode {liveness!r} (expected one of {', '.join(lv.MODES)})")
        self.verifier = verifier
        self.require_face = require_face
        self.max_seconds = max_seconds
        self.liveness = liveness
        self.liveness_params = liveness_params
        self.pool = pool

    def analyse(self, data: bytes) -> NoteAnalysis:
        """The decoding half, in the pool when there is one."""
        kwargs = dict(liveness_mode=self.liveness, max_seconds=self.max_seconds, params=self.liveness_params)
        if self.pool is None:
            return analyse_note(data, **kwargs)
        return self.pool.run(analyse_note, bytes(data), **kwargs)

    def __call__(self, job: VerifyJob) -> FaceResult:
        try:
            analysis = self.analyse(job.data)
        except NotePoolError:
            return FaceResult(False, CORRUPT_VIDEO, backend=self.verifier.name, detail="note worker crashed")
        return self.decide(analysis, lambda frame: self.verify(frame, job.batch, job.student_id))

    def verify(self, frame_jpeg: bytes, batch: str, student_id: str) -> FaceResult:
        """``verifier.verify``, in the pool when the verifier can run there (the local dlib one:
        its ~90 ms embedding would otherwise hold the bot's GIL). Rekognition waits on the
        network and stays in the thread."""
        pool_args = getattr(self.verifier, "pool_args", None)
        if self.pool is None or not callable(pool_args):
            return self.verifier.verify(frame_jpeg, batch, student_id)
        try:
            return self.pool.run(verify_in_worker, *pool_args(), frame_jpeg, batch, student_id)
        except NotePoolError:
            return FaceResult(False, SERVICE_ERROR, backend=self.verifier.name, detail="note worker crashed")

    def decide(self, analysis: NoteAnalysis, verify: Callable[[bytes], FaceResult]) -> FaceResult:
        """The rules, first failure wins: unreadable or too long; too short (a still picture);
        no face (or a face on too few frames); liveness (enforce only); then ``verify(frame)``.
        The result always carries the liveness verdict."""
        name = self.verifier.name
        frame, live = analysis.frame, analysis.liveness
        if frame.reason in (CORRUPT_VIDEO, "too_long"):
            return FaceResult(False, frame.reason, backend=name, liveness=live)
        if not live.usable:  # under a second or too few frames: a still picture, not a recording
            reason = CORRUPT_VIDEO if live.reason == lv.CORRUPT else TOO_SHORT
            return FaceResult(False, reason, backend=name, detail=live.reason, liveness=live)
        few_faces = live.reason == lv.FEW_FACE_FRAMES
        if self.require_face and (few_faces or not frame.ok):  # a face on too few frames is no face
            return FaceResult(False, NO_FACE, backend=name, detail=live.reason, liveness=live)
        usable = frame.ok or (frame.reason == NO_FACE and not self.require_face and frame.frame_jpeg)
        if not usable:
            return FaceResult(False, frame.reason, backend=name, liveness=live)
        if self.liveness == lv.ENFORCE and not live.live:
            return FaceResult(False, NOT_LIVE, backend=name, detail=",".join(live.reasons), liveness=live)
        assert frame.frame_jpeg is not None
        return replace(verify(frame.frame_jpeg), liveness=live)

    def start(self) -> None:
        """Start the pool's workers now (models load in the background, ~2 s) instead of on the
        first note. The bots call this at start-up; tests and one-off commands do not need to."""
        if self.pool is not None:
            self.pool.start()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


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
        closer = getattr(self.process, "close", None)
        if callable(closer):
            await asyncio.to_thread(closer)

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
