"""What the pages show, read straight from storage (blocking: call through ``run_blocking``).

Reads only; every write goes through RosterService. Large reads use pymongo directly with
projections (a class snapshot or a term of records as mongoengine objects would cost more than
the page budget of docs/performance.md). Every function takes the :class:`Principal` and
returns only what that person may see; an id outside their scope reads as "not found".
"""
from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional
from zoneinfo import ZoneInfo

from bson import ObjectId
from bson.errors import InvalidId

from integrations.foundation.names import PRESENT, student_of_key
from integrations.foundation.timefmt import as_utc
from integrations.storage import outbox
from integrations.storage.documents import (
    AttendanceRecord,
    Batch,
    Session,
    Student,
    Subject,
    Teacher,
    unescape_key,
    utcnow,
)
from integrations.storage.audit import AuditEvent
from integrations.web import constants as C
from integrations.web.auth import Principal


def oid(value: Any) -> Optional[ObjectId]:
    try:
        return ObjectId(str(value))
    except (InvalidId, TypeError):
        return None


def start_of_day(zone: str, day: Optional[dt.date] = None) -> dt.datetime:
    """Midnight of ``day`` (default today) in ``zone``, as UTC."""
    tz = ZoneInfo(zone)
    day = day or dt.datetime.now(tz).date()
    return dt.datetime.combine(day, dt.time(), tz).astimezone(dt.timezone.utc)


# ------------------------------------------------------------------------------------ sessions
@dataclass
class SessionRow:
    id: str
    subject: str
    batches: list[str]
    teacher: str
    opened_at: Optional[dt.datetime]
    expires_at: Optional[dt.datetime]
    status: str  # open | closed (an open session past its expiry reads as closed)
    total: int = 0
    present: int = 0

    @property
    def absent(self) -> int:
        return self.total - self.present


