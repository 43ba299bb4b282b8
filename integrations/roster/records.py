"""Helpers both backends share: sessions (create, find), teachers (find, bind), the report."""
from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from typing import Any, Iterable, Mapping, Optional

from bson import ObjectId
from bson.errors import InvalidId
from mongoengine import NotUniqueError
from pymongo import ReturnDocument

from integrations.foundation.errors import (
    OTP_IN_USE,
    UNKNOWN_SESSION,
    UNKNOWN_STUDENT,
    UNKNOWN_TEACHER,
    RosterError,
)
from integrations.foundation.phones import (
    NATIONAL_DIGITS,
    normalise_phone,
    phones_match,
)
from integrations.foundation.text import clean_text
from integrations.roster.base import Report, ReportRow, StudentInfo, TeacherInfo
from integrations.storage.documents import (
    AttendanceRecord,
    Session,
    Student,
    StudentSnapshot,
    Teacher,
    escape_key,
    utcnow,
)

log = logging.getLogger(__name__)


# Everything of a session but its roster snapshot, which a class of 1,000 makes large.
_SESSION_FIELDS = tuple(name for name in Session._fields if name not in ("id", "students"))


def for_student(query: Any, student_id: str) -> Any:
    """Load sessions with only this student's roster entry ($elemMatch projection).

    A student's steps read their session several times; reading the whole snapshot each time
    made a class cost O(N²). Such a document is partial: never `.save()` it (writes here are
    atomic updates anyway).
    """
    return query.only(*_SESSION_FIELDS).fields(elemMatch__students={"student_id": str(student_id)})


def session_oid(session_id: Any) -> ObjectId:
    try:
        return ObjectId(str(session_id))
    except (InvalidId, TypeError):
        raise RosterError(UNKNOWN_SESSION, "not a session id") from None


def get_session(session_id: str, student_id: Optional[str] = None) -> Session:
    """The session; with ``student_id``, only that student's roster entry is loaded."""
    query = Session.objects(id=session_oid(session_id))
    session = (for_student(query, student_id) if student_id is not None else query).first()
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
        students=[StudentSnapshot(student_id=s.student_id, name=clean_text(s.name), batch=s.batch, phone=s.phone)
                  for s in students],
    )
    session.roster_size = len(session.students)
    try:
        return session.save()
    except NotUniqueError:
        raise RosterError(OTP_IN_USE, "another open session uses this code") from None


def find_open_session(otp: str, now: Optional[dt.datetime] = None) -> Optional[Session]:
    """The open, unexpired session with this OTP, or None."""
    return Session.objects(otp=otp, status="open", expires_at__gt=now or utcnow()).first()


def session_by_otp(otp: str, student_id: Optional[str] = None) -> Optional[Session]:
    """The newest session with this OTP, open or not (to tell "wrong" from "expired");
    with ``student_id``, only that student's roster entry is loaded."""
    query = Session.objects(otp=otp).order_by("-opened_at")
    return (for_student(query, student_id) if student_id is not None else query).first()


def teacher_open_session(telegram_id: int, now: Optional[dt.datetime] = None) -> Optional[Session]:
    """The teacher's open, unexpired session, if any."""
    teacher = Teacher.objects(telegram_id=int(telegram_id)).only("id").first()
    if teacher is None:
        return None
    return Session.objects(teacher=teacher.id, status="open", expires_at__gt=now or utcnow()).order_by(
        "-opened_at").first()


def latest_session(telegram_id: int) -> Optional[Session]:
    """The teacher's most recently opened session (for "last report")."""
    teacher = Teacher.objects(telegram_id=int(telegram_id)).only("id").first()
    return Session.objects(teacher=teacher.id).order_by("-opened_at").first() if teacher else None


def session_stats(session: Session) -> dict[str, int]:
    """Counts for a status line: present, failed, absent (not yet), locked out, total."""
    statuses = {r.student_id: r.status for r in AttendanceRecord.objects(session=session.id).only("student_id", "status")}
    roster = [s.student_id for s in session.students]
    present = sum(statuses.get(sid) == "present" for sid in roster)
    failed = sum(statuses.get(sid) == "failed" for sid in roster)
    return {
        "total": len(roster),
        "present": present,
        "failed": failed,
        "absent": len(roster) - present,
        "locked": len(set(session.locked_out or []) & set(roster)),
    }


