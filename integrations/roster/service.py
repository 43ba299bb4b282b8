"""Async functions the flows call (as hooks); they run the blocking backend off the event loop.

Every failure is a :class:`RosterError` (``ApiError`` for the external API) with ``message_key``.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Optional, Protocol, TypeVar

from integrations.foundation.blocking import run_blocking
from integrations.foundation.errors import NOT_OWN_CONTACT, RosterError
from integrations.foundation.names import attempt_key
from integrations.foundation.phones import contact_phone
from integrations.roster import csv_import, records
from integrations.roster.base import (
    Assignment,
    Report,
    RosterBackend,
    StudentInfo,
    SubmitResult,
    TeacherInfo,
)
from integrations.roster.csv_import import ImportResult
from integrations.storage.audit import AuditEvent
from integrations.storage.documents import AttendanceRecord, Session, StudentBinding, Teacher
from integrations.storage.panel import AdminUser, WebLogin

T = TypeVar("T")


class ContactLike(Protocol):
    phone: str
    user_id: Optional[int]


def check_own_contact(contact: ContactLike, sender_user_id: int) -> str:
    """The sender's own phone (digits), or RosterError("not_own_contact").

    A shared contact is the sender's own only if its user id is the sender's user id; a contact
    card of someone else (or a typed number) has another or no user id.
    """
    phone = contact_phone(getattr(contact, "phone", ""))
    if getattr(contact, "user_id", None) != sender_user_id or not phone:
        raise RosterError(NOT_OWN_CONTACT, "the shared contact is not the sender's own")
    return phone


def snapshot(students: Iterable[StudentInfo]) -> list[dict[str, str]]:
    """Students as the session's snapshot entries ({student_id, name, batch, phone})."""
    return [{"student_id": s.student_id, "name": s.name, "batch": s.batch, "phone": s.phone} for s in students]


