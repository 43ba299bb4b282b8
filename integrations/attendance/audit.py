"""The audit trail: every attendance decision as a structured event, in MongoDB and in the log.

Hooks and workflows call :meth:`AuditLog.record` with one of the kinds below; the web panel and
`python run.py audit SESSION_ID` read them back. An event holds ids, outcomes and numbers (a
face check's score, a distance, attempts left, a teacher's reason), never a code, a phone number,
a password or a token: :func:`clean` drops such fields even if a caller passes them.

Writing an event never fails the decision it records: a database error is logged and swallowed
(the log line is written first, so the decision is still on record there).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
from typing import Any, Iterable, Mapping, Optional
from zoneinfo import ZoneInfo

from integrations.foundation.logs import request_id_var
from integrations.foundation.timefmt import as_utc
from integrations.roster.service import RosterService

log = logging.getLogger("integrations.audit")

# -- the kinds of event (docs/flows.md, "The audit trail")
STUDENT_BOUND = "student_bound"  # a Telegram account now speaks for a student (first use)
BINDING_REFUSED = "binding_refused"  # a second account typed a bound student's id
STUDENT_UNBOUND = "student_unbound"  # a teacher or an admin removed a binding
CODE_ACCEPTED = "code_accepted"
CODE_WRONG = "code_wrong"  # a wrong code (or one of a class the student is not in), counted
CODE_LOCKED = "code_locked"  # locked out of the session by wrong codes
CODE_SLOW_DOWN = "code_slow_down"  # too many wrong codes from one Telegram account
LOCATION_OK = "location_ok"
LOCATION_TOO_FAR = "location_too_far"
LOCATION_INACCURATE = "location_inaccurate"
VIDEO_QUEUED = "video_queued"
FACE_MATCH = "face_match"  # with its score: similarity (Rekognition) or face_distance (local)
FACE_MISMATCH = "face_mismatch"
FACE_NO_FACE = "face_no_face"
FACE_NOT_LIVE = "face_not_live"  # the note looked like a photo held to the camera (LIVENESS=enforce)
FACE_UNCHECKED = "face_unchecked"  # the face service was down: the frame waits in the outbox
PRESENT = "present"  # attendance recorded present (by face)
FAILED = "failed"  # face attempts exhausted: recorded failed
MANUAL_MARK = "manual_mark"  # with who, why, the previous and the new status
SESSION_OPENED = "session_opened"
SESSION_EXTENDED = "session_extended"
SESSION_CLOSED = "session_closed"  # closed early by the teacher (expiry needs no event)
REPORT_SENT = "report_sent"
API_TIMINGS = "api_timings"  # the session's external API calls, summarised when the report is sent

KINDS = (STUDENT_BOUND, BINDING_REFUSED, STUDENT_UNBOUND, CODE_ACCEPTED, CODE_WRONG, CODE_LOCKED, CODE_SLOW_DOWN,
         LOCATION_OK, LOCATION_TOO_FAR, LOCATION_INACCURATE, VIDEO_QUEUED, FACE_MATCH, FACE_MISMATCH, FACE_NO_FACE,
         FACE_NOT_LIVE,
         FACE_UNCHECKED, PRESENT, FAILED, MANUAL_MARK, SESSION_OPENED, SESSION_EXTENDED, SESSION_CLOSED,
         REPORT_SENT, API_TIMINGS)

# Field names that could carry a secret or a personal number: never stored, never logged.
_FORBIDDEN = ("code", "otp", "phone", "password", "token", "secret", "contact")


def clean(data: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """Only safe, plain values: no forbidden field names, floats rounded, NaN dropped."""
    out: dict[str, Any] = {}
    for key, value in (data or {}).items():
        name = str(key)
        if any(bad in name.lower() for bad in _FORBIDDEN) or name.startswith("_"):
            continue
        if isinstance(value, float):
            if not math.isfinite(value):
                continue
            value = round(value, 4)
        elif isinstance(value, (dt.datetime, dt.date)):
            value = value.isoformat()
        elif isinstance(value, Mapping):
            value = clean(value)
        elif value is not None and not isinstance(value, (str, int, bool, list, tuple)):
            value = str(value)
        if value is None or value == "":
            continue
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


class AuditLog:
    """Writes audit events through the roster service (the layer that owns database writes)."""

    def __init__(self, roster: RosterService) -> None:
        self.roster = roster
        self.written = 0
        self.errors = 0

    async def record(self, kind: str, *, session_id: Optional[str] = None, student_id: Optional[str] = None,
                     user_id: Optional[int] = None, actor: str = "", **data: Any) -> None:
        details = clean(data)
        request_id = request_id_var.get() or ""
        log.info("audit %s session=%s student=%s user=%s actor=%s %s", kind, session_id or "-", student_id or "-",
                 user_id if user_id is not None else "-", actor or "-",
                 json.dumps(details, ensure_ascii=False, sort_keys=True, default=str))
        try:
            await self.roster.add_audit_event(kind, session_id=session_id, student_id=student_id, user_id=user_id,
                                              actor=actor, request_id=request_id if request_id != "-" else "",
                                              data=details)
            self.written += 1
        except Exception:  # the decision stands; its log line above is the record
            self.errors += 1
            log.exception("audit event %s could not be stored", kind)

    async def events(self, session_id: str) -> list[Any]:
        return await self.roster.audit_events(session_id)


def format_events(events: Iterable[Any], zone: str = "UTC") -> list[str]:
    """Lines for `run.py audit`: time, kind, student, actor and the details."""
    tz = ZoneInfo(zone)
    lines = []
    for e in events:
        moment = as_utc(e.at).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if e.at else "-"
        details = " ".join(f"{k}={json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v}"
                           for k, v in sorted((e.data or {}).items()))
        lines.append(f"{moment}  {e.kind:<18} {e.student_id or '-':<14} {e.actor or '-':<22} {details}".rstrip())
    return lines
