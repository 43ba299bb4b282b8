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
    DUPLICATE,
    OTP_IN_USE,
    UNKNOWN_SESSION,
    UNKNOWN_STUDENT,
    UNKNOWN_TEACHER,
    RosterError,
)
from integrations.foundation.phones import (
    NATIONAL_DIGITS,
    normalise_phone,
    phone_tail,
    phones_match,
)
from integrations.foundation.names import attempt_key, student_of_key, user_of_key
from integrations.foundation.text import clean_text
from integrations.roster.base import Report, ReportRow, StudentInfo, TeacherInfo
from integrations.storage.audit import AuditEvent
from integrations.storage.documents import (
    Assignment,
    AttendanceRecord,
    Batch,
    Session,
    Student,
    StudentBinding,
    StudentSnapshot,
    Subject,
    Teacher,
    escape_key,
    utcnow,
)
from integrations.storage.panel import AdminUser, WebLogin

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
        students=[StudentSnapshot.of(s.student_id, clean_text(s.name), s.batch, s.phone) for s in students],
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


def locked_students(session: Session) -> set[str]:
    """Students the report shows as locked out: locked on the account that speaks for them now
    (their binding), or locked whatever the account. A classmate who typed their id and got
    locked out does not make them "locked out" (the audit trail keeps that)."""
    pairs = [(student_of_key(k), user_of_key(k)) for k in session.locked_out or []]
    if not pairs:
        return set()
    bound = {b.student_id: b.telegram_user_id
             for b in StudentBinding.objects(student_id__in=sorted({s for s, _ in pairs}))}
    return {s for s, u in pairs if u is None or bound.get(s, u) == u}


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
        "locked": len(locked_students(session) & set(roster)),
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
    # Open sessions first; then the newest session that ever listed the phone, so a student can
    # say who they are before today's session opens.
    for query in (Session.objects(status="open", expires_at__gt=utcnow(), students__phone_tail=tail),
                  Session.objects(students__phone_tail=tail)):
        for session in query.only("id").fields(elemMatch__students={"phone_tail": tail}).order_by("-opened_at"):
            for snap in session.students:
                if snap.phone and phones_match(snap.phone, digits):
                    return StudentInfo(snap.student_id, snap.name, snap.batch, snap.phone)
    return None


def find_student_by_id(student_id: str) -> Optional[StudentInfo]:
    """The student with this id: the local roster first, else a session's snapshot (open sessions
    first, then the newest that listed them: the http backend keeps no students of its own).

    The id is matched as typed, then in upper case (students type ``22pfs001``)."""
    typed = str(student_id or "").strip()
    if not typed:
        return None
    for candidate in dict.fromkeys((typed, typed.upper())):
        student = Student.objects(student_id=candidate).first()
        if student is not None:
            return StudentInfo(student.student_id, student.name, student.batch, student.phone)
        for query in (Session.objects(status="open", expires_at__gt=utcnow(), students__student_id=candidate),
                      Session.objects(students__student_id=candidate)):
            session = for_student(query.order_by("-opened_at"), candidate).first()
            snap = session.student(candidate) if session is not None else None
            if snap is not None:
                return StudentInfo(snap.student_id, snap.name, snap.batch, snap.phone)
    return None


# ------------------------------------------------------------------------------ student bindings
BOUND, SAME, TAKEN, OTHER_STUDENT = "bound", "same", "taken", "other_student"


def bind_student(student_id: str, telegram_user_id: int, via: str = "student_id") -> tuple[str, Optional[str]]:
    """Bind a Telegram account to a student: one account per student and one student per account.

    Returns (result, other) where result is ``bound`` (new), ``same`` (already so), ``taken``
    (the student is bound to another account; other = None) or ``other_student`` (this account
    speaks for another student; other = that student's id). A contact proves who the sender is,
    so ``via="contact"`` moves a binding instead of refusing (``bound``, other = what it replaced).
    """
    uid = int(telegram_user_id)
    for _ in range(3):  # a lost insert race re-reads and decides again
        mine = StudentBinding.objects(student_id=student_id).first()
        theirs = StudentBinding.objects(telegram_user_id=uid).first()
        if mine is not None and mine.telegram_user_id == uid:
            return SAME, None
        replaced = None
        if via == "contact":
            if mine is not None or theirs is not None:
                replaced = theirs.student_id if theirs is not None else str(mine.telegram_user_id)
                StudentBinding.objects(student_id=student_id).delete()
                StudentBinding.objects(telegram_user_id=uid).delete()
        elif mine is not None:
            return TAKEN, None
        elif theirs is not None:
            return OTHER_STUDENT, theirs.student_id
        try:
            StudentBinding(student_id=student_id, telegram_user_id=uid, via=via, bound_at=utcnow()).save()
        except NotUniqueError:
            continue
        return BOUND, replaced
    return TAKEN, None


