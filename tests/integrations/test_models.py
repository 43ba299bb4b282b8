"""Models: indexes, atomic per-student counters, one-shot close/report claims, db connection."""
from __future__ import annotations

import re
from pathlib import Path

import mongoengine
import pymongo
import pytest
from mongoengine import EmbeddedDocument

from integrations.storage import connection as dbmod
from integrations.storage.documents import (
    AttendanceRecord,
    Session,
    Student,
    StudentSnapshot,
    Teacher,
    escape_key,
    unescape_key,
)
from integrations.storage.indexes import ALL_DOCUMENTS as ALL_INDEXED
from tests.integrations.conftest import utc


def make_session(otp: str = "111111", **kw) -> Session:
    teacher = Teacher.objects(email="t@example.edu").first() or Teacher(email="t@example.edu", name="T").save()
    fields = dict(otp=otp, teacher=teacher, batches=["B1"], subject="Python", latitude=17.0, longitude=78.0,
                  expires_at=utc(minutes=5), students=[StudentSnapshot(student_id="S.1", name="Dot", batch="B1")])
    fields.update(kw)
    return Session(**fields).save()


def test_connect_db_names_the_database_from_the_uri():
    client = dbmod.connect_db("mongodb://127.0.0.1:1/prod_db?serverSelectionTimeoutMS=100")
    assert isinstance(client, pymongo.MongoClient)  # lazy: nothing is contacted yet
    assert mongoengine.get_db().name == "prod_db"
    assert dbmod.server_of("mongodb://user:secret@db.example:27017/attendance") == "db.example:27017/attendance"
    dbmod.disconnect_db()


def test_ensure_indexes_declares_the_unique_keys(db):
    info = Teacher._get_collection().index_information()
    assert any(v.get("unique") and v["key"] == [("telegram_id", 1)] for v in info.values())
    rec = AttendanceRecord._get_collection().index_information()
    assert any(v.get("unique") and v["key"] == [("session", 1), ("student_id", 1)] for v in rec.values())


def test_unique_constraints(db):
    Student(student_id="S1", name="A", batch="B1").save()
    with pytest.raises(mongoengine.NotUniqueError):
        Student(student_id="S1", name="B", batch="B2").save()
    Teacher(email="a@example.edu", telegram_id=1).save()
    Teacher(email="b@example.edu").save()
    Teacher(email="c@example.edu").save()  # many teachers without a Telegram id are fine
    with pytest.raises(mongoengine.NotUniqueError):
        Teacher(email="d@example.edu", telegram_id=1).save()


def test_open_sessions_never_share_an_otp(db):
    first = make_session("222222")
    with pytest.raises(mongoengine.NotUniqueError):
        make_session("222222")
    assert Session.close(first.id)
    make_session("222222")  # the closed one no longer holds the code


def test_failed_otp_counts_and_locks_out(db):
    session = make_session()
    assert Session.record_failed_otp(session.id, "S.1", 3) == (1, False)
    assert Session.record_failed_otp(session.id, "S.1", 3) == (2, False)
    assert Session.record_failed_otp(session.id, "S.1", 3) == (3, True)
    assert Session.record_failed_otp(session.id, "S.1", 3) == (4, True)
    fresh = Session.objects(id=session.id).get()
    assert fresh.failed_otp_count("S.1") == 4 and fresh.is_locked_out("S.1")
    assert fresh.locked_out == ["S.1"] and not fresh.is_locked_out("S2")


def test_face_failures_count(db):
    session = make_session()
    assert [Session.record_face_failure(session.id, "$S") for _ in range(3)] == [1, 2, 3]
    assert Session.objects(id=session.id).get().face_failure_count("$S") == 3


def test_close_and_report_claims_happen_once(db):
    session = make_session()
    assert Session.close(session.id) and not Session.close(session.id)
    assert Session.claim_report(session.id) and not Session.claim_report(session.id)
    assert Session.objects(id=session.id).get().report_sent_at is not None


def test_escape_key_round_trip():
    for raw in ("S.1", "$x", "a%2Eb", "plain"):
        key = escape_key(raw)
        assert "." not in key and not key.startswith("$") and unescape_key(key) == raw


