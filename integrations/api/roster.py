"""The roster from the external attendance API, with teachers' secrets kept encrypted in Mongo.

Attendance is written locally first (idempotent record, ``synced=False``), then sent to the API
(POST for the session's first student, PUT after); the record is flagged ``synced`` only when
the API accepted it. If the API fails, the unsynced record stays as an outbox entry and
:meth:`HttpRoster.sync_pending` (also run before each report) sends it later.
"""
from __future__ import annotations

import json
import logging
import threading
from typing import Any, Optional

from integrations.api.adapter import AttendanceSubmission
from integrations.api.client import AttendanceApiClient
from integrations.api.tokens import Credentials, Tokens
from integrations.foundation import timing
from integrations.foundation.crypto import DecryptError, SecretBox, get_secret_box
from integrations.foundation.errors import (
    PHONE_MISMATCH,
    UNKNOWN_TEACHER,
    ApiError,
    RosterError,
)
from integrations.foundation.phones import normalise_phone, phones_match
from integrations.roster import records
from integrations.roster.base import (
    Assignment,
    Report,
    RosterBackend,
    StudentInfo,
    SubmitResult,
    TeacherInfo,
)
from integrations.storage.documents import AttendanceRecord, Session, Teacher

log = logging.getLogger(__name__)


class TeacherTokenStore:
    """Keeps each teacher's credentials and tokens Fernet-encrypted on their Teacher document.

    The key is the teacher's Telegram id as text.
    """

    def __init__(self, box: Optional[SecretBox] = None):
        self._box = box

    @property
    def box(self) -> SecretBox:
        return self._box or get_secret_box()

    def _doc(self, key: str, *fields: str) -> Optional[Teacher]:
        return Teacher.objects(telegram_id=int(key)).only(*fields).first()

    def _read(self, key: str, field: str) -> Optional[dict]:
        doc = self._doc(key, field)
        blob = getattr(doc, field, None) if doc else None
        if not blob:
            return None
        try:
            return json.loads(self.box.decrypt(blob))
        except (DecryptError, ValueError):
            log.warning("stored %s for teacher %s cannot be read (key changed?); ignoring", field, key)
            return None

    def load(self, key: str) -> Optional[Tokens]:
        data = self._read(key, "tokens_enc")
        return Tokens(data["access"], data.get("refresh")) if data and data.get("access") else None

    def save_tokens(self, key: str, tokens: Tokens) -> None:
        blob = self.box.encrypt(json.dumps({"access": tokens.access, "refresh": tokens.refresh}))
        Teacher.objects(telegram_id=int(key)).update_one(set__tokens_enc=blob)

    def credentials(self, key: str) -> Optional[Credentials]:
        data = self._read(key, "credentials_enc")
        return Credentials(data["email"], data["password"]) if data else None

    def save_login(self, key: str, credentials: Credentials, tokens: Tokens, profile: Optional[dict] = None) -> None:
        """Bind, store the profile and both secrets in one update (nothing half-written)."""
        box = self.box
        fields = dict(profile or {})
        fields.pop("email", None)
        records.bind(
            int(key),
            credentials.email.strip().lower(),
            credentials_enc=box.encrypt(json.dumps({"email": credentials.email, "password": credentials.password})),
            tokens_enc=box.encrypt(json.dumps({"access": tokens.access, "refresh": tokens.refresh})),
            **fields,
        )

    def clear_tokens(self, key: str) -> None:
        Teacher.objects(telegram_id=int(key)).update_one(unset__tokens_enc=True)

    def forget(self, key: str) -> None:
        Teacher.objects(telegram_id=int(key)).update_one(
            unset__tokens_enc=True, unset__credentials_enc=True, unset__telegram_id=True
        )

    def forget_credentials(self, key: str) -> None:
        """The stored login was refused (password changed): drop it, keep the Telegram binding so
        reports still reach the teacher; `find_teacher` then asks them to log in again."""
        Teacher.objects(telegram_id=int(key)).update_one(unset__tokens_enc=True, unset__credentials_enc=True)