def _session_filter(p: Principal, extra: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    query: dict[str, Any] = dict(extra or {})
    if not p.is_admin:
        query["teacher"] = oid(p.id)
    return query


class PresentCache:
    """Who was present in each *closed* session, kept for CLOSED_CACHE_S seconds (per process).

    History pages read every session of a range; one indexed query per session is cheap on
    MongoDB but costs ~15-40 ms each on the embedded SecantusDB (and a `$in` over many sessions
    far more), so closed sessions are remembered briefly. Open sessions are always read fresh; a
    closed one can still change (a late face check from the outbox), which shows after at most
    CLOSED_CACHE_S.
    """

    def __init__(self, ttl_s: float = C.CLOSED_CACHE_S, size: int = C.CLOSED_CACHE_SESSIONS) -> None:
        self.ttl_s, self.size = ttl_s, size
        self._data: OrderedDict[ObjectId, tuple[float, frozenset[str]]] = OrderedDict()
        self._lock = threading.Lock()

    def present(self, session_ids: Iterable[ObjectId], closed: set[ObjectId]) -> dict[ObjectId, frozenset[str]]:
        now = time.monotonic()
        found: dict[ObjectId, frozenset[str]] = {}
        missing = []
        with self._lock:
            for key in session_ids:
                hit = self._data.get(key)
                if hit is not None and hit[0] > now and key in closed:
                    found[key] = hit[1]
                else:
                    missing.append(key)
        coll = AttendanceRecord._get_collection()
        for key in missing:  # the (session, student_id) index serves each of these
            found[key] = frozenset(r["student_id"] for r in coll.find({"session": key, "status": PRESENT},
                                                                       {"student_id": 1, "_id": 0}))
        with self._lock:
            for key in missing:
                if key in closed:
                    self._data[key] = (now + self.ttl_s, found[key])
                    self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return found

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


PRESENT_CACHE = PresentCache()


def _closed(docs: Iterable[dict[str, Any]]) -> set[ObjectId]:
    now = utcnow()
    return {d["_id"] for d in docs
            if d.get("status") != "open" or (d.get("expires_at") is not None and as_utc(d["expires_at"]) <= now)}


def _present_counts(docs: list[dict[str, Any]]) -> dict[ObjectId, int]:
    present = PRESENT_CACHE.present([d["_id"] for d in docs], _closed(docs))
    return {key: len(ids) for key, ids in present.items()}


def _teacher_names(ids: Iterable[Any]) -> dict[Any, str]:
    ids = [i for i in set(ids) if i is not None]
    if not ids:
        return {}
    docs = Teacher._get_collection().find({"_id": {"$in": ids}}, {"name": 1, "email": 1})
    return {d["_id"]: d.get("name") or d.get("email", "") for d in docs}


_LISTED = {"subject": 1, "batches": 1, "teacher": 1, "opened_at": 1, "expires_at": 1, "status": 1}


def _session_rows(docs: list[dict[str, Any]]) -> list[SessionRow]:
    """Rows for sessions already read (without their snapshot): sizes, present counts, teachers."""
    sizes = {d["_id"]: int(d["n"]) for d in Session._get_collection().aggregate([
        {"$match": {"_id": {"$in": [d["_id"] for d in docs]}}},
        {"$project": {"n": {"$size": {"$ifNull": ["$students", []]}}}}])} if docs else {}
    present = _present_counts(docs)
    names = _teacher_names(d.get("teacher") for d in docs)
    now = utcnow()
    rows = []
    for d in docs:
        expires = d.get("expires_at")
        is_open = d.get("status") == "open" and expires is not None and as_utc(expires) > now
        rows.append(SessionRow(str(d["_id"]), d.get("subject", ""), list(d.get("batches") or []),
                               names.get(d.get("teacher"), ""), d.get("opened_at"), expires,
                               "open" if is_open else "closed", sizes.get(d["_id"], 0), present.get(d["_id"], 0)))
    return rows


def today_sessions(p: Principal, zone: str) -> list[SessionRow]:
    query = _session_filter(p, {"opened_at": {"$gte": start_of_day(zone)}})
    return _session_rows(list(Session._get_collection().find(query, _LISTED).sort("opened_at", -1).limit(200)))


def sessions_page(p: Principal, page: int) -> tuple[list[SessionRow], int]:
    """One read of the (small) list fields of every session in scope: the count and the page."""
    listed = list(Session._get_collection().find(_session_filter(p), {"_id": 1}).sort("opened_at", -1))
    chosen = [d["_id"] for d in listed[(page - 1) * C.PAGE_SIZE: page * C.PAGE_SIZE]]
    docs = list(Session._get_collection().find({"_id": {"$in": chosen}}, _LISTED).sort("opened_at", -1)) \
        if chosen else []
    return _session_rows(docs), len(listed)


def session_for(p: Principal, session_id: str) -> Optional[Session]:
    """The whole session (with its snapshot), or None if unknown or not theirs."""
    key = oid(session_id)
    if key is None:
        return None
    session = Session.objects(id=key).first()
    if session is None or not p.may_see_session(teacher_id_of(session)):
        return None
    return session


def teacher_id_of(session: Session) -> Optional[str]:
    """The session's teacher id without loading the teacher (a DBRef or a loaded document)."""
    ref = session._data.get("teacher")
    return str(ref.id) if ref is not None and getattr(ref, "id", None) is not None else None


@dataclass(frozen=True)
class Alerts:
    attendance_waiting: int  # matched faces the attendance API has not taken yet
    checks_waiting: int  # face checks waiting for the face service
    failed: int  # entries given up

    @property
    def any(self) -> bool:
        return bool(self.attendance_waiting or self.checks_waiting or self.failed)


def alerts() -> Alerts:
    return Alerts(outbox.pending_count(outbox.ATTENDANCE), outbox.pending_count(outbox.VERIFICATION),
                  outbox.OutboxEntry.objects(status=outbox.FAILED).count())


# ------------------------------------------------------------------------------ the live page
@dataclass(frozen=True)
class LiveRow:
    student_id: str
    name: str
    batch: str
    state: str  # present | pending | failed | locked
    method: str = ""
    time: Optional[dt.datetime] = None
    distance_m: Optional[float] = None
    similarity: Optional[float] = None  # Rekognition: percent
    face_failures: int = 0
    note: str = ""
    face_distance: Optional[float] = None  # local dlib verifier: lower is closer
    live: Optional[bool] = None  # False: "liveness doubtful" (LIVENESS=flag); None: not checked


@dataclass(frozen=True)
class Live:
    rows: list[LiveRow]
    counts: dict[str, int]
    status: str
    expires_at: Optional[dt.datetime]


def live(session_id: ObjectId) -> Live:
    """Every student of the session with where they are now (read fresh each time)."""
    doc = Session._get_collection().find_one({"_id": session_id}, {"students": 1, "locked_out": 1, "face_failures": 1,
                                                                    "status": 1, "expires_at": 1})
    if doc is None:
        return Live([], {}, "closed", None)
    records = {r["student_id"]: r for r in AttendanceRecord._get_collection().find(
        {"session": session_id},
        {"student_id": 1, "status": 1, "method": 1, "time": 1, "distance_m": 1, "similarity": 1, "note": 1,
         "face_distance": 1, "live": 1})}
    # Lockouts and face failures count per student and Telegram account (names.attempt_key).
    locked = {student_of_key(key) for key in doc.get("locked_out") or []}
    failures: dict[str, int] = {}
    for key, count in (doc.get("face_failures") or {}).items():
        student = student_of_key(unescape_key(key))
        failures[student] = failures.get(student, 0) + int(count)
    rows = []
    for snap in doc.get("students") or []:
        sid = snap["student_id"]
        rec = records.get(sid)
        if rec is not None and rec.get("status") == PRESENT:
            state = "present"
        elif sid in locked:
            state = "locked"
        elif rec is not None and rec.get("status") == "failed":
            state = "failed"
        else:
            state = "pending"
        rec = rec or {}
        rows.append(LiveRow(sid, snap.get("name", ""), snap.get("batch", ""), state, rec.get("method", ""),
                            rec.get("time"), rec.get("distance_m"), rec.get("similarity"),
                            failures.get(sid, 0), rec.get("note") or "", rec.get("face_distance"), rec.get("live")))
    order = {"present": 1, "failed": 0, "locked": 0, "pending": 2}
    rows.sort(key=lambda r: (order[r.state], -(r.time.timestamp() if r.time else 0), r.student_id))
    counts = {k: sum(r.state == k for r in rows) for k in ("present", "pending", "failed", "locked")}
    counts["total"] = len(rows)
    expires = doc.get("expires_at")
    is_open = doc.get("status") == "open" and expires is not None and as_utc(expires) > utcnow()
    return Live(rows, counts, "open" if is_open else "closed", expires)


def audit_events(session_id: str) -> list[AuditEvent]:
    return list(AuditEvent.objects(session_id=session_id).order_by("at", "id"))


# ------------------------------------------------------------------------------ the roster
def _search(q: str) -> dict[str, Any]:
    q = q.strip()[: C.SEARCH_MAX_LEN]
    if not q:
        return {}
    pattern = re.compile(re.escape(q), re.IGNORECASE)
    return {"$or": [{"student_id": {"$regex": pattern}}, {"name": {"$regex": pattern}}]}


def students_page(p: Principal, q: str, batch: str, page: int) -> tuple[list[dict[str, Any]], int]:
    query = _search(q)
    if batch:
        if not p.may_see_batch(batch):
            return [], 0
        query["batch"] = batch
    elif not p.is_admin:
        query["batch"] = {"$in": sorted(p.batches)}
    listed = list(Student._get_collection().find(query, {"student_id": 1, "name": 1, "batch": 1, "_id": 0})
                  .sort("student_id", 1))  # one read gives the count and the page
    return listed[(page - 1) * C.PAGE_SIZE: page * C.PAGE_SIZE], len(listed)


def student_for(p: Principal, student_id: str) -> Optional[Student]:
    student = Student.objects(student_id=student_id).first()
    if student is None or not p.may_see_batch(student.batch):
        return None
    return student


def batch_codes(p: Principal, active_only: bool = False) -> list[str]:
    query: dict[str, Any] = {"active": {"$ne": False}} if active_only else {}
    codes = sorted(d["code"] for d in Batch._get_collection().find(query, {"code": 1}))
    return codes if p.is_admin else [c for c in codes if c in p.batches] or sorted(p.batches)


def codes(kind: str) -> list[Batch] | list[Subject]:
    document = Batch if kind == "batch" else Subject
    return list(document.objects.order_by("code"))


def code_exists(kind: str, code: str, active_only: bool = True) -> bool:
    document = Batch if kind == "batch" else Subject
    query = document.objects(code=code)
    if active_only:
        query = query.filter(active__ne=False)
    return query.only("id").first() is not None


def teachers() -> list[Teacher]:
    return list(Teacher.objects.only("email", "name", "phone", "assignments", "active", "telegram_id")
                .order_by("email"))


def teacher(teacher_id: str) -> Optional[Teacher]:
    key = oid(teacher_id)
    return Teacher.objects(id=key).first() if key is not None else None


# ------------------------------------------------------------------------------ history
@dataclass
class HistoryPoint:
    session_id: str
    opened_at: dt.datetime
    subject: str
    present: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.present / self.total if self.total else 0.0


@dataclass
class StudentLine:
    student_id: str
    name: str
    sessions: int = 0
    present: int = 0

    @property
    def percent(self) -> float:
        return 100.0 * self.present / self.sessions if self.sessions else 0.0


@dataclass
class History:
    points: list[HistoryPoint] = field(default_factory=list)
    students: list[StudentLine] = field(default_factory=list)
    truncated: bool = False

    @property
    def percent(self) -> float:
        total = sum(p.total for p in self.points)
        return 100.0 * sum(p.present for p in self.points) / total if total else 0.0


def _range(query: dict[str, Any], start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    query["opened_at"] = {"$gte": start, "$lt": end}
    return query


def batch_history(p: Principal, batch: str, start: dt.datetime, end: dt.datetime) -> Optional[History]:
    """Per session and per student of ``batch`` (students as the sessions' snapshots list them)."""
    if not p.may_see_batch(batch):
        return None
    query = _range(_session_filter(p, {"batches": batch}), start, end)
    docs = list(Session._get_collection().find(
        query, {"opened_at": 1, "subject": 1, "status": 1, "expires_at": 1, "students.student_id": 1,
                "students.batch": 1, "students.name": 1})
        .sort("opened_at", 1).limit(C.HISTORY_MAX_SESSIONS + 1))
    history = History(truncated=len(docs) > C.HISTORY_MAX_SESSIONS)
    docs = docs[: C.HISTORY_MAX_SESSIONS]
    by_session = PRESENT_CACHE.present([d["_id"] for d in docs], _closed(docs))
    present = {(key, sid) for key, ids in by_session.items() for sid in ids}
    lines: dict[str, StudentLine] = {}
    for d in docs:
        members = [s for s in d.get("students") or [] if s.get("batch") == batch]
        here = 0
        for s in members:
            line = lines.setdefault(s["student_id"], StudentLine(s["student_id"], s.get("name", "")))
            line.sessions += 1
            if (d["_id"], s["student_id"]) in present:
                line.present += 1
                here += 1
        history.points.append(HistoryPoint(str(d["_id"]), d["opened_at"], d.get("subject", ""), here, len(members)))
    history.students = sorted(lines.values(), key=lambda s: (s.percent, s.student_id))
    return history


@dataclass
class StudentVisit:
    session_id: str
    opened_at: dt.datetime
    subject: str
    status: str
    method: str = ""
    note: str = ""


def student_history(p: Principal, student_id: str, start: dt.datetime,
                    end: dt.datetime) -> Optional[tuple[Student, list[StudentVisit]]]:
    student = student_for(p, student_id)
    if student is None:
        return None
    query = _range(_session_filter(p, {"students.student_id": student_id}), start, end)
    docs = list(Session._get_collection().find(query, {"opened_at": 1, "subject": 1, "status": 1, "expires_at": 1})
                .sort("opened_at", 1).limit(C.HISTORY_MAX_SESSIONS))
    present = PRESENT_CACHE.present([d["_id"] for d in docs], _closed(docs))
    # each record's method and note (and "failed") for the latest sessions only: one indexed read each
    coll = AttendanceRecord._get_collection()
    visits = []
    for d in docs:
        here = student_id in present.get(d["_id"], frozenset())
        visits.append(StudentVisit(str(d["_id"]), d["opened_at"], d.get("subject", ""),
                                   "present" if here else "absent"))
    for visit, d in list(zip(visits, docs))[-C.STUDENT_DETAIL_SESSIONS:]:  # method, note, failed: the latest
        rec = coll.find_one({"session": d["_id"], "student_id": student_id}, {"status": 1, "method": 1, "note": 1})
        if rec is not None:
            visit.status, visit.method, visit.note = rec["status"], rec.get("method", ""), rec.get("note") or ""
    return student, visits