class RosterService:
    """Async facade over a :class:`RosterBackend`; one per process."""

    def __init__(self, backend: RosterBackend, *, max_workers: int = 16):
        self.backend = backend
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="roster")

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # Its own pool: a slow external API must not starve database calls of other hooks.
        return await run_blocking(fn, *args, executor=self._executor, **kwargs)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.backend.close()

    @property
    def has_local_roster(self) -> bool:
        """True when students live in our database (local backend): a student not found there
        does not exist. The http backend only knows the students of sessions opened so far."""
        return self.backend.name == "local"

    # -- teachers

    async def login_teacher(self, telegram_id: int, phone: str, email: str, password: str) -> TeacherInfo:
        """Check credentials and bind the account to ``telegram_id``; ``phone`` from check_own_contact."""
        return await self._run(self.backend.login, telegram_id, phone, email, password)

    async def find_teacher(self, telegram_id: int) -> Optional[TeacherInfo]:
        """The returning teacher bound to ``telegram_id``, or None."""
        return await self._run(self.backend.find_teacher, telegram_id)

    async def logout_teacher(self, telegram_id: int) -> None:
        await self._run(self.backend.logout, telegram_id)

    # -- batches, subjects, students

    async def list_assignments(self, telegram_id: int) -> list[Assignment]:
        return await self._run(self.backend.assignments, telegram_id)

    async def list_batches(self, telegram_id: int) -> list[str]:
        return sorted({a.batch for a in await self.list_assignments(telegram_id)})

    async def list_subjects(self, telegram_id: int, batches: Optional[Iterable[str]] = None) -> list[str]:
        """Subjects the teacher teaches to *every* one of ``batches`` (any batch if None): only
        those can open a session for all of them."""
        assignments = await self.list_assignments(telegram_id)
        if batches is None:
            return sorted({a.subject for a in assignments})
        chosen = set(batches)
        taught: dict[str, set[str]] = {}
        for a in assignments:
            taught.setdefault(a.subject, set()).add(a.batch)
        return sorted(subject for subject, covered in taught.items() if chosen <= covered)

    async def load_students(self, telegram_id: int, batches: Iterable[str], subject: str) -> list[StudentInfo]:
        """Students of several batches, loaded concurrently; all or nothing.

        Sorted by (batch, student id); a student listed in two batches appears once.
        """
        batches = list(dict.fromkeys(batches))
        results = await asyncio.gather(
            *(self._run(self.backend.students, telegram_id, b, subject) for b in batches)
        )
        merged: dict[str, StudentInfo] = {}
        for students in results:
            for s in students:
                merged.setdefault(s.student_id, s)
        return sorted(merged.values(), key=lambda s: (s.batch, s.student_id))

    # -- sessions

    async def open_session(
        self,
        telegram_id: int,
        otp: str,
        batches: Iterable[str],
        subject: str,
        latitude: float,
        longitude: float,
        radius_m: float,
        expires_at: dt.datetime,
        students: Iterable[StudentInfo],
    ) -> Session:
        """Create the session with its student snapshot; RosterError("otp_in_use") if the OTP is taken."""
        return await self._run(
            records.create_session, telegram_id, otp, list(batches), subject, latitude, longitude,
            radius_m, expires_at, list(students),
        )

    async def find_open_session(self, otp: str) -> Optional[Session]:
        """The open, unexpired session with this OTP (what a student's code refers to)."""
        return await self._run(records.find_open_session, otp)

    async def close_session(self, session_id: str) -> bool:
        """Close it; True only for the caller that actually closed it."""
        session = await self._run(records.get_session, session_id)
        return await self._run(Session.close, session.id)

    async def extend_session(self, session_id: str, seconds: float) -> Optional[dt.datetime]:
        """New expiry of the open session, or None if it is not open."""
        session = await self._run(records.get_session, session_id)
        return await self._run(Session.extend, session.id, seconds)

    async def session_by_otp(self, otp: str, student_id: Optional[str] = None) -> Optional[Session]:
        """Newest session with this OTP, open or not (tells a wrong code from an expired one);
        with ``student_id`` only that student's roster entry is loaded."""
        return await self._run(records.session_by_otp, otp, student_id)

    async def find_session(self, session_id: str, student_id: Optional[str] = None) -> Optional[Session]:
        """The session (None if unknown); with ``student_id`` only that student's roster entry."""
        return await self._run(records.find_session, session_id, student_id)

    async def open_sessions_of(self, student_id: str) -> list[Session]:
        """Open sessions whose roster lists the student (where a wrong code counts)."""
        return await self._run(records.open_sessions_of, student_id)

    async def record_wrong_code(self, session_id: str, student_id: str, max_attempts: int,
                                session_cap: int, user_id: Optional[int] = None) -> tuple[int, bool]:
        """Count a wrong code of the student on this Telegram account; (their count, locked out now)."""
        return await self._run(records.record_wrong_code, session_id, student_id, max_attempts, session_cap,
                               user_id)

    async def begin_face_check(self, session_id: str, student_id: str, token: str, max_attempts: int,
                               lease_s: float, user_id: Optional[int] = None) -> str:
        """Claim the student's one face check in the session: ok | busy | exhausted | gone.
        Failures count per student and Telegram account (`names.attempt_key`)."""
        return await self._run(Session.begin_face_check, records.session_oid(session_id), student_id, token,
                               max_attempts, lease_s, attempt_key(student_id, user_id))

    async def face_check_failed(self, session_id: str, student_id: str, user_id: Optional[int] = None) -> int:
        """Count one failed face check of the student on this Telegram account (atomically); the
        failures now."""
        return await self._run(records.record_face_failure, session_id, student_id, user_id)

    async def release_face_check(self, session_id: str, student_id: str, token: str) -> bool:
        """Give back the claim of :meth:`begin_face_check` once the check's answer is recorded."""
        return await self._run(Session.release_face_check, records.session_oid(session_id), student_id, token)

    async def close_session_now(self, session_id: str) -> Optional[dt.datetime]:
        """Stop taking codes at once; the closing time, or None if it was not open."""
        return await self._run(records.close_now, session_id)


    async def teacher_open_session(self, telegram_id: int) -> Optional[Session]:
        return await self._run(records.teacher_open_session, telegram_id)

    async def latest_session(self, telegram_id: int) -> Optional[Session]:
        return await self._run(records.latest_session, telegram_id)

    async def session_stats(self, session_id: str) -> dict[str, int]:
        """{total, present, failed, absent, locked} for a status line."""
        session = await self._run(records.get_session, session_id)
        return await self._run(records.session_stats, session)

    # -- students

    async def identify_student(self, phone: str, telegram_user_id: Optional[int] = None) -> Optional[StudentInfo]:
        """The student with this (own, checked) phone, or None; see records.identify_student."""
        return await self._run(records.identify_student, phone, telegram_user_id)

    async def find_student_by_id(self, student_id: str) -> Optional[StudentInfo]:
        """The student with this id (local roster, else a session's snapshot), or None."""
        return await self._run(records.find_student_by_id, student_id)

    async def bind_student(self, student_id: str, telegram_user_id: int, via: str = "student_id"
                           ) -> tuple[str, Optional[str]]:
        """Bind a Telegram account to a student; see records.bind_student for the results."""
        return await self._run(records.bind_student, student_id, telegram_user_id, via)

    async def unbind_student(self, student_id: str) -> Optional[int]:
        """Remove a student's Telegram binding (teacher's /unbind, the web panel); the old user id."""
        return await self._run(records.unbind_student, student_id)

    async def student_binding(self, student_id: str) -> Optional[StudentBinding]:
        return await self._run(records.student_binding, student_id)

    async def binding_of_user(self, telegram_user_id: int) -> Optional[StudentBinding]:
        """The student a Telegram account is bound to, if any."""
        return await self._run(records.binding_of_user, telegram_user_id)

    async def teacher_knows_student(self, telegram_id: int, student_id: str) -> Optional[StudentInfo]:
        """The student if the teacher teaches them (batch or one of their sessions), else None."""
        return await self._run(records.teacher_knows_student, telegram_id, student_id)

    async def attendance_of(self, session_id: str, student_id: str) -> Optional[AttendanceRecord]:
        """The student's record in the session (e.g. to say "already marked at ...")."""
        return await self._run(records.record_for, records.session_oid(session_id), student_id)

    # -- attendance

    async def submit_attendance(
        self,
        session_id: str,
        student_id: str,
        status: str,
        method: str = "face",
        *,
        similarity: Optional[float] = None,
        distance_m: Optional[float] = None,
        face_distance: Optional[float] = None,
        answers: Optional[dict] = None,
        live: Optional[bool] = None,
        liveness_score: Optional[float] = None,
    ) -> SubmitResult:
        """Record one student's attendance; repeating it is harmless (one record per session+student)."""
        return await self._run(
            self.backend.submit, session_id, student_id, status, method, similarity=similarity, distance_m=distance_m,
            face_distance=face_distance, answers=answers, live=live, liveness_score=liveness_score,
        )

    async def override_mark(self, session_id: str, student_id: str, status: str, *, by: str, reason: str
                            ) -> tuple[Optional[AttendanceRecord], bool]:
        """Store a manual mark locally with its history; (record, changed). See attendance.marks."""
        return await self._run(records.override_mark, session_id, student_id, status, by=by, reason=reason)

    # -- audit

    async def add_audit_event(self, kind: str, **fields: Any) -> AuditEvent:
        """Append an audit event (integrations.attendance.audit decides what goes in)."""
        return await self._run(records.add_audit_event, kind, **fields)

    async def audit_events(self, session_id: Optional[str] = None, student_id: Optional[str] = None
                           ) -> list[AuditEvent]:
        return await self._run(records.audit_events, session_id, student_id)

    async def report(self, session_id: str) -> Report:
        """Report data for a session: every snapshot student with their status."""
        return await self._run(self.backend.report, session_id)

    @staticmethod
    def report_csv(report: Report) -> bytes:
        """The report as a CSV file's bytes (formula-safe, UTF-8 with BOM)."""
        return records.report_csv(report)

    # -- edits from the web admin panel (integrations/web); see the records.py section

    async def save_teacher(self, email: str, name: str, phone: str, assignments: Iterable[tuple[str, str]],
                           password_hash: Optional[str], teacher_id: Optional[str] = None) -> Teacher:
        return await self._run(records.save_teacher, email, name, phone, list(assignments), password_hash,
                               teacher_id)

    async def set_teacher_active(self, teacher_id: str, active: bool) -> bool:
        return await self._run(records.set_teacher_active, teacher_id, active)

    async def reset_teacher_binding(self, teacher_id: str) -> bool:
        return await self._run(records.reset_teacher_binding, teacher_id)

    async def save_code(self, kind: str, code: str, name: str, create: bool) -> bool:
        """Add or rename a batch or subject (``kind``)."""
        return await self._run(records.save_code, kind, code, name, create)

    async def set_code_active(self, kind: str, code: str, active: bool) -> bool:
        return await self._run(records.set_code_active, kind, code, active)

    async def save_student(self, student_id: str, name: str, phone: str, batch: str, create: bool) -> bool:
        return await self._run(records.save_student, student_id, name, phone, batch, create)

    async def delete_student(self, student_id: str) -> bool:
        return await self._run(records.delete_student, student_id)

    async def import_roster_text(self, text: str) -> ImportResult:
        """The CLI's CSV importer (all or nothing; CsvImportError lists every bad line)."""
        return await self._run(csv_import.import_roster_text, text)

    async def create_admin(self, email: str, password_hash: str) -> AdminUser:
        return await self._run(records.create_admin, email, password_hash)

    async def create_login(self, token_hash: str, role: str, principal: str, csrf: str,
                           expires_at: dt.datetime) -> WebLogin:
        return await self._run(records.create_login, token_hash, role, principal, csrf, expires_at)

    async def end_login(self, token_hash: str) -> bool:
        return await self._run(records.end_login, token_hash)
