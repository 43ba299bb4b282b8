"""The local roster: teachers, batches, subjects and students in MongoDB (imported from CSV)."""
from __future__ import annotations

import logging
from typing import Optional

from integrations.foundation.crypto import hash_password, verify_password
from integrations.foundation.errors import (
    BAD_CREDENTIALS,
    PHONE_MISMATCH,
    REJECTED,
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
from integrations.storage.documents import AttendanceRecord, Student, Teacher

log = logging.getLogger(__name__)

# Checked when the email is unknown, so a wrong email costs as long as a wrong password.
_DUMMY_HASH = hash_password("not-a-real-password")


class LocalRoster(RosterBackend):
    name = "local"

    def login(self, telegram_id: int, phone: str, email: str, password: str) -> TeacherInfo:
        email = email.strip().lower()
        teacher = Teacher.objects(email=email).first()
        # The phone binding first: a foreign phone never learns whether the password was right.
        # The hash is checked either way, so every refusal takes as long as a wrong password.
        foreign = bool(teacher and teacher.phone and not (phone and phones_match(teacher.phone, phone)))
        right = verify_password(password, teacher.password_hash if teacher and not foreign else _DUMMY_HASH)
        if foreign:
            raise RosterError(PHONE_MISMATCH, "contact phone differs from the roster")
        if not right or teacher is None or teacher.active is False:  # deactivated in the web panel
            log.info("local login refused for telegram user %s", telegram_id)
            raise RosterError(BAD_CREDENTIALS, "wrong email or password")
        fields = {} if teacher.phone else {"phone": normalise_phone(phone)}
        bound = records.bind(telegram_id, email, **fields)
        log.info("teacher %s logged in (local roster)", telegram_id)
        return records.teacher_info(bound)

    def find_teacher(self, telegram_id: int) -> Optional[TeacherInfo]:
        teacher = Teacher.objects(telegram_id=int(telegram_id)).first()
        return records.teacher_info(teacher) if teacher else None

    def logout(self, telegram_id: int) -> None:
        Teacher.objects(telegram_id=int(telegram_id)).update(unset__telegram_id=True)

    def assignments(self, telegram_id: int) -> list[Assignment]:
        teacher = records.teacher_doc(telegram_id)
        batches, subjects = records.inactive_codes()  # deactivated in the web panel
        return sorted({Assignment(a.batch, a.subject) for a in teacher.assignments
                       if a.batch not in batches and a.subject not in subjects})

    def students(self, telegram_id: int, batch: str, subject: str) -> list[StudentInfo]:
        if Assignment(batch, subject) not in self.assignments(telegram_id):
            raise RosterError(REJECTED, f"teacher does not teach {subject} to {batch}")
        return [
            StudentInfo(s.student_id, s.name, s.batch, s.phone or "")
            for s in Student.objects(batch=batch).order_by("student_id")
        ]

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
        session, record, changed = records.mark_local(session_id, student_id, status, method, similarity, distance_m,
                                                    face_distance=face_distance, answers=answers, live=live,
                                                    liveness_score=liveness_score)
        if not record.synced:  # nothing to sync to: the database is the system of record
            AttendanceRecord.mark_synced(record.id, record.rev)
        return SubmitResult(student_id, record.status, record.method, changed, True)

    def report(self, session_id: str) -> Report:
        return records.build_report(records.get_session(session_id))