def identify_student(phone: str, telegram_user_id: Optional[int] = None) -> Optional[StudentInfo]:
    """The student with this phone: the local roster first, else an open session's snapshot.

    Phones match on their last 10 digits. When found in the local roster and a Telegram user id
    is given, it is remembered on the student (unless another student already has it).
    """
    digits = normalise_phone(phone)
    if len(digits) < NATIONAL_DIGITS:
        return None
    tail = digits[-NATIONAL_DIGITS:]
    found = [s for s in Student.objects(phone_tail=tail) if phones_match(s.phone, digits)]
    if len(found) == 1:
        student = found[0]
        if telegram_user_id is not None and student.telegram_user_id != telegram_user_id:
            try:
                Student.objects(id=student.id).update_one(set__telegram_user_id=int(telegram_user_id))
            except NotUniqueError:
                log.warning("telegram user %s is already linked to another student", telegram_user_id)
        return StudentInfo(student.student_id, student.name, student.batch, student.phone)
    if len(found) > 1:
        log.warning("phone ending %s is on %d students; not identifying", tail[-4:], len(found))
        return None
    # The http backend keeps no students: an open session's roster snapshot is the roster. Only
    # the matching entry is loaded (indexed tail + $elemMatch), not every class's whole list.
    query = Session.objects(status="open", expires_at__gt=utcnow(), students__phone_tail=tail)
    for session in query.only("id").fields(elemMatch__students={"phone_tail": tail}).order_by("-opened_at"):
        for snap in session.students:
            if snap.phone and phones_match(snap.phone, digits):
                return StudentInfo(snap.student_id, snap.name, snap.batch, snap.phone)
    return None


def mark_local(
    session_id: str, student_id: str, status: str, method: str,
    similarity: Optional[float] = None, distance_m: Optional[float] = None,
) -> tuple[Session, AttendanceRecord, bool]:
    """The local, idempotent half of every backend's `submit`: the student must be on the
    session's roster; returns (session, record, changed)."""
    session = get_session(session_id, student_id)
    require_snapshot_student(session, student_id)
    record, changed = AttendanceRecord.mark(
        session.id, student_id, status, method, similarity=similarity, distance_m=distance_m
    )
    return session, record, changed


def record_for(session_id: ObjectId, student_id: str) -> Optional[AttendanceRecord]:
    return AttendanceRecord.objects(session=session_id, student_id=student_id).first()


def _cell(value: str) -> str:
    """Neutralise spreadsheet formulas in text that came from outside (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def report_csv(report: Report) -> bytes:
    """The report as CSV (UTF-8 with BOM so spreadsheet apps read names correctly)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["student_id", "name", "batch", "phone", "status", "method", "time", "similarity", "distance_m"])
    for r in report.rows:
        writer.writerow([
            _cell(r.student_id), _cell(r.name), _cell(r.batch), r.phone, r.status, r.method,
            r.time.isoformat() if r.time else "",
            "" if r.similarity is None else f"{r.similarity:.1f}",
            "" if r.distance_m is None else f"{r.distance_m:.0f}",
        ])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


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


# ------------------------------------------------------------------ counters and session changes
def find_session(session_id: str, student_id: Optional[str] = None) -> Optional[Session]:
    """Like :func:`get_session`, but None for an unknown or malformed id."""
    try:
        return get_session(session_id, student_id)
    except RosterError:
        return None


def open_sessions_of(student_id: str) -> list[Session]:
    """The open, unexpired sessions whose roster lists the student (only their entry loaded)."""
    query = Session.objects(status="open", expires_at__gt=utcnow(), students__student_id=student_id)
    return list(for_student(query, student_id))


def wrong_code_cap(session: Session, per_session: int) -> int:
    """Misses a session takes from everyone before one more miss locks a student out at once:
    OTP_SESSION_MAX_WRONG, or one per student for a larger class (honest typos scale with it)."""
    return max(int(per_session), int(session.roster_size or 0))


def record_wrong_code(session_id: str, student_id: str, max_attempts: int, session_cap: int) -> tuple[int, bool]:
    """One wrong code against a session: per student (lockout at the limit) and in total.

    One atomic update counts both, and only for a student not locked out yet: a locked student's
    guesses never count toward the session's total (so accomplices cannot spend the brake on an
    honest class). Once the total passes `session_cap`, every further miss locks that student out
    at once. Returns (the student's count, locked).
    """
    oid = session_oid(session_id)
    key = escape_key(student_id)
    doc = Session._get_collection().find_one_and_update(
        {"_id": oid, "locked_out": {"$ne": student_id}},
        {"$inc": {"failed_otp_total": 1, f"failed_otp.{key}": 1}},
        projection={"failed_otp_total": True, f"failed_otp.{key}": True},
        return_document=ReturnDocument.AFTER,
    )
    if doc is None:  # locked out already (or no such session): nothing counted
        return max_attempts, True
    count = int(doc["failed_otp"][key])
    if count >= max_attempts or doc["failed_otp_total"] > session_cap:
        Session.objects(id=oid).update_one(add_to_set__locked_out=student_id)
        return count, True
    return count, False


def close_now(session_id: str) -> Optional[dt.datetime]:
    """Close an open session at once (no more codes); the closing time, or None if it was not open."""
    now = utcnow()
    closed = Session.objects(id=session_oid(session_id), status="open").update_one(
        set__expires_at=now, set__status="closed")
    return now if closed else None


def set_note(session_id: str, student_id: str, note: str) -> bool:
    """Attach a note (e.g. the teacher's reason for a manual mark) to the student's record."""
    return bool(AttendanceRecord.objects(session=session_oid(session_id), student_id=student_id).update_one(
        set__note=note))
