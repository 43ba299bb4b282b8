#!/usr/bin/env python
"""Explain every hot-path query on a real server and say which index serves it (issue 12).

Needs a MongoDB-compatible server (mongomock has no query planner), e.g. the SecantusDB test
server:

    /work/main/.venv/bin/secantusd-py --host 127.0.0.1 --port 27555 --storage-path :memory: &
    .venv/bin/python scripts/explain_queries.py --uri mongodb://127.0.0.1:27555/explain

It empties that database, creates every declared index (``ensure_indexes``), stores a little of
everything, then runs ``explain()`` on each query of docs/performance.md ("Indexes") and prints
one JSON line per query: the index the winning plan used (or COLLSCAN), whether it sorted in
memory, and whether that is the index the list expects. Exit status 1 if any is not (apart from
the three queries marked RESIDUAL below).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from integrations.roster import records  # noqa: E402
from integrations.roster.base import StudentInfo  # noqa: E402
from integrations.storage import outbox  # noqa: E402
from integrations.storage.connection import connect_db, disconnect_db  # noqa: E402
from integrations.storage.conversations import ConversationDoc  # noqa: E402
from integrations.storage.documents import (  # noqa: E402
    AttendanceRecord,
    Batch,
    Session,
    Student,
    Teacher,
    utcnow,
)
from integrations.storage.indexes import ensure_indexes  # noqa: E402

TG = 4242
RESIDUAL = "+residual"
"""Marks an index that serves the query on MongoDB with a residual filter on a field outside its
key. SecantusDB's planner only walks an index whose key holds every queried field (or whose
partial filter does), so there such a query is a COLLSCAN: reported, not counted as a failure."""


def seed() -> dict[str, Any]:
    """A teacher, 30 students, three sessions (one open), records, outbox entries, conversations."""
    teacher = Teacher(email="t@example.edu", name="T", telegram_id=TG).save()
    Teacher(email="u@example.edu", name="U").save()
    for i in range(30):
        Student(student_id=f"S{i}", name=f"N{i}", batch=f"B{i % 3}", phone=f"+91 9{i:09d}").save()
    Batch(code="B0").save()
    roster = [StudentInfo(f"S{i}", f"N{i}", f"B{i % 3}", f"+91 9{i:09d}") for i in range(30)]
    soon = utcnow() + dt.timedelta(minutes=5)
    old = [records.create_session(TG, f"00000{i}", ["B0"], "Py", 17.0, 78.0, 50.0, soon, roster) for i in (1, 2)]
    for session in old:
        Session.close(session.id)
        Session.claim_report(session.id)
    session = records.create_session(TG, "123456", ["B0"], "Py", 17.0, 78.0, 50.0, soon, roster)
    for i in range(10):
        AttendanceRecord.mark(session.id, f"S{i}", "present")
    outbox.enqueue_attendance(str(session.id), "S1")
    outbox.enqueue_verification(str(session.id), "S2", "B2", b"jpeg")
    for chat in range(5):
        ConversationDoc(id=f"student:{chat}", bot="student", chat_id=chat, user_id=chat, flow="student",
                        state="s", deadline=None if chat % 2 else 1.0).save()
    return {"session": session.id, "teacher": teacher.id}


def plan_of(explained: dict[str, Any]) -> tuple[list[str], bool]:
    """(index names or COLLSCAN, sorted in memory) of the winning plan."""
    indexes: list[str] = []
    sort = False

    def walk(stage: Any) -> None:
        nonlocal sort
        if isinstance(stage, dict):
            name = stage.get("stage")
            if name == "IXSCAN":
                indexes.append(stage.get("indexName", "?"))
            elif name == "COLLSCAN":
                indexes.append("COLLSCAN")
            elif name == "IDHACK" or name == "EXPRESS_IXSCAN":
                indexes.append("_id_")
            elif name in ("SORT", "SORT_KEY_GENERATOR"):
                sort = True
            for value in stage.values():
                walk(value)
        elif isinstance(stage, list):
            for value in stage:
                walk(value)

    planner = explained.get("queryPlanner", explained)
    walk(planner.get("winningPlan", planner))
    return indexes, sort


def queries(ids: dict[str, Any]) -> list[tuple[str, str, Callable[[], dict[str, Any]]]]:
    """(name, expected index, explain thunk) for each hot-path query."""
    sid, tid, now = ids["session"], ids["teacher"], utcnow()
    out = outbox.OutboxEntry._get_collection()
    conv = ConversationDoc._get_collection()
    return [
        ("session by id (get_session, counters, close, claims)", "_id_",
         lambda: Session.objects(id=sid).explain()),
        ("records.find_open_session (tests and the service API only)", "otp_1" + RESIDUAL,
         lambda: Session.objects(otp="123456", status="open", expires_at__gt=now).explain()),
        ("records.session_by_otp", "otp_1_opened_at_-1",
         lambda: Session.objects(otp="123456").order_by("-opened_at").explain()),
        ("records.teacher_open_session", "teacher_1_status_1_expires_at_1",
         lambda: Session.objects(teacher=tid, status="open", expires_at__gt=now).order_by("-opened_at").explain()),
        ("records.latest_session", "teacher_1_opened_at_-1",
         lambda: Session.objects(teacher=tid).order_by("-opened_at").explain()),
        ("records.identify_student (open sessions' rosters)", "students.phone_tail_1_status_1_expires_at_1",
         lambda: Session.objects(status="open", expires_at__gt=now, students__phone_tail="9000000001")
         .order_by("-opened_at").explain()),
        ("records.open_sessions_of", "students.student_id_1_status_1_expires_at_1",
         lambda: Session.objects(status="open", expires_at__gt=now, students__student_id="S1").explain()),
        ("ReportScheduler.rearm", "report_sent_at_1",
         lambda: Session.objects(report_sent_at=None).explain()),
        ("AttendanceRecord.mark, records.record_for, records.override_mark, outbox.record_of", "session_1_student_id_1",
         lambda: AttendanceRecord.objects(session=sid, student_id="S1").explain()),
        ("records.session_stats, build_report", "session_1_student_id_1",
         lambda: AttendanceRecord.objects(session=sid).explain()),
        ("HttpRoster.sync_pending", "session_1_synced_1_status_1",
         lambda: AttendanceRecord.objects(session=sid, synced=False).explain()),
        ("reports._unsynced", "session_1_synced_1_status_1",
         lambda: AttendanceRecord.objects(session=sid, synced=False, status="present").explain()),
        ("teacher by Telegram id (teacher_doc, token store, find_teacher)", "telegram_id_1",
         lambda: Teacher.objects(telegram_id=TG).explain()),
        ("records.bind, LocalRoster.login, import", "email_1",
         lambda: Teacher.objects(email="t@example.edu").explain()),
        ("records.identify_student (local roster)", "phone_tail_1",
         lambda: Student.objects(phone_tail="9000000001").explain()),
        ("LocalRoster.students", "batch_1",
         lambda: Student.objects(batch="B0").order_by("student_id").explain()),
        ("csv_import: stored students of an id range", "student_id_1",
         lambda: Student._get_collection().find({"student_id": {"$gte": "S0", "$lte": "S9"}}).explain()),
        ("MongoConversationStore get/save", "_id_",
         lambda: conv.find({"_id": "student:1"}).explain()),
        ("outbox enqueue (by key)", "key_1",
         lambda: out.find({"key": f"{sid}:S1"}).explain()),
        ("outbox.claim_head", "status_1_kind_1_seq_1",
         lambda: outbox.OutboxEntry.objects(status="pending", kind="attendance").order_by("seq", "id").explain()),
        ("outbox.claim_head, sessions held back", "status_1_kind_1_seq_1" + RESIDUAL,
         lambda: outbox.OutboxEntry.objects(status="pending", kind="attendance", session_id__nin=["x"])
         .order_by("seq", "id").explain()),
        ("outbox.pending_count per session (once per report)", "session_id_1_status_1" + RESIDUAL,
         lambda: out.find({"status": "pending", "kind": "verification", "session_id": str(sid)}).explain()),
        ("outbox.notices_waiting", "notice_pending_1_seq_1",
         lambda: outbox.OutboxEntry.objects(notice_pending=True).order_by("seq").explain()),
    ]


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--uri", required=True, help="a real server, e.g. mongodb://127.0.0.1:27555/explain")
    args = p.parse_args(argv)
    if args.uri.startswith("mongomock://"):
        p.error("mongomock has no query planner: give a real server")
    client = connect_db(args.uri)
    name = Session._get_collection().database.name
    client.drop_database(name)
    ensure_indexes()
    ids = seed()
    bad = 0
    for label, expected, explain in queries(ids):
        used, in_memory = plan_of(explain())
        index, residual = expected.removesuffix(RESIDUAL), expected.endswith(RESIDUAL)
        ok = index in used
        bad += not ok and not residual
        print(json.dumps({"query": label, "expected": index, "residual_on_mongodb": residual, "used": used,
                          "sort_in_memory": in_memory, "ok": ok}))
    client.drop_database(name)
    disconnect_db()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