def unbind_student(student_id: str) -> Optional[int]:
    """Remove the student's binding; the Telegram user id it had, or None if there was none."""
    binding = StudentBinding.objects(student_id=student_id).first()
    if binding is None:
        return None
    StudentBinding.objects(id=binding.id).delete()
    Student.objects(student_id=student_id).update(unset__telegram_user_id=True)
    return int(binding.telegram_user_id)


def student_binding(student_id: str) -> Optional[StudentBinding]:
    return StudentBinding.objects(student_id=student_id).first()


def binding_of_user(telegram_user_id: int) -> Optional[StudentBinding]:
    """The student this Telegram account speaks for, if any."""
    return StudentBinding.objects(telegram_user_id=int(telegram_user_id)).first()


def teacher_knows_student(telegram_id: int, student_id: str) -> Optional[StudentInfo]:
    """The student, if the teacher teaches them: in one of the teacher's batches (local roster)
    or on the roster of one of the teacher's sessions. Else None."""
    teacher = Teacher.objects(telegram_id=int(telegram_id)).first()
    if teacher is None:
        return None
    for candidate in dict.fromkeys((student_id, student_id.upper())):
        student = Student.objects(student_id=candidate).first()
        if student is not None and student.batch in {a.batch for a in teacher.assignments}:
            return StudentInfo(student.student_id, student.name, student.batch, student.phone)
        session = for_student(Session.objects(teacher=teacher.id, students__student_id=candidate)
                              .order_by("-opened_at"), candidate).first()
        snap = session.student(candidate) if session is not None else None
        if snap is not None:
            return StudentInfo(snap.student_id, snap.name, snap.batch, snap.phone)
    return None


def mark_local(
    session_id: str, student_id: str, status: str, method: str,
    similarity: Optional[float] = None, distance_m: Optional[float] = None, *,
    face_distance: Optional[float] = None, answers: Optional[dict] = None,
    live: Optional[bool] = None, liveness_score: Optional[float] = None,
) -> tuple[Session, AttendanceRecord, bool]:
    """The local, idempotent half of every backend's `submit`: the student must be on the
    session's roster; returns (session, record, changed)."""
    session = get_session(session_id, student_id)
    require_snapshot_student(session, student_id)
    record, changed = AttendanceRecord.mark(
        session.id, student_id, status, method, similarity=similarity, distance_m=distance_m,
        face_distance=face_distance, answers=answers, live=live, liveness_score=liveness_score,
    )
    return session, record, changed


def override_mark(session_id: str, student_id: str, status: str, *, by: str, reason: str
                  ) -> tuple[Optional[AttendanceRecord], bool]:
    """A mark by hand (teacher or admin): the local half of :mod:`integrations.attendance.marks`.

    Nothing happens when the student already has ``status`` (returns (record, False)). Otherwise
    the record takes the status with method ``manual``, unsynced, and its ``history`` keeps what
    it replaced: {at, by, reason, from_status, from_method, to_status}. One conditional update, so
    two overrides at once never lose a history entry."""
    session = get_session(session_id, student_id)
    require_snapshot_student(session, student_id)
    if status not in ("present", "absent", "failed"):
        raise ValueError(f"bad status: {status}")
    query = AttendanceRecord.objects(session=session.id, student_id=student_id)
    for _ in range(5):
        existing = query.first()
        previous = existing.status if existing is not None else "absent"
        if previous == status:
            return existing, False
        now = utcnow()
        change = {"at": now, "by": by, "reason": reason, "from_status": previous,
                  "from_method": existing.method if existing is not None else "", "to_status": status}
        fields = dict(set__status=status, set__method="manual", set__updated_at=now, set__synced=False,
                      set__note=f"manual by {by}: {reason}"[:300], push__history=change, inc__rev=1)
        if existing is None:
            try:
                AttendanceRecord(session=session.id, student_id=student_id, status=status, method="manual",
                                 time=now, updated_at=now, synced=False, note=fields["set__note"],
                                 history=[change], rev=1).save()
                return query.first(), True
            except NotUniqueError:
                continue
        if AttendanceRecord.objects(id=existing.id, status=existing.status, rev=existing.rev).update_one(**fields):
            return query.first(), True
    raise RosterError(UNKNOWN_STUDENT, "the record kept changing; try again")