class HttpRoster(RosterBackend):
    """Roster backend over :class:`AttendanceApiClient` (its token store is replaced by Mongo's)."""

    name = "http"

    def __init__(self, client: AttendanceApiClient, store: Optional[TeacherTokenStore] = None):
        self.client = client
        self.client.store = store or TeacherTokenStore()
        self._session_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def close(self) -> None:
        self.client.close()

    # -- teachers

    def login(self, telegram_id: int, phone: str, email: str, password: str) -> TeacherInfo:
        email = email.strip().lower()
        known = Teacher.objects(email=email).only("phone").first()
        if known is not None and known.phone and not (phone and phones_match(known.phone, phone)):
            # Bound to another phone already: refused before the password reaches the API.
            raise RosterError(PHONE_MISMATCH, "contact phone differs from the account's")
        result = self.client.authenticate(email, password)
        if result.phone and phone and not phones_match(result.phone, phone):
            self.client.logout_tokens(Tokens(result.access, result.refresh))
            raise RosterError(PHONE_MISMATCH, "contact phone differs from the API profile")
        profile = {
            "name": result.name,
            "phone": result.phone or normalise_phone(phone),
            "external_id": result.mentor_id,
        }
        self.client.store.save_login(
            str(telegram_id), Credentials(email, password), Tokens(result.access, result.refresh), profile
        )
        log.info("teacher %s logged in (external API)", telegram_id)
        return records.teacher_info(records.teacher_doc(telegram_id))

    def find_teacher(self, telegram_id: int) -> Optional[TeacherInfo]:
        teacher = Teacher.objects(telegram_id=int(telegram_id)).first()
        if teacher is None or not teacher.credentials_enc or not teacher.external_id:
            return None
        return records.teacher_info(teacher)

    def logout(self, telegram_id: int) -> None:
        self.client.logout(str(telegram_id))

    def _mentor(self, telegram_id: int) -> str:
        teacher = self.find_teacher(telegram_id)
        if teacher is None:
            raise RosterError(UNKNOWN_TEACHER, f"teacher {telegram_id} is not logged in")
        return teacher.external_id

    # -- roster

    def assignments(self, telegram_id: int) -> list[Assignment]:
        return self.client.assignments(str(telegram_id), self._mentor(telegram_id))

    def students(self, telegram_id: int, batch: str, subject: str) -> list[StudentInfo]:
        return self.client.students(str(telegram_id), batch, subject)

    # -- attendance

    def _lock(self, session_id: str) -> threading.Lock:
        with self._guard:
            return self._session_locks.setdefault(session_id, threading.Lock())

    def submit(
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
        """Record locally (idempotent), then send to the API; raises ApiError if sending failed."""
        with timing.scope(session_id):
            return self._submit(session_id, student_id, status, method, similarity, distance_m, face_distance,
                                answers, live, liveness_score)

    def _submit(self, session_id: str, student_id: str, status: str, method: str, similarity: Optional[float],
                distance_m: Optional[float], face_distance: Optional[float], answers: Optional[dict],
                live: Optional[bool] = None, liveness_score: Optional[float] = None
                ) -> SubmitResult:
        session, record, changed = records.mark_local(session_id, student_id, status, method, similarity, distance_m,
                                                    face_distance=face_distance, answers=answers, live=live,
                                                    liveness_score=liveness_score)
        if not record.synced:
            self._send(session, record)
        return SubmitResult(student_id, record.status, record.method, changed, True)

    def _send(self, session: Session, record: AttendanceRecord) -> None:
        teacher = session.teacher
        key = str(teacher.telegram_id) if teacher and teacher.telegram_id else None
        if key is None:
            raise RosterError(UNKNOWN_TEACHER, "the session's teacher is not logged in")
        snap = session.student(record.student_id)
        submission = AttendanceSubmission(
            session_id=str(session.id),
            mentor_id=teacher.external_id or "",
            subject=session.subject,
            batches=tuple(session.batches),
            date=session.opened_at.date(),
            student_id=record.student_id,
            batch=snap.batch if snap else "",
            status=record.status,
            method=record.method,
            time=record.time,
        )
        if not self._posted(session.id):
            # Only a session's first submission is serialised (it must be the POST); the PUTs
            # after it run in parallel, so a class is not limited to one API call at a time.
            with self._lock(str(session.id)):
                if not self._posted(session.id):
                    self.client.submit_attendance(key, submission, first=True)
                    Session.objects(id=session.id).update_one(set__external_posted=True)
                    AttendanceRecord.mark_synced(record.id, record.rev)
                    return
        try:
            self.client.submit_attendance(key, submission, first=False)
        except ApiError as exc:
            if exc.status != 404:  # 404: another process's POST never landed
                raise
            self.client.submit_attendance(key, submission, first=True)
        AttendanceRecord.mark_synced(record.id, record.rev)

    @staticmethod
    def _posted(session_id: Any) -> bool:
        current = Session.objects(id=session_id).only("external_posted").first()
        return bool(current and current.external_posted)

    def sync_pending(self, session_id: str) -> int:
        """Send every unsynced record of the session; returns how many were sent."""
        session = records.get_session(session_id)
        sent = 0
        for record in AttendanceRecord.objects(session=session.id, synced=False):
            self._send(session, record)
            sent += 1
        return sent

    def report(self, session_id: str) -> Report:
        """Statuses from the API (the system of record); local records if it cannot be read."""
        with timing.scope(session_id):
            return self._report(session_id)

    def _report(self, session_id: str) -> Report:
        session = records.get_session(session_id)
        key = str(session.teacher.telegram_id) if session.teacher and session.teacher.telegram_id else None
        try:
            if key is None:
                raise RosterError(UNKNOWN_TEACHER, "the session's teacher is not logged in")
            self.sync_pending(session_id)
            remote = {m.student_id: m.status for m in self.client.session_attendance(key, str(session.id))}
        except RosterError as exc:
            log.warning("report for session %s from local records only (%s)", session_id, exc.message_key)
            return records.build_report(session, source="local", complete=False)
        return records.build_report(session, remote, source="api")
