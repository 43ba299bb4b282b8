"""The outbox worker: delivers what an API or face-service outage left waiting.

Lanes are worked strictly in order (see :mod:`integrations.storage.outbox` for the entries and
their atomic transitions): kept frames are checked when the face service is back, attendance is
sent when the API is back, and the students hear the result in their chat. Started and stopped
with the app; ``python run.py outbox --retry`` runs one pass from the command line.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Optional

from integrations.attendance.notify import Notifier
from integrations.foundation import names
from integrations.foundation.blocking import run_blocking
from integrations.foundation.errors import (
    API_UNAVAILABLE,
    UNKNOWN_SESSION,
    UNKNOWN_STUDENT,
    RosterError,
)
from integrations.foundation.timefmt import clock
from integrations.presence.faces.base import STUDENT_FAULTS, FaceResult, FaceVerifier
from integrations.roster import records
from integrations.roster.service import RosterService
from integrations.storage.documents import AttendanceRecord, Session
from integrations.storage.outbox import (
    ATTENDANCE,
    LEASE_SECONDS,
    VERIFICATION,
    DecryptError,
    OutboxEntry,
    claim_head,
    claim_notice,
    finish,
    frame_of,
    give_up,
    notices_waiting,
    pending_count,
    record_of,
    release,
    restore_notice,
    set_record_time,
    to_attendance,
)

log = logging.getLogger(__name__)

PERMANENT_KEYS = frozenset({UNKNOWN_SESSION, UNKNOWN_STUDENT})  # retrying can never succeed
INTERVAL_SECONDS = 15.0  # between passes while all is well
MAX_INTERVAL_SECONDS = 300.0  # backoff cap while a service stays down


@dataclass
class PassResult:
    """What one delivery pass did."""

    delivered: int = 0  # attendance entries now in the API (or found already synced)
    verified: int = 0  # verifications that got an answer from the face service
    failed: int = 0  # entries given up (permanent errors)
    notices: int = 0  # messages posted to students
    stopped: str = ""  # the failures that stopped lanes ("api_unavailable", "throttled", both)
    held: int = 0  # sessions held back by a session-only error this pass
    busy: bool = False  # another worker held the head of a lane
    remaining: int = 0  # pending entries after the pass

    def stop(self, reason: str) -> None:
        if reason not in self.stopped.split(", "):
            self.stopped = f"{self.stopped}, {reason}" if self.stopped else reason

    @property
    def ok(self) -> bool:
        return not self.stopped and not self.held

    def summary(self) -> str:
        text = (f"delivered {self.delivered}, verified {self.verified}, failed {self.failed}, "
                f"notified {self.notices}; {self.remaining} still pending")
        if self.stopped:
            text += f"; stopped: {self.stopped}"
        if self.held:
            text += f"; {self.held} session(s) held back"
        if self.busy:
            text += "; another worker is delivering"
        return text


class OutboxWorker:
    """Delivers the outbox: verification lane, then attendance lane, then students' messages.

    ``verifier`` checks kept frames (None: verification entries wait); ``notify`` posts messages
    to students (None: they wait for a worker that has one, i.e. the running bots).
    """

    def __init__(self, roster: RosterService, verifier: Optional[FaceVerifier] = None,
                 notify: Optional[Notifier] = None, *, timezone: str = "UTC", interval: float = INTERVAL_SECONDS,
                 max_interval: float = MAX_INTERVAL_SECONDS, lease_s: float = LEASE_SECONDS,
                 worker_id: Optional[str] = None) -> None:
        self.roster = roster
        self.verifier = verifier
        self.notify = notify
        self.timezone = timezone
        self.interval = float(interval)
        self.max_interval = max(float(max_interval), self.interval)
        self.lease_s = float(lease_s)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.passes = 0
        self.last: Optional[PassResult] = None
        self.delays: collections.deque[float] = collections.deque(maxlen=20)  # recent waits between passes
        self._task: Optional[asyncio.Task[None]] = None
        self._pass_lock: Optional[asyncio.Lock] = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background task (idempotent; needs a running loop)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="outbox")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _loop(self) -> None:
        delay = self.interval
        while True:
            try:
                result = await self.run_once()
                delay = self.interval if result.ok else min(self.max_interval, max(delay, self.interval) * 2)
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup must not end the worker
                log.exception("outbox pass failed")
                delay = min(self.max_interval, max(delay, self.interval) * 2)
            self.delays.append(delay)
            await asyncio.sleep(delay)

    # -- one pass ----------------------------------------------------------------------------
    async def run_once(self) -> PassResult:
        """One delivery pass over every lane; never two at once in this worker."""
        if self._pass_lock is None:
            self._pass_lock = asyncio.Lock()
        async with self._pass_lock:
            result = PassResult()
            await self._verification_lane(result)
            await self._attendance_lane(result)
            await self._notify(result)
            result.remaining = await run_blocking(pending_count)
            self.passes += 1
            self.last = result
            if result.delivered or result.verified or result.failed or result.stopped:
                log.info("outbox pass: %s", result.summary())
            return result

    async def _claim(self, kind: str, skip: set[str], result: PassResult) -> Optional[OutboxEntry]:
        entry, busy = await run_blocking(
            lambda: claim_head(kind, self.worker_id, skip_sessions=set(skip), lease_s=self.lease_s))
        result.busy = result.busy or busy
        return entry

    async def _attendance_lane(self, result: PassResult) -> None:
        held: set[str] = set()
        while True:
            entry = await self._claim(ATTENDANCE, held, result)
            if entry is None:
                break
            outcome = await self._deliver(entry)
            if outcome == "stop":
                result.stop(API_UNAVAILABLE)
                break
            if outcome == "held":
                held.add(entry.session_id)
            elif outcome == "failed":
                result.failed += 1
            else:
                result.delivered += 1
        result.held = len(held)

    async def _deliver(self, entry: OutboxEntry) -> str:
        record = await run_blocking(record_of, entry)
        if record is not None and record.synced:
            await run_blocking(finish, entry, self.worker_id, "already_synced")
            return "delivered"
        payload = entry.payload or {}
        status = record.status if record is not None else payload.get("status", "present")
        method = record.method if record is not None else payload.get("method", "face")
        try:
            await self.roster.submit_attendance(
                entry.session_id, entry.student_id, status, method,
                similarity=payload.get("similarity"), distance_m=payload.get("distance_m"))
        except RosterError as exc:
            key = exc.message_key
            if key == API_UNAVAILABLE:  # the API is down: nothing behind this entry may overtake it
                await run_blocking(release, entry, self.worker_id, key)
                return "stop"
            if key in PERMANENT_KEYS:
                log.warning("outbox: %s can never be delivered (%s)", entry.key, key)
                await run_blocking(give_up, entry, self.worker_id, key)
                return "failed"
            log.warning("outbox: %s held back (%s)", entry.key, key)  # e.g. the teacher logged out
            await run_blocking(release, entry, self.worker_id, key)
            return "held"
        except Exception as exc:  # a bug or a database error: keep the entry, hold its session
            log.exception("outbox: delivering %s failed", entry.key)
            await run_blocking(release, entry, self.worker_id, type(exc).__name__)
            return "held"
        await run_blocking(finish, entry, self.worker_id, "synced")
        return "delivered"

    async def _verification_lane(self, result: PassResult) -> None:
        if self.verifier is None:
            return
        while True:
            entry = await self._claim(VERIFICATION, set(), result)
            if entry is None:
                return
            try:
                frame = await run_blocking(frame_of, entry)
            except DecryptError:  # kept under a SECRET_KEY that is gone: it can never be checked
                log.warning("outbox: the kept frame of %s cannot be decrypted (SECRET_KEY changed?)", entry.key)
                await run_blocking(give_up, entry, self.worker_id, "frame_unreadable")
                result.failed += 1
                continue
            batch = str((entry.payload or {}).get("batch") or "")
            record = await run_blocking(record_of, entry)
            if record is not None and record.status == names.PRESENT:  # marked meanwhile (retry, teacher)
                await run_blocking(finish, entry, self.worker_id, "already_present")
                result.verified += 1
                continue
            try:
                face = await run_blocking(self.verifier.verify, frame, batch, entry.student_id)
            except Exception as exc:  # verifiers should not raise; treat it as the service failing
                log.exception("outbox: verifier failed")
                face = FaceResult(False, names.SERVICE_ERROR, detail=type(exc).__name__)
            if face.reason in names.FACE_SERVICE_DOWN:
                await run_blocking(release, entry, self.worker_id, face.reason)
                result.stop(face.reason)
                return
            try:
                await run_blocking(self._settle_verification, entry, face)
            except RosterError as exc:
                if exc.message_key not in PERMANENT_KEYS:
                    raise
                await run_blocking(give_up, entry, self.worker_id, exc.message_key)
                result.failed += 1
                continue
            except Exception as exc:  # a database error: keep the entry (and its frame) for later
                log.exception("outbox: recording the late check of %s failed", entry.key)
                await run_blocking(release, entry, self.worker_id, type(exc).__name__)
                result.stop(type(exc).__name__)
                return
            result.verified += 1

    def _settle_verification(self, entry: OutboxEntry, face: FaceResult) -> None:
        """Record the answer of a late face check locally; the attendance lane sends it on."""
        payload = dict(entry.payload or {})
        if not (face.matched or face.reason in STUDENT_FAULTS):  # no reference photo, unusable frame
            finish(entry, self.worker_id, face.reason, self._notice(entry, names.NOT_VERIFIED_LATER, None))
            return
        session = records.get_session(entry.session_id, entry.student_id)
        records.require_snapshot_student(session, entry.student_id)
        status = names.PRESENT if face.matched else names.FAILED
        if not face.matched:
            Session.record_face_failure(session.id, names.attempt_key(entry.student_id, entry.user_id))
        record, changed = AttendanceRecord.mark(session.id, entry.student_id, status, "face",
                                                similarity=face.similarity, distance_m=payload.get("distance_m"),
                                                face_distance=face.distance, answers=payload.get("answers"))
        if changed and record.rev == 1 and entry.created_at:
            # Present since the video arrived, not since the service came back.
            record = set_record_time(record, entry.created_at)
        payload.update(status=status, method="face", similarity=face.similarity)
        event = names.VERIFIED_LATER if face.matched else names.NOT_VERIFIED_LATER
        to_attendance(entry, self.worker_id, payload, face.reason, self._notice(entry, event, record))

    def _notice(self, entry: OutboxEntry, event: str, record: Optional[AttendanceRecord]) -> Optional[dict]:
        if entry.chat_id is None:
            return None
        moment = record.time if record is not None else entry.created_at
        return {"event": event, "data": {"_later_subject": entry.subject or "", "_later_time": clock(moment, self.timezone)}}

    async def _notify(self, result: PassResult) -> None:
        if self.notify is None:
            return
        for entry in await run_blocking(notices_waiting):
            if not await run_blocking(claim_notice, entry):  # another worker posts it
                continue
            notice = entry.notice or {}
            try:
                # Our events always answer; no answer means the engine refused it (stopping).
                said = await self.notify(entry.bot or names.STUDENT_BOT, int(entry.chat_id),
                                         str(notice.get("event")), dict(notice.get("data") or {}), entry.user_id)
            except Exception:
                log.exception("outbox: telling %s failed; will try again", entry.key)
                said = None
            if not said:
                await run_blocking(restore_notice, entry)
                continue
            result.notices += 1