def record_for(session_id: ObjectId, student_id: str) -> Optional[AttendanceRecord]:
    return AttendanceRecord.objects(session=session_id, student_id=student_id).first()


def _cell(value: str) -> str:
    """Neutralise spreadsheet formulas in text that came from outside (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


REPORT_COLUMNS = ("student_id", "name", "batch", "phone", "status", "method", "time", "similarity",
                  "face_distance", "liveness", "liveness_score", "distance_m", "note")


def answer_keys(report: Report) -> list[str]:
    """The kept answers' names over every row, in the order they first appear."""
    return list(dict.fromkeys(key for r in report.rows for key, _ in r.answers))


def report_table(report: Report, labels: Optional[Mapping[str, str]] = None) -> tuple[list[str], list[list[Any]]]:
    """The report as a header and rows of plain values (CSV and XLSX share it).

    ``status`` is what the report text says (present, locked_out, failed, absent); a face check's
    score is ``similarity`` (Rekognition, percent) or ``face_distance`` (local dlib, lower is
    closer); ``liveness`` is ``live`` or ``doubtful`` (empty: not checked) with its score;
    ``distance_m`` is the student's distance from the class. Kept answers follow.
    ``labels`` translates the column names and the status and method words (a teacher's report
    in their language); without it they are the plain keys a backup keeps."""
    words = labels or {}
    keys = answer_keys(report)
    header = [*(words.get(column, column) for column in REPORT_COLUMNS), *keys]
    rows = []
    for r in report.rows:
        answers = dict(r.answers)
        rows.append([
            r.student_id, r.name, r.batch, r.phone, words.get(r.shown_status, r.shown_status),
            words.get(r.method, r.method),
            r.time.isoformat() if r.time else "",
            None if r.similarity is None else round(r.similarity, 1),
            None if r.face_distance is None else round(r.face_distance, 3),
            words.get(r.liveness, r.liveness),
            None if r.liveness_score is None else round(r.liveness_score, 3),
            None if r.distance_m is None else round(r.distance_m),
            r.note, *(answers.get(k, "") for k in keys),
        ])
    return header, rows


def report_csv(report: Report, labels: Optional[Mapping[str, str]] = None) -> bytes:
    """The report as CSV (UTF-8 with BOM so spreadsheet apps read names correctly)."""
    header, rows = report_table(report, labels)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else (_cell(v) if isinstance(v, str) else v) for v in row])
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
    locked = locked_students(session)
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
                face_distance=rec.face_distance if rec else None,
                locked=snap.student_id in locked,
                answers=tuple((str(k), str(v)) for k, v in (rec.answers or {}).items()) if rec else (),
                note=(rec.note or "") if rec else "",
                live=rec.live if rec else None,
                liveness_score=rec.liveness_score if rec else None,
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


def record_wrong_code(session_id: str, student_id: str, max_attempts: int, session_cap: int,
                      user_id: Optional[int] = None) -> tuple[int, bool]:
    """One wrong code against a session: per student and Telegram account (lockout at the limit;
    see `names.attempt_key`: typing a classmate's id never locks the classmate out) and in total.

    One atomic update counts both, and only for a student not locked out yet: a locked student's
    guesses never count toward the session's total (so accomplices cannot spend the brake on an
    honest class). Once the total passes `session_cap`, every further miss locks that student out
    at once. Returns (the student's count, locked).
    """
    oid = session_oid(session_id)
    attempt = attempt_key(student_id, user_id)
    key = escape_key(attempt)
    doc = Session._get_collection().find_one_and_update(
        {"_id": oid, "locked_out": {"$ne": attempt}},
        {"$inc": {"failed_otp_total": 1, f"failed_otp.{key}": 1}},
        projection={"failed_otp_total": True, f"failed_otp.{key}": True},
        return_document=ReturnDocument.AFTER,
    )
    if doc is None:  # locked out already (or no such session): nothing counted
        return max_attempts, True
    count = int(doc["failed_otp"][key])
    if count >= max_attempts or doc["failed_otp_total"] > session_cap:
        Session.objects(id=oid).update_one(add_to_set__locked_out=attempt)
        return count, True
    return count, False


