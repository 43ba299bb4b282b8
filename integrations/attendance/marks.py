"""Marks by hand: a teacher's `/mark`, or a teacher or admin in the web panel, sets a student's
status; one set of rules for both.

* A mark that changes nothing changes nothing: a student already present (by face or by hand)
  stays as they are, nothing is sent to the attendance API and no history is written.
* A mark that changes the status is stored with method ``manual`` and keeps its history on the
  record (who, when, why, the previous status and method), then goes to the roster backend (a
  PUT on the http backend). If the API is down, the record waits in the outbox like a face match.
* Every change is an audit event (``manual_mark``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

from integrations.attendance import audit as events
from integrations.attendance.audit import AuditLog
from integrations.foundation import names
from integrations.foundation.blocking import run_blocking
from integrations.foundation.errors import UNAVAILABLE_KEYS, UNKNOWN_SESSION, UNKNOWN_STUDENT, RosterError
from integrations.roster.service import RosterService
from integrations.storage import outbox

log = logging.getLogger(__name__)

MARKED, UNCHANGED, QUEUED, UNKNOWN, NO_SESSION = "marked", "unchanged", "queued", "unknown", "no_session"
REASON_MAX = 200
MAX_STUDENT_ID = 64


@dataclass(frozen=True)
class MarkResult:
    outcome: str  # marked | unchanged | queued (stored; waits for the attendance API) | unknown | no_session
    student_id: str
    name: str = ""
    status: str = ""  # the student's status now
    previous: str = ""  # the status before (absent when there was no record)
    error: str = ""  # why a `queued` mark was not sent (api_unavailable, credentials_changed, ...)


async def mark_by_hand(roster: RosterService, audit: Optional[AuditLog], session_id: str, student_id: str,
                       status: str = names.PRESENT, *, by: str, reason: str, user_id: Optional[int] = None,
                       subject: str = "") -> MarkResult:
    """Set ``student_id``'s status in the session by hand; ``by`` names who did it
    (``teacher:Asha Rao``, ``admin:ops``), ``reason`` why (required, capped)."""
    reason = " ".join(str(reason or "").split())[:REASON_MAX]
    if not reason:
        raise ValueError("a manual mark needs a reason")
    session = await roster.find_session(session_id, student_id)
    if session is None:
        return MarkResult(NO_SESSION, student_id)
    entry = session.student(student_id)
    if entry is None:
        return MarkResult(UNKNOWN, student_id)
    before = await roster.attendance_of(session_id, student_id)
    previous = before.status if before is not None else names.ABSENT
    try:
        record, changed = await roster.override_mark(session_id, student_id, status, by=by, reason=reason)
    except RosterError as exc:
        if exc.message_key in (UNKNOWN_STUDENT, UNKNOWN_SESSION):
            return MarkResult(UNKNOWN, student_id, entry.name)
        raise
    if not changed:
        return MarkResult(UNCHANGED, student_id, entry.name, previous, previous)
    outcome = MARKED
    try:
        # The local record has the new status already: this only sends it (nothing if local).
        await roster.submit_attendance(session_id, student_id, status, names.BY_HAND)
    except RosterError as exc:
        if exc.message_key not in UNAVAILABLE_KEYS:
            raise
        error = exc.message_key
    else:
        error = ""
    if error:
        log.warning("manual mark of %s in session %s waits for the attendance API (%s)", student_id, session_id, error)
        await run_blocking(lambda: outbox.enqueue_attendance(
            session_id, student_id, status, names.BY_HAND, subject=subject or session.subject, error=error))
        outcome = QUEUED
    if audit is not None:
        await audit.record(events.MANUAL_MARK, session_id=session_id, student_id=student_id, user_id=user_id,
                           actor=by, reason=reason, from_status=previous, to_status=status,
                           synced=outcome == MARKED)
    log.info("manual mark of %s in session %s: %s -> %s by %s", student_id, session_id, previous, status, by)
    return MarkResult(outcome, student_id, entry.name, status, previous, error)


def valid_request(student_id: str, reason: str) -> bool:
    """A student id (at most 64 characters) and a non-empty reason."""
    return bool(student_id.strip()) and bool(reason.strip()) and len(student_id.strip()) <= MAX_STUDENT_ID
