"""The one place that knows the external API's paths and field names.

The real schema is not public; docs/external-api.md describes the contract implemented here.
A deployment whose API differs subclasses :class:`ApiAdapter` (or edits it) and passes it to
the client; nothing else changes. Parsers validate the whole answer and raise
``ApiError("bad_response")`` rather than return something partial.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Optional

from integrations.foundation.errors import BAD_RESPONSE, ApiError
from integrations.foundation.phones import normalise_phone
from integrations.foundation.text import clean_text
from integrations.roster.base import Assignment, StudentInfo

STATUSES = ("present", "absent", "failed")


@dataclass(frozen=True)
class LoginResult:
    access: str
    refresh: Optional[str]
    mentor_id: str
    name: str = ""
    email: str = ""
    phone: str = ""

    def __repr__(self) -> str:  # never show tokens
        return f"LoginResult(mentor_id={self.mentor_id!r}, name={self.name!r})"


@dataclass(frozen=True)
class RemoteMark:
    student_id: str
    status: str
    time: Optional[dt.datetime] = None


@dataclass(frozen=True)
class AttendanceSubmission:
    """What we tell the API about one student in one session."""

    session_id: str
    mentor_id: str
    subject: str
    batches: tuple[str, ...]
    date: dt.date
    student_id: str
    batch: str
    status: str
    method: str
    time: dt.datetime


def _bad(what: str) -> ApiError:
    return ApiError(BAD_RESPONSE, f"unexpected API answer: {what}")


def _text(item: dict, key: str, *, required: bool = True) -> str:
    value = item.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _bad(f"missing {key!r}")
        return ""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise _bad(f"{key!r} is not text")
    return str(value).strip()


def _items(payload: Any, key: str = "data") -> list[dict]:
    """Accept ``{"data": [...]}`` or a bare list; every item must be an object."""
    items = payload.get(key) if isinstance(payload, dict) else payload
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise _bad(f"expected a list under {key!r}")
    return items


def _time(value: Any) -> Optional[dt.datetime]:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise _bad("bad time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


class ApiAdapter:
    """Paths, request bodies and response parsing for the external attendance API."""

    refresh_path = "/refresh"
    logout_path = "/logout"
    assignments_path = "/attendance"  # GET, filtered by mentor
    students_path = "/attend"
    attendance_path = "/attendance"  # POST first student, PUT after; GET ?session_id= for the report

    def __init__(self, login_path: str = "/login"):
        self.login_path = login_path

    # -- auth

    def login_body(self, email: str, password: str) -> dict:
        return {"email": email, "password": password}

    def parse_login(self, payload: Any) -> LoginResult:
        if not isinstance(payload, dict):
            raise _bad("login answer is not an object")
        access = _text(payload, "access_token")
        refresh = _text(payload, "refresh_token", required=False) or None
        user = payload.get("user")
        if not isinstance(user, dict):
            raise _bad("login answer has no user")
        return LoginResult(
            access=access,
            refresh=refresh,
            mentor_id=_text(user, "id"),
            name=clean_text(_text(user, "name", required=False)),
            email=_text(user, "email", required=False).lower(),
            phone=normalise_phone(_text(user, "phone", required=False)),
        )

    def refresh_body(self, refresh_token: str) -> dict:
        return {"refresh_token": refresh_token}

    def parse_refresh(self, payload: Any) -> tuple[str, Optional[str]]:
        """(access, rotated refresh or None to keep the old one)."""
        if not isinstance(payload, dict):
            raise _bad("refresh answer is not an object")
        return _text(payload, "access_token"), (_text(payload, "refresh_token", required=False) or None)

    # -- roster

    def assignments_params(self, mentor_id: str) -> dict:
        return {"mentor_id": mentor_id}

    def parse_assignments(self, payload: Any) -> list[Assignment]:
        found = {Assignment(_text(i, "batch"), _text(i, "subject")) for i in _items(payload)}
        return sorted(found)

    def students_params(self, batch: str, subject: str) -> dict:
        return {"batch": batch, "subject": subject}

    def parse_students(self, payload: Any, batch: str) -> list[StudentInfo]:
        students: dict[str, StudentInfo] = {}
        for item in _items(payload):
            student = StudentInfo(
                student_id=_text(item, "student_id"),
                name=clean_text(_text(item, "name")),
                batch=_text(item, "batch", required=False) or batch,
                phone=normalise_phone(_text(item, "phone", required=False)),
            )
            students[student.student_id] = student
        return sorted(students.values(), key=lambda s: s.student_id)

    # -- attendance

    def attendance_body(self, sub: AttendanceSubmission) -> dict:
        return {
            "session_id": sub.session_id,
            "mentor_id": sub.mentor_id,
            "subject": sub.subject,
            "batches": list(sub.batches),
            "date": sub.date.isoformat(),
            "students": [
                {
                    "student_id": sub.student_id,
                    "batch": sub.batch,
                    "status": sub.status,
                    "method": sub.method,
                    "time": sub.time.astimezone(dt.timezone.utc).isoformat(),
                }
            ],
        }

    def report_params(self, session_id: str) -> dict:
        return {"session_id": session_id}

    def parse_report(self, payload: Any) -> list[RemoteMark]:
        marks = []
        for item in _items(payload):
            status = _text(item, "status").lower()
            if status not in STATUSES:
                raise _bad(f"unknown status {status!r}")
            marks.append(RemoteMark(_text(item, "student_id"), status, _time(item.get("time"))))
        return marks

