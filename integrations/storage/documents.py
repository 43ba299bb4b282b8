"""Persistent data (mongoengine): teachers, the local roster, attendance sessions and records.

Writes that can race (two students, two bot workers) are single atomic updates with conditions
or upserts, never read-modify-save, so the same code is correct against a real server.
Per-student counters live in maps keyed by an escaped student id (Mongo keys cannot hold '.' or
start with '$'); use the helpers instead of touching the maps directly.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from bson import ObjectId
from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    Document,
    EmbeddedDocument,
    EmbeddedDocumentField,
    FloatField,
    IntField,
    ListField,
    MapField,
    NotUniqueError,
    ReferenceField,
    StringField,
)
from pymongo import ReturnDocument

from integrations.foundation.names import attempt_key, student_of_key
from integrations.foundation.phones import normalise_phone, phone_tail
from integrations.foundation.timefmt import as_utc

SESSION_STATUSES = ("open", "closed")
RECORD_STATUSES = ("present", "absent", "failed")
RECORD_METHODS = ("face", "manual")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def escape_key(student_id: str) -> str:
    """Make a student id safe as a Mongo map key (reversible)."""
    return student_id.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def unescape_key(key: str) -> str:
    return key.replace("%24", "$").replace("%2E", ".").replace("%25", "%")


# ---------------------------------------------------------------------------------------------
# People and the local roster


class Assignment(EmbeddedDocument):
    """A batch and subject a teacher teaches (local roster)."""

    batch = StringField(required=True)
    subject = StringField(required=True)


class Teacher(Document):
    """A teacher; ``telegram_id`` is set at first successful login and then identifies them."""

    telegram_id = IntField()
    name = StringField(default="")
    phone = StringField(default="")  # digits only
    email = StringField(required=True)  # lower case
    password_hash = StringField()  # local backend: scrypt hash, never the password
    external_id = StringField()  # http backend: the mentor id in the external API
    credentials_enc = StringField()  # http backend: Fernet({"email", "password"}) for re-login
    tokens_enc = StringField()  # http backend: Fernet({"access", "refresh"})
    assignments = ListField(EmbeddedDocumentField(Assignment))
    active = BooleanField(default=True)  # False: deactivated in the web panel (no login, no binding)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    meta = {
        "collection": "teachers",
        "indexes": [
            {"fields": ["telegram_id"], "unique": True, "sparse": True},
            {"fields": ["email"], "unique": True},
            "phone",
        ],
    }

    def clean(self) -> None:
        self.email = (self.email or "").strip().lower()
        self.phone = normalise_phone(self.phone)

    def __repr__(self) -> str:  # never show secrets
        return f"<Teacher {self.email} tg={self.telegram_id}>"


class Batch(Document):
    code = StringField(required=True)
    name = StringField(default="")
    active = BooleanField(default=True)  # False: deactivated in the web panel (no new sessions)

    meta = {"collection": "batches", "indexes": [{"fields": ["code"], "unique": True}]}


class Subject(Document):
    code = StringField(required=True)
    name = StringField(default="")
    active = BooleanField(default=True)  # False: deactivated in the web panel (no new sessions)

    meta = {"collection": "subjects", "indexes": [{"fields": ["code"], "unique": True}]}


class Student(Document):
    student_id = StringField(required=True)
    name = StringField(default="")
    phone = StringField(default="")  # digits only
    phone_tail = StringField(default="")  # last 10 digits: the indexed key students are found by
    batch = StringField(required=True)
    telegram_user_id = IntField()

    meta = {
        "collection": "students",
        "indexes": [
            {"fields": ["student_id"], "unique": True},
            {"fields": ["telegram_user_id"], "unique": True, "sparse": True},
            "batch",
            "phone_tail",
        ],
    }

    def clean(self) -> None:
        self.phone = normalise_phone(self.phone)
        self.phone_tail = phone_tail(self.phone)

    @classmethod
    def backfill_phone_tails(cls) -> int:
        """Give students stored before `phone_tail` existed their lookup key (start-up)."""
        count = 0
        for student in cls.objects(phone_tail__exists=False).only("phone"):
            cls.objects(id=student.id).update_one(set__phone_tail=phone_tail(student.phone))
            count += 1
        return count


# ---------------------------------------------------------------------------------------------
# Attendance sessions


class StudentSnapshot(EmbeddedDocument):
    """The roster as it was when the session opened (the report lists exactly these).

    The phone is normalised and its tail derived when a snapshot is *built*, not in ``clean()``:
    setting fields in ``clean()`` marks every snapshot as changed, and mongoengine's bookkeeping
    after ``save()`` then walks the whole roster once per changed snapshot, which made opening a
    session O(N²) (8.5 s of CPU for 1,000 students). A snapshot is never edited after it is built.
    """

    student_id = StringField(required=True)
    name = StringField(default="")
    batch = StringField(default="")
    phone = StringField(default="")  # digits only
    phone_tail = StringField(default="")  # indexed: finds a student among open sessions' rosters

    def __init__(self, *args: Any, **values: Any) -> None:
        # Snapshots read back from the database (_created=False) are stored normalised already.
        if values.get("_created", True) and "phone" in values:
            values["phone"] = normalise_phone(values["phone"])
            values["phone_tail"] = phone_tail(values["phone"])
        super().__init__(*args, **values)

    @classmethod
    def of(cls, student_id: str, name: str = "", batch: str = "", phone: str = "") -> "StudentSnapshot":
        """A snapshot with its phone normalised and its lookup tail set."""
        return cls(student_id=student_id, name=name, batch=batch, phone=phone)


class Session(Document):
    """One attendance session opened by a teacher with an OTP."""

    otp = StringField(required=True)
    teacher = ReferenceField(Teacher, required=True)
    batches = ListField(StringField())
    subject = StringField(default="")
    latitude = FloatField(required=True)
    longitude = FloatField(required=True)
    radius_m = FloatField(default=50.0)
    opened_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField(required=True)
    status = StringField(choices=SESSION_STATUSES, default="open")
    students = ListField(EmbeddedDocumentField(StudentSnapshot))
    roster_size = IntField()  # len(students), readable without loading them (sessions of before: unset)
    report_sent_at = DateTimeField()
    failed_otp = MapField(IntField())  # escaped student id -> wrong codes
    failed_otp_total = IntField(default=0)  # wrong codes from everyone (brute-force brake)
    locked_out = ListField(StringField())  # student ids (not escaped)
    face_failures = MapField(IntField())  # escaped student id -> failed face checks
    face_checking = DictField()  # escaped student id -> {"until", "token"}: the one check in flight
    external_posted = BooleanField(default=False)  # http backend: the first POST has succeeded

    meta = {
        "collection": "attendance_sessions",
        # Each index names the queries it serves; the full list is in docs/performance.md
        # ("Indexes") and tests/integrations/test_models.py checks it against this one.
        "indexes": [
            # Two open sessions must never share an OTP (find_open_session uses it too).
            {"fields": ["otp"], "unique": True, "partialFilterExpression": {"status": "open"}},
            # session_by_otp: the newest session with a code, open or not. The partial index above
            # cannot serve a query without status="open", so it scanned every session ever made.
            ("otp", "-opened_at"),
            ("status", "expires_at"),
            # A student among open sessions' rosters: identify_student (phone, http backend) and
            # open_sessions_of (every wrong code). Only open sessions' rosters are indexed; an
            # index on every session ever would find the student in all their past classes.
            # Every field of the query is in the key, so no server has a residual to scan for.
            {"fields": ["students.phone_tail", "status", "expires_at"], "partialFilterExpression": {"status": "open"}},
            {"fields": ["students.student_id", "status", "expires_at"], "partialFilterExpression": {"status": "open"}},
            ("teacher", "-opened_at"),  # latest_session: the newest first, without a sort
            # teacher_open_session (every teacher menu): only the teacher's open sessions, not a
            # walk through all their past ones when none is open.
            ("teacher", "status", "expires_at"),
            "report_sent_at",  # the report scheduler's re-arm at start-up (report_sent_at=None)
        ],
    }

    # -- reads

    def student(self, student_id: str) -> Optional[StudentSnapshot]:
        return next((s for s in self.students if s.student_id == student_id), None)

    # Counters and lockouts are kept per `attempt_key(student_id, user_id)`: the student and the
    # Telegram account that acted for them. Without a user id these read the student's own key.

    def failed_otp_count(self, student_id: str, user_id: Optional[int] = None) -> int:
        return int((self.failed_otp or {}).get(escape_key(attempt_key(student_id, user_id)), 0))

    def face_failure_count(self, student_id: str, user_id: Optional[int] = None) -> int:
        return int((self.face_failures or {}).get(escape_key(attempt_key(student_id, user_id)), 0))

    def is_open(self) -> bool:
        """Taking codes now: open and not past its end (the report job closes it a little later)."""
        return self.status == "open" and self.expires_at is not None and as_utc(self.expires_at) > utcnow()

    def is_locked_out(self, student_id: str, user_id: Optional[int] = None) -> bool:
        """Locked out: the student on this account, or the student whatever the account (an entry
        without a user, e.g. from before accounts were counted apart)."""
        locked = set(self.locked_out or [])
        return student_id in locked or (user_id is not None and attempt_key(student_id, user_id) in locked)

    def locked_student_ids(self) -> set[str]:
        """Students locked out on some account (for reports and status lines)."""
        return {student_of_key(key) for key in self.locked_out or []}

    # -- atomic writes (return fresh values; never save() a stale document)

    @classmethod
    def record_failed_otp(cls, session_id: ObjectId, student_id: str, max_attempts: int) -> tuple[int, bool]:
        """Count one wrong OTP; lock the student out at ``max_attempts``. Returns (count, locked)."""
        coll = cls._get_collection()
        doc = coll.find_one_and_update(
            {"_id": session_id},
            {"$inc": {f"failed_otp.{escape_key(student_id)}": 1}},
            projection={f"failed_otp.{escape_key(student_id)}": True, "locked_out": True},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return 0, False
        count = int(doc["failed_otp"][escape_key(student_id)])
        if count >= max_attempts:
            coll.update_one({"_id": session_id}, {"$addToSet": {"locked_out": student_id}})
            return count, True
        return count, student_id in doc.get("locked_out", [])

    @classmethod
    def record_face_failure(cls, session_id: ObjectId, student_id: str) -> int:
        """Count one failed face check; returns the new count (0 if the session is gone)."""
        doc = cls._get_collection().find_one_and_update(
            {"_id": session_id},
            {"$inc": {f"face_failures.{escape_key(student_id)}": 1}},
            projection={f"face_failures.{escape_key(student_id)}": True},  # not the class roster
            return_document=ReturnDocument.AFTER,
        )
        return int(doc["face_failures"][escape_key(student_id)]) if doc else 0

    @classmethod
    def begin_face_check(cls, session_id: ObjectId, student_id: str, token: str, max_attempts: int,
                         lease_s: float, failures_key: Optional[str] = None) -> str:
        """Claim the student's one face check in this session: ``ok``, ``busy`` (another check is
        in flight), ``exhausted`` (``max_attempts`` failures already) or ``gone``.

        One conditional update checks both, so neither a second note nor a second instance can
        start a check past the limit. The claim is a lease: a check lost with its process frees
        the student after ``lease_s`` (or at the next start-up, see attendance/recovery.py).
        ``failures_key``: where the failures are counted, if not under ``student_id`` (per student
        and Telegram account, `names.attempt_key`)."""
        key = escape_key(student_id)
        failed = escape_key(failures_key or student_id)
        now = utcnow()
        coll = cls._get_collection()
        claimed = coll.update_one(
            {"_id": session_id,
             "$and": [{"$or": [{f"face_checking.{key}": None}, {f"face_checking.{key}.until": {"$lte": now}}]},
                      {"$or": [{f"face_failures.{failed}": None}, {f"face_failures.{failed}": {"$lt": max_attempts}}]}]},
            {"$set": {f"face_checking.{key}": {"until": now + dt.timedelta(seconds=lease_s), "token": token}}},
        ).modified_count
        if claimed:
            return "ok"
        doc = coll.find_one({"_id": session_id}, {f"face_failures.{failed}": True})
        if doc is None:
            return "gone"
        return "exhausted" if int((doc.get("face_failures") or {}).get(failed, 0)) >= max_attempts else "busy"

    @classmethod
    def release_face_check(cls, session_id: ObjectId, student_id: str, token: Optional[str]) -> bool:
        """Give the claim back, if it is still this check's (its answer is recorded by now);
        ``token=None``: whoever holds it (a check that died with its process)."""
        key = escape_key(student_id)
        query = {"_id": session_id}
        if token is not None:
            query[f"face_checking.{key}.token"] = token
        return bool(cls._get_collection().update_one(query, {"$unset": {f"face_checking.{key}": ""}}).modified_count)

    @classmethod
    def face_checks_running(cls, session_id: ObjectId) -> int:
        """Face checks claimed in this session whose lease has not run out."""
        doc = cls._get_collection().find_one({"_id": session_id}, {"face_checking": True}) or {}
        now = utcnow()
        return sum(1 for claim in (doc.get("face_checking") or {}).values()
                   if isinstance(claim, dict) and claim.get("until") and _utc(claim["until"]) > now)

    @classmethod
    def close(cls, session_id: ObjectId) -> bool:
        """Close an open session; True only for the caller that actually closed it."""
        return bool(cls.objects(id=session_id, status="open").update_one(set__status="closed"))

    @classmethod
    def extend(cls, session_id: ObjectId, seconds: float) -> Optional[dt.datetime]:
        """Push an open session's expiry back; the new expiry, or None if it is not open.

        Optimistic: the update only applies if nobody changed the expiry meanwhile (then retry).
        """
        for _ in range(5):
            current = cls.objects(id=session_id, status="open").only("expires_at").first()
            if current is None:
                return None
            new = current.expires_at + dt.timedelta(seconds=seconds)
            if cls.objects(id=session_id, status="open", expires_at=current.expires_at).update_one(
                set__expires_at=new
            ):
                return new
        return None

    @classmethod
    def claim_report(cls, session_id: ObjectId) -> bool:
        """Mark the report as sent; True only once, so two workers never both send it."""
        return bool(
            cls.objects(id=session_id, report_sent_at=None).update_one(set__report_sent_at=utcnow())
        )

    @classmethod
    def release_report(cls, session_id: ObjectId) -> bool:
        """Undo :meth:`claim_report` when the report could not be delivered, so it is sent later."""
        return bool(cls.objects(id=session_id).update_one(unset__report_sent_at=True))


class AttendanceRecord(Document):
    """One student's attendance in one session (unique per session and student)."""

    session = ReferenceField(Session, required=True)
    student_id = StringField(required=True)
    status = StringField(choices=RECORD_STATUSES, required=True)
    method = StringField(choices=RECORD_METHODS, default="face")
    similarity = FloatField()
    distance_m = FloatField()
    time = DateTimeField(default=utcnow)  # first marked
    updated_at = DateTimeField(default=utcnow)
    synced = BooleanField(default=False)  # accepted by the external API (http backend)
    note = StringField()  # e.g. the teacher's reason for a manual mark
    rev = IntField(default=0)  # bumped by every change, so a sync never confirms a newer change
    face_distance = FloatField()  # the local (dlib) verifier's score: embedding distance, lower is closer
    answers = DictField()  # answers the flow keeps with the record (its `record_answers`), e.g. a seat
    # The note's liveness (issue 17): False = "liveness doubtful" (LIVENESS=flag still records the
    # match), None = not checked (LIVENESS=off, a manual mark, a frame checked from the outbox).
    live = BooleanField()
    liveness_score = FloatField()  # 0..1, judged live from 0.5
    # Manual overrides that changed the status: {at, by, reason, from_status, from_method, to_status}
    history = ListField(DictField())

    meta = {
        "collection": "attendance_records",
        "indexes": [
            {"fields": ["session", "student_id"], "unique": True},
            # sync_pending {session, synced} and the report's unsynced count {session, synced, status}.
            ("session", "synced", "status"),
        ],
    }

    @classmethod
    def mark(
        cls,
        session_id: ObjectId,
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
    ) -> tuple["AttendanceRecord", bool]:
        """Upsert the record; returns (record, changed).

        A mark that does not change the status changes nothing (``changed`` is False, ``synced``
        and the method stay: a student verified by face and then marked by hand stays "face").
        A later face *failure* never downgrades a student already present.
        """
        if status not in RECORD_STATUSES or method not in RECORD_METHODS:
            raise ValueError(f"bad status/method: {status}/{method}")
        query = cls.objects(session=session_id, student_id=student_id)
        existing = query.first()
        if existing is not None and (
            existing.status == status or (existing.status == "present" and status == "failed")
        ):
            return existing, False
        now = utcnow()
        fields = {"set__status": status, "set__method": method, "set__updated_at": now, "set__synced": False}
        if similarity is not None:
            fields["set__similarity"] = float(similarity)
        if distance_m is not None:
            fields["set__distance_m"] = float(distance_m)
        if face_distance is not None:
            fields["set__face_distance"] = float(face_distance)
        if live is not None:
            fields["set__live"] = bool(live)
        if liveness_score is not None:
            fields["set__liveness_score"] = float(liveness_score)
        if answers:
            fields["set__answers"] = {str(k): v for k, v in answers.items()}
        for attempt in range(2):
            try:
                query.update_one(upsert=True, set_on_insert__time=now, inc__rev=1, **fields)
                break
            except NotUniqueError:  # lost an insert race: the other insert exists now, update it
                if attempt:
                    raise
        return query.first(), True

    @classmethod
    def mark_synced(cls, record_id: ObjectId, rev: int) -> bool:
        """Flag as synced unless it changed meanwhile (then the newer change still needs sending)."""
        return bool(cls.objects(id=record_id, rev=rev).update_one(set__synced=True))


class StudentBinding(Document):
    """Which Telegram account speaks for which student: one each way.

    Made the first time a student is identified (by student ID, or by their own contact); a second
    account typing a bound student's ID is refused until a teacher or an admin removes the binding.
    """

    student_id = StringField(required=True)
    telegram_user_id = IntField(required=True)
    via = StringField(default="student_id")  # contact | student_id
    bound_at = DateTimeField(default=utcnow)

    meta = {
        "collection": "student_bindings",
        "indexes": [
            {"fields": ["student_id"], "unique": True},
            {"fields": ["telegram_user_id"], "unique": True},
        ],
    }


ALL_DOCUMENTS = (Teacher, Batch, Subject, Student, Session, AttendanceRecord, StudentBinding)
