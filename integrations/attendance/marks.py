"""A teacher's manual mark: one set of rules and one audit note for Telegram's /mark and the web panel.

The teacher vouches for a student of an open session: the record becomes present with
method=manual and the reason is kept on the record as its note ("manual by teacher: ...").
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

from integrations.foundation import names
from integrations.foundation.timefmt import as_utc
from integrations.roster.service import RosterService
from integrations.storage.documents import Session, utcnow

log = logging.getLogger(__name__)

MAX_STUDENT_ID = 64
MAX_REASON = 200  # characters of the reason kept in the note
OK, ALREADY, INVALID, UNKNOWN, CLOSED = "ok", "already", "invalid", "unknown", "closed"


@dataclass(frozen=True)
class MarkResult:
    outcome: str  # ok | already | invalid | unknown | closed
    student_id: str
    name: str = ""


def valid_request(student_id: str, reason: str) -> bool:
    """A student id (at most 64 characters) and a non-empty reason."""
    return bool(student_id.strip()) and bool(reason.strip()) and len(student_id.strip()) <= MAX_STUDENT_ID


def is_open(session: Optional[Session]) -> bool:
    return session is not None and session.status == "open" and as_utc(session.expires_at) > utcnow()


def note_for(reason: str, by: str = "teacher") -> str:
    return f"manual by {by}: {reason.strip()[:MAX_REASON]}"


async def manual_mark(roster: RosterService, session: Optional[Session], student_id: str, reason: str,
                      by: str = "teacher") -> MarkResult:
    """Mark ``student_id`` present by hand in ``session`` (which must be open and list them)."""
    student_id = student_id.strip()
    if not valid_request(student_id, reason):
        return MarkResult(INVALID, student_id[:MAX_STUDENT_ID])
    if session is None or not is_open(session):
        return MarkResult(CLOSED, student_id)
    entry = session.student(student_id)
    if entry is None:
        return MarkResult(UNKNOWN, student_id)
    result = await roster.submit_attendance(str(session.id), student_id, names.PRESENT, names.BY_HAND)
    await roster.set_note(str(session.id), student_id, note_for(reason, by))
    log.info("manual mark of %s in session %s", student_id, session.id)
    return MarkResult(OK if result.changed else ALREADY, student_id, entry.name or "")