def record_face_failure(session_id: str, student_id: str, user_id: Optional[int] = None) -> int:
    """One failed face check of the student on this Telegram account; the new count."""
    return Session.record_face_failure(session_oid(session_id), attempt_key(student_id, user_id))


def close_now(session_id: str) -> Optional[dt.datetime]:
    """Close an open session at once (no more codes); the closing time, or None if it was not open."""
    now = utcnow()
    closed = Session.objects(id=session_oid(session_id), status="open").update_one(
        set__expires_at=now, set__status="closed")
    return now if closed else None



# ------------------------------------------------------------------ edits from the web admin panel
# Every write the panel (integrations/web) makes goes through these, behind RosterService.
safe_cell = _cell  # the CSV-injection guard, for the panel's own exports


def inactive_codes() -> tuple[set[str], set[str]]:
    """Batch codes and subject codes deactivated in the panel (excluded from new sessions)."""
    return ({b.code for b in Batch.objects(active=False).only("code")},
            {s.code for s in Subject.objects(active=False).only("code")})


def _teacher_oid(teacher_id: str) -> ObjectId:
    try:
        return ObjectId(str(teacher_id))
    except (InvalidId, TypeError):
        raise RosterError(UNKNOWN_TEACHER, "not a teacher id") from None


def save_teacher(email: str, name: str, phone: str, assignments: Iterable[tuple[str, str]],
                 password_hash: Optional[str], teacher_id: Optional[str] = None) -> Teacher:
    """Create (``teacher_id`` None) or edit a local-roster teacher in one update.

    ``password_hash`` None keeps the current password. An email another teacher has is refused
    with RosterError("duplicate"); nothing is written then.
    """
    email = email.strip().lower()
    fields: dict[str, Any] = {
        "set__email": email, "set__name": name.strip(), "set__phone": normalise_phone(phone),
        "set__assignments": [Assignment(batch=b, subject=s) for b, s in sorted(set(assignments))],
        "set__updated_at": utcnow(),
    }
    if password_hash:
        fields["set__password_hash"] = password_hash
    try:
        if teacher_id is None:
            if Teacher.objects(email=email).only("id").first() is not None:
                raise RosterError(DUPLICATE, "a teacher with this email exists")
            Teacher.objects(email=email).update_one(upsert=True, set_on_insert__created_at=utcnow(), **fields)
            teacher = Teacher.objects(email=email).first()
        else:
            oid = _teacher_oid(teacher_id)
            if not Teacher.objects(id=oid).update_one(**fields):
                raise RosterError(UNKNOWN_TEACHER, "no such teacher")
            teacher = Teacher.objects(id=oid).first()
    except NotUniqueError:
        raise RosterError(DUPLICATE, "a teacher with this email exists") from None
    if password_hash and teacher_id is not None:
        end_logins_of(str(teacher.id))  # a new password signs the teacher out everywhere
    return teacher


def set_teacher_active(teacher_id: str, active: bool) -> bool:
    """(De)activate; deactivating also drops the Telegram binding and every panel login."""
    oid = _teacher_oid(teacher_id)
    if active:
        return bool(Teacher.objects(id=oid).update_one(set__active=True, set__updated_at=utcnow()))
    done = bool(Teacher.objects(id=oid).update_one(set__active=False, unset__telegram_id=True,
                                                   set__updated_at=utcnow()))
    end_logins_of(str(oid))
    return done


def reset_teacher_binding(teacher_id: str) -> bool:
    """Forget the teacher's Telegram account: the next bot login binds a new one."""
    return bool(Teacher.objects(id=_teacher_oid(teacher_id)).update_one(unset__telegram_id=True,
                                                                        set__updated_at=utcnow()))


def _code_document(kind: str) -> Any:
    if kind not in ("batch", "subject"):
        raise ValueError(f"kind must be batch or subject, not {kind!r}")
    return Batch if kind == "batch" else Subject


