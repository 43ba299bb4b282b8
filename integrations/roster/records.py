"""Helpers both backends share: sessions (create, find), teachers (find, bind), the report."""
from __future__ import annotations

import datetime as dt
import logging
from typing import Iterable, Mapping, Optional

from bson import ObjectId
from bson.errors import InvalidId
from mongoengine import NotUniqueError

from integrations.api.errors import OTP_IN_USE, UNKNOWN_SESSION, UNKNOWN_STUDENT, UNKNOWN_TEACHER, RosterError
from integrations.models import AttendanceRecord, Session, StudentSnapshot, Teacher, utcnow
from integrations.roster.base import Report, ReportRow, StudentInfo, TeacherInfo

log = logging.getLogger(__name__)


def get_session(session_id: str) -> Session:
    try:
        oid = ObjectId(str(session_id))
    except (InvalidId, TypeError):
        raise RosterError(UNKNOWN_SESSION, "not a session id") from None
    session = Session.objects(id=oid).first()
    if session is None:
        raise RosterError(UNKNOWN_SESSION, f"no session {session_id}")
    return session


def create_session(
    teacher_telegram_id: int,
    otp: str,
    batches: Iterable[str],
    subject: str,
    latitude: float,
    longitude: float,
    radius_m: float,
    expires_at: dt.datetime,
    students: Iterable[StudentInfo],
) -> Session:
    """Open a session with its roster snapshot; RosterError("otp_in_use") if the code is taken."""
    teacher = teacher_doc(teacher_telegram_id)
    session = Session(
        otp=otp, teacher=teacher, batches=list(batches), subject=subject, latitude=float(latitude),
        longitude=float(longitude), radius_m=float(radius_m), opened_at=utcnow(), expires_at=expires_at,
        students=[StudentSnapshot(student_id=s.student_id, name=s.name, batch=s.batch, phone=s.phone) for s in students],
    )
    try:
        return session.save()
    except NotUniqueError:
        raise RosterError(OTP_IN_USE, "another open session uses this code") from None


def find_open_session(otp: str, now: Optional[dt.datetime] = None) -> Optional[Session]:
    """The open, unexpired session with this OTP, or None."""
    return Session.objects(otp=otp, status="open", expires_at__gt=now or utcnow()).first()


def require_snapshot_student(session: Session, student_id: str) -> None:
    if session.student(student_id) is None:
        raise RosterError(UNKNOWN_STUDENT, f"{student_id} is not on this session's roster")


def teacher_doc(telegram_id: int) -> Teacher:
    teacher = Teacher.objects(telegram_id=int(telegram_id)).first()
    if teacher is None:
        raise RosterError(UNKNOWN_TEACHER, f"no teacher bound to {telegram_id}")
    return teacher


def teacher_info(teacher: Teacher) -> TeacherInfo:
    return TeacherInfo(
        telegram_id=teacher.telegram_id,
        email=teacher.email,
        name=teacher.name or "",
        phone=teacher.phone or "",
        external_id=teacher.external_id or "",
    )


def unbind_others(telegram_id: int, email: str) -> None:
    """A Telegram account belongs to one teacher: drop it from any other teacher first."""
    released = Teacher.objects(telegram_id=int(telegram_id), email__ne=email).update(unset__telegram_id=True)
    if released:
        log.info("telegram user %s moved to another teacher account", telegram_id)


def bind(telegram_id: int, email: str, **fields: object) -> Optional[Teacher]:
    """Bind ``telegram_id`` to the teacher ``email`` (and set ``fields``) in one update."""
    unbind_others(telegram_id, email)
    updates = {f"set__{k}": v for k, v in fields.items()}
    Teacher.objects(email=email).update_one(
        upsert=True, set__telegram_id=int(telegram_id), set__updated_at=utcnow(),
        set_on_insert__created_at=utcnow(), **updates,
    )
    return Teacher.objects(email=email).first()


def build_report(
    session: Session,
    remote: Optional[Mapping[str, str]] = None,
    *,
    source: str = "local",
    complete: bool = True,
) -> Report:
    """Every snapshot student with a status: the remote one if given, else the local record, else absent."""
    records = {r.student_id: r for r in AttendanceRecord.objects(session=session.id)}
    rows = []
    for snap in session.students:
        rec = records.get(snap.student_id)
        status = (remote or {}).get(snap.student_id) or (rec.status if rec else "absent")
        rows.append(
            ReportRow(
                student_id=snap.student_id,
                name=snap.name,
                batch=snap.batch,
                phone=snap.phone,
                status=status,
                method=rec.method if rec else "",
                time=rec.time if rec else None,
                similarity=rec.similarity if rec else None,
                distance_m=rec.distance_m if rec else None,
            )
        )
    rows.sort(key=lambda r: (r.batch, r.student_id))
    teacher = session.teacher
    return Report(
        session_id=str(session.id),
        subject=session.subject,
        batches=tuple(session.batches),
        teacher_name=getattr(teacher, "name", "") or "",
        opened_at=session.opened_at,
        expires_at=session.expires_at,
        rows=tuple(rows),
        source=source,
        complete=complete,
    )
