"""What happens when a face check answers: record attendance, park outages, tell the student.

The verification queue calls :meth:`VerificationWorkflow.on_outcome` (through a job's
``on_done``) once per video note. A match is submitted to the roster backend; when the attendance
API is down the record waits in the outbox (it is already stored locally), and when the face
service is down the frame itself waits there. Either way the student hears at once what happened.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional, Protocol

from integrations.attendance import audit as events
from integrations.attendance.audit import AuditLog
from integrations.attendance.frames import FrameKeeper
from integrations.attendance.notify import EventData, Notifier
from integrations.foundation import names
from integrations.foundation.blocking import run_blocking
from integrations.foundation.errors import UNAVAILABLE_KEYS, RosterError
from integrations.foundation.timefmt import clock
from integrations.presence.verify_queue import VerifyOutcome
from integrations.roster.service import RosterService
from integrations.storage import outbox
from integrations.storage.documents import utcnow

log = logging.getLogger(__name__)


class LateMarks(Protocol):
    """What the workflow needs of the report scheduler (attendance/reports.py)."""

    async def late_mark(self, session_id: str) -> bool: ...


# Face reasons the student can fix by recording again: the event the flow answers with.
_RETRYABLE = {names.MISMATCH: names.MISMATCH, names.NO_FACE: names.NO_FACE, names.NOT_LIVE: names.NOT_LIVE}
FACE_CHECK_LEASE_S = 900.0  # a claimed check whose answer never came frees the student after this


@dataclass(frozen=True)
class CheckIn:
    """Who a face check is for and where its answer goes; ``token`` names its claim on the session."""

    chat_id: int
    user_id: int
    session_id: str
    student_id: str
    subject: str
    distance_m: Optional[float] = None
    answers: Optional[dict] = None  # answers the flow keeps with the record (its `record_answers`)
    token: str = ""


class VerificationWorkflow:
    """Turns a :class:`VerifyOutcome` into attendance, outbox entries, audit events and a message.

    The student's failures are counted on the session per student and Telegram account (one
    atomic ``$inc`` per failed check, and only one check in flight per student and session,
    claimed by ``submit_video``), so ``FACE_MAX_ATTEMPTS`` checks means exactly that many. The
    claim is given back only after the answer is recorded, so a report waiting for the session's
    checks sees every answer.
    """

    def __init__(self, roster: RosterService, notify: Notifier, frames: Optional[FrameKeeper], *,
                 timezone: str = "UTC", audit: Optional[AuditLog] = None, max_attempts: int = 3,
                 reports: Optional[LateMarks] = None) -> None:
        self.roster = roster
        self.notify = notify
        self.frames = frames
        self.timezone = timezone
        self.audit = audit
        self.max_attempts = max(1, int(max_attempts))
        self.reports = reports

    async def _audit(self, check: CheckIn, kind: str, outcome: Optional[VerifyOutcome] = None, **data: Any) -> None:
        if self.audit is None:
            return
        face = outcome.face if outcome is not None else None
        if face is not None:
            data.update(similarity=face.similarity, face_distance=face.distance, threshold=face.threshold)
        actor = f"face:{face.backend}" if face is not None and face.backend else "face"
        await self.audit.record(kind, session_id=check.session_id, student_id=check.student_id,
                                user_id=check.user_id, actor=actor, **data)

    async def on_outcome(self, check: CheckIn, outcome: VerifyOutcome) -> None:
        """Record the answer, give the claim back, then tell the student: a student who sends a
        new note as soon as they read the answer must never hear the last one is still running."""
        answer: Optional[tuple[str, Any]] = None
        try:
            answer = await self._answer(check, outcome)
        finally:
            if check.token:
                await self.roster.release_face_check(check.session_id, check.student_id, check.token)
        if answer is not None:
            await self._tell(check, *answer)

    async def _answer(self, check: CheckIn, outcome: VerifyOutcome) -> tuple[str, Any]:
        """Record what the outcome means; returns the event to tell the student, with its data."""
        face = outcome.face
        params = outcome.params()
        reason = outcome.reason
        if outcome.ok:
            now, zone = utcnow(), self.timezone

            def data(language: str) -> dict[str, Any]:  # the time as the student's language writes it
                return {"subject": check.subject, "marked_time": clock(now, zone, language=language)}

            await self._audit(check, events.FACE_MATCH, outcome, attempts_used=outcome.attempts_used)
            synced, changed = await self._submit(check, names.PRESENT, face)
            await self._audit(check, events.PRESENT, outcome, distance_m=check.distance_m, synced=synced)
            if changed:
                await self._late(check)
            return (names.VERIFIED if synced else names.RECORDED_OFFLINE), data
        if reason in _RETRYABLE or (reason == names.ATTEMPTS_EXHAUSTED and outcome.cause in _RETRYABLE):
            failures = await self.roster.face_check_failed(check.session_id, check.student_id, check.user_id)
            params.update(attempts_used=failures, attempts_left=max(0, self.max_attempts - failures),
                          max_attempts=self.max_attempts)
            if failures >= self.max_attempts:
                reason = names.ATTEMPTS_EXHAUSTED
            cause = outcome.cause if outcome.cause in _RETRYABLE else outcome.reason
            kind = {names.MISMATCH: events.FACE_MISMATCH, names.NOT_LIVE: events.FACE_NOT_LIVE}.get(
                cause, events.FACE_NO_FACE)
            await self._audit(check, kind, outcome, attempts_left=params["attempts_left"])
        if reason in _RETRYABLE:
            return _RETRYABLE[reason], params
        if reason == names.ATTEMPTS_EXHAUSTED:
            _, changed = await self._submit(check, names.FAILED, face)
            await self._audit(check, events.FAILED, outcome, attempts_used=params.get("attempts_used"))
            if changed:
                await self._late(check)
            return names.ATTEMPTS_EXHAUSTED, params
        if reason in (names.TOO_SHORT, names.NO_REFERENCE):  # too short: a still picture or one frame
            return reason, params
        if reason in names.FACE_SERVICE_DOWN:
            kept = await self._park_frame(check, reason)
            await self._audit(check, events.FACE_UNCHECKED, reason=reason, kept=kept)
            return (names.QUEUED_OFFLINE if kept else names.RETRY_LATER), params
        log.info("video of %s not usable: %s", check.student_id, reason)  # corrupt video, undecodable frame
        return names.BAD_VIDEO, params

    async def _tell(self, check: CheckIn, event: str, data: Optional[EventData] = None) -> None:
        """The answer is *about* its session: the student's flow applies it only while the
        conversation is still about that session, and otherwise says it is about another class.
        The answer's time is written in the student's language when the engine delivers it."""
        now, zone = utcnow(), self.timezone

        def in_language(language: str) -> dict[str, Any]:
            out = dict(data(language) if callable(data) else (data or {}))
            out.update({names.CHECK_SUBJECT_KEY: check.subject,
                        names.CHECK_TIME_KEY: clock(now, zone, language=language)})
            return out

        await self.notify(names.STUDENT_BOT, check.chat_id, event, in_language, check.user_id,
                          about={"session_id": check.session_id})

    async def _late(self, check: CheckIn) -> None:
        """A mark that may have come after the session's report: the report scheduler corrects it."""
        if self.reports is not None:
            try:
                await self.reports.late_mark(check.session_id)
            except Exception:  # the mark stands; a missing correction must not lose the answer
                log.exception("could not check whether session %s needs a corrected report", check.session_id)

    async def _submit(self, check: CheckIn, status: str, face: Any = None) -> tuple[bool, bool]:
        """Record attendance with the face check's score: (synced, changed); not synced when the
        API is down (the record waits in the outbox)."""
        similarity = getattr(face, "similarity", None)
        verdict = getattr(face, "liveness", None)
        checked = verdict is not None and verdict.checked
        try:
            result = await self.roster.submit_attendance(
                check.session_id, check.student_id, status, names.BY_FACE, similarity=similarity,
                distance_m=check.distance_m, face_distance=getattr(face, "distance", None), answers=check.answers,
                live=verdict.live if checked else None, liveness_score=verdict.score if checked else None)
            return True, bool(getattr(result, "changed", True))
        except RosterError as exc:
            if exc.message_key not in UNAVAILABLE_KEYS:
                raise
            error = exc.message_key
        log.warning("roster backend unavailable: %s", error)
        # Kept locally (unsynced); the outbox worker sends it when the API is back.
        await run_blocking(lambda: outbox.enqueue_attendance(
            check.session_id, check.student_id, status, names.BY_FACE, similarity=similarity,
            distance_m=check.distance_m, chat_id=check.chat_id, user_id=check.user_id,
            subject=check.subject, error=error))
        return False, True

    async def _park_frame(self, check: CheckIn, error: str) -> bool:
        """Keep the frame the face service could not check; False if there is none to keep."""
        kept = self.frames.take(check.student_id) if self.frames is not None else None
        if kept is None:
            return False
        batch, frame = kept
        await run_blocking(lambda: outbox.enqueue_verification(
            check.session_id, check.student_id, batch, frame, distance_m=check.distance_m,
            chat_id=check.chat_id, user_id=check.user_id, subject=check.subject, error=error,
            answers=check.answers))
        return True