def save_code(kind: str, code: str, name: str, create: bool) -> bool:
    """Add (``create``) or rename a batch or subject; RosterError("duplicate") if it exists."""
    document = _code_document(kind)
    if create:
        try:
            document(code=code, name=name or code).save()
        except NotUniqueError:
            raise RosterError(DUPLICATE, f"{kind} {code} exists") from None
        return True
    return bool(document.objects(code=code).update_one(set__name=name or code))


def set_code_active(kind: str, code: str, active: bool) -> bool:
    return bool(_code_document(kind).objects(code=code).update_one(set__active=bool(active)))


def save_student(student_id: str, name: str, phone: str, batch: str, create: bool) -> bool:
    """Add (``create``: RosterError("duplicate") if the id exists) or edit one student."""
    digits = normalise_phone(phone)
    fields = {"set__name": name.strip(), "set__phone": digits, "set__phone_tail": phone_tail(digits),
              "set__batch": batch}
    if create:
        try:
            Student(student_id=student_id, name=name.strip(), phone=digits, batch=batch).save()
        except NotUniqueError:
            raise RosterError(DUPLICATE, f"student {student_id} exists") from None
        Batch.objects(code=batch).update_one(upsert=True, set_on_insert__name=batch)
        return True
    return bool(Student.objects(student_id=student_id).update_one(**fields))


def delete_student(student_id: str) -> bool:
    """Remove from the roster; past sessions keep their snapshot and records."""
    return bool(Student.objects(student_id=student_id).delete())


def create_admin(email: str, password_hash: str) -> AdminUser:
    try:
        return AdminUser(email=email.strip().lower(), password_hash=password_hash).save()
    except NotUniqueError:
        raise RosterError(DUPLICATE, "an admin with this email exists") from None


def set_admin_password(email: str, password_hash: str) -> bool:
    admin = AdminUser.objects(email=email.strip().lower()).first()
    if admin is None:
        return False
    AdminUser.objects(id=admin.id).update_one(set__password_hash=password_hash)
    end_logins_of(str(admin.id))
    return True


def create_login(token_hash: str, role: str, principal: str, csrf: str, expires_at: dt.datetime) -> WebLogin:
    return WebLogin(token_hash=token_hash, role=role, principal=principal, csrf=csrf,
                    expires_at=expires_at).save()


def end_login(token_hash: str) -> bool:
    return bool(WebLogin.objects(token_hash=token_hash).delete())


def end_logins_of(principal: str) -> int:
    return int(WebLogin.objects(principal=principal).delete())

# --------------------------------------------------------------------------------------- audit
def add_audit_event(kind: str, *, session_id: Optional[str] = None, student_id: Optional[str] = None,
                    user_id: Optional[int] = None, actor: str = "", request_id: str = "",
                    data: Optional[Mapping[str, Any]] = None) -> AuditEvent:
    """Append one audit event (see integrations.attendance.audit for what is recorded)."""
    return AuditEvent(kind=kind, session_id=str(session_id) if session_id else None,
                      student_id=student_id or None, user_id=int(user_id) if user_id is not None else None,
                      actor=actor or "", request_id=request_id or "", data=dict(data or {}), at=utcnow()).save()


def audit_events(session_id: Optional[str] = None, student_id: Optional[str] = None,
                 limit: int = 10000) -> list[AuditEvent]:
    """A session's (or a student's) events, oldest first."""
    query = AuditEvent.objects
    if session_id:
        query = query(session_id=str(session_id))
    if student_id:
        query = query(student_id=student_id)
    return list(query.order_by("at", "id").limit(limit))


# ------------------------------------------------------------------------------------- history
def batch_sessions(batch: str, start: Optional[dt.datetime] = None, end: Optional[dt.datetime] = None
                   ) -> list[Session]:
    """Sessions that included ``batch`` and opened in [start, end), oldest first."""
    query = Session.objects(batches=batch)
    if start is not None:
        query = query(opened_at__gte=start)
    if end is not None:
        query = query(opened_at__lt=end)
    return list(query.order_by("opened_at"))


def session_statuses(session: Session) -> dict[str, tuple[str, str]]:
    """{student_id: (status, method)} of a session's local records (present, failed, ...)."""
    return {r.student_id: (r.status, r.method or "")
            for r in AttendanceRecord.objects(session=session.id).only("student_id", "status", "method")}