def test_mark_synced_only_if_unchanged(db):
    session = make_session()
    record, changed = AttendanceRecord.mark(session.id, "S.1", "failed")
    assert changed and not record.synced
    newer, _ = AttendanceRecord.mark(session.id, "S.1", "present")
    assert not AttendanceRecord.mark_synced(record.id, record.rev)  # stale: the newer mark must go out
    assert AttendanceRecord.mark_synced(newer.id, newer.rev)
    assert AttendanceRecord.objects(id=record.id).get().synced


def test_mark_rejects_unknown_status(db):
    session = make_session()
    with pytest.raises(ValueError):
        AttendanceRecord.mark(session.id, "S.1", "late")


def test_teacher_repr_hides_secrets(db):
    teacher = Teacher(email="a@example.edu", credentials_enc="gAAAA-secret", tokens_enc="gAAAA-token")
    assert "gAAAA" not in repr(teacher)


def test_saving_normalises_phones_and_emails(db):
    student = Student(student_id="S1", name="A", batch="B1", phone="+91 90000-00001").save()
    teacher = Teacher(email=" Asha@Example.EDU ", phone="(+91) 98480 00001").save()
    assert student.phone == "919000000001"
    assert (teacher.email, teacher.phone) == ("asha@example.edu", "919848000001")


def test_snapshots_are_normalised_when_built_not_when_saved():
    built = StudentSnapshot.of("S1", "A", "B1", "+91 90000-00001")
    direct = StudentSnapshot(student_id="S1", phone="(0) 90000 00001")  # national, DEFAULT_PHONE_REGION=IN
    assert (built.phone, built.phone_tail) == ("919000000001", "9000000001")
    assert (direct.phone, direct.phone_tail) == ("919000000001", "9000000001")
    assert built._changed_fields == [] and direct._changed_fields == []  # nothing for save() to walk
    assert StudentSnapshot.clean is EmbeddedDocument.clean  # no per-snapshot work at save time


def test_snapshots_read_back_are_taken_as_stored(db):
    session = make_session(students=[StudentSnapshot.of("S1", phone="+91 90000 00001")])
    Session._get_collection().update_one({"_id": session.id}, {"$set": {"students.0.phone_tail": "stored"}})
    assert Session.objects(id=session.id).get().students[0].phone_tail == "stored"


# ------------------------------------------------------------------ indexes (issue 12)
PERFORMANCE_DOC = Path(__file__).resolve().parents[2] / "docs" / "performance.md"
_INDEX_CELL = re.compile(r"`([a-z_]+): ([^`]+)`")


def listed_indexes() -> list[tuple[str, str, tuple[tuple[str, int], ...], str]]:
    """(query, collection, key, remarks) of each row of docs/performance.md "Indexes"."""
    text = PERFORMANCE_DOC.read_text(encoding="utf-8")
    section = text.split("\n## Indexes\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0].startswith("query") or not (match := _INDEX_CELL.search(cells[2])):
            continue  # not a row, or the header
        key = tuple((f.strip().lstrip("-"), -1 if f.strip().startswith("-") else 1) for f in match[2].split(","))
        rows.append((cells[0], match[1], key, cells[2][match.end():]))
    return rows


def declared(collection: str) -> list[dict]:
    """The index specs a document class declares in its meta (``_id`` is implicit)."""
    documents = {d._get_collection_name(): d for d in ALL_INDEXED}
    return [{"fields": [("_id", 1)], "unique": True}, *documents[collection]._meta["index_specs"]]


def test_every_index_the_performance_list_names_is_declared(db):
    rows = listed_indexes()
    assert len(rows) >= 20, "docs/performance.md lost its Indexes table"
    assert any(c == "attendance_sessions" and k == (("otp", 1), ("opened_at", -1)) for _, c, k, _ in rows)
    created = {}
    for query, collection, key, remarks in rows:
        specs = [s for s in declared(collection) if tuple(s["fields"]) == key]
        assert specs, f"{query}: no index {collection} {key} is declared"
        spec = specs[0]
        assert ("unique" in remarks) == bool(spec.get("unique")) or key == (("_id", 1),), (query, spec)
        partial = spec.get("partialFilterExpression")
        assert ("partial" in remarks) == bool(partial), (query, spec)
        if partial:
            assert partial == {"status": "open"}
        info = created.setdefault(collection, mongoengine.get_db()[collection].index_information())
        assert any(tuple(v["key"]) == key for v in info.values()), f"{query}: {key} not created"
