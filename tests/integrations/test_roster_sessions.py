"""Session helpers the flows use: identify a student, codes, status counts, extend, CSV report."""
from __future__ import annotations

import csv
import io

import pytest

from integrations.roster.csv_import import import_roster_text
from integrations.roster.local import LocalRoster
from integrations.roster.service import RosterService
from integrations.storage.documents import Session, Student
from tests.integrations.conftest import utc

TG = 9001
ROSTER = (
    "role,id,name,phone,email,password,batch,subject\n"
    "teacher,,Asha Rao,+91 98480 00001,asha@example.edu,pw-asha,B1,Python\n"
    "student,S1,Ravi,+91 90000 00001,,,B1,\n"
    "student,S2,=HYPERLINK(\"x\"),90000 00002,,,B1,\n"
    "student,S3,Meena,,,,B1,\n"
)


@pytest.fixture
async def service(db):
    import_roster_text(ROSTER)
    svc = RosterService(LocalRoster())
    await svc.login_teacher(TG, "919848000001", "asha@example.edu", "pw-asha")
    yield svc
    svc.close()


async def open_one(service, otp="123456", minutes=5):
    students = await service.load_students(TG, ["B1"], "Python")
    return await service.open_session(TG, otp, ["B1"], "Python", 17.4, 78.5, 50, utc(minutes=minutes), students)


async def test_identify_student_by_phone_and_remember_telegram_id(service):
    found = await service.identify_student("09000000001", telegram_user_id=77)
    assert (found.student_id, found.name) == ("S1", "Ravi")
    assert Student.objects(student_id="S1").get().telegram_user_id == 77
    assert await service.identify_student("+91 99999 99999") is None
    assert await service.identify_student("123") is None


async def test_identify_student_from_an_open_session_snapshot(db):
    # the http backend has no local students: the open session's snapshot is the roster
    import_roster_text(ROSTER)
    svc = RosterService(LocalRoster())
    await svc.login_teacher(TG, "919848000001", "asha@example.edu", "pw-asha")
    await open_one(svc)
    Student.objects.delete()
    found = await svc.identify_student("+919000000001")
    assert found.student_id == "S1"
    svc.close()


async def test_codes_status_extend_and_latest(service):
    session = await open_one(service)
    sid = str(session.id)
    assert (await service.teacher_open_session(TG)).id == session.id
    assert (await service.session_by_otp("123456")).id == session.id
    await service.submit_attendance(sid, "S1", "present")
    await service.submit_attendance(sid, "S2", "failed")
    Session.record_failed_otp(session.id, "S3", 1)
    assert await service.session_stats(sid) == {"total": 3, "present": 1, "failed": 1, "absent": 2, "locked": 1}
    assert (await service.attendance_of(sid, "S1")).status == "present"
    assert await service.attendance_of(sid, "S3") is None
    before = Session.objects(id=session.id).get().expires_at
    after = await service.extend_session(sid, 300)
    assert (after - before).total_seconds() == 300
    assert await service.close_session(sid)
    assert await service.extend_session(sid, 60) is None
    assert await service.teacher_open_session(TG) is None
    assert (await service.session_by_otp("123456")).status == "closed"  # "expired", not "wrong"
    assert (await service.latest_session(TG)).id == session.id


async def test_report_csv_is_formula_safe(service):
    session = await open_one(service)
    await service.submit_attendance(str(session.id), "S1", "present", similarity=97.25, distance_m=12.4)
    data = service.report_csv(await service.report(str(session.id)))
    assert data.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert [(r["student_id"], r["status"]) for r in rows] == [("S1", "present"), ("S2", "absent"), ("S3", "absent")]
    assert rows[0]["similarity"] == "97.2" or rows[0]["similarity"] == "97.3"
    assert rows[1]["name"].startswith("'=")


# ------------------------------------------------------------------ opening a session (issue 12)
def _changed_field_walks(monkeypatch, n: int) -> int:
    """How often mongoengine walks a document's changed fields while opening a session of N."""
    from mongoengine.base.document import BaseDocument

    from integrations.roster import records
    from integrations.roster.base import StudentInfo

    calls = 0
    original = BaseDocument._get_changed_fields

    def counting(self, *args, **kwargs):
        nonlocal calls
        calls += 1
        return original(self, *args, **kwargs)

    students = [StudentInfo(f"S{i}", f"N{i}", "B1", f"+91 9{i:09d}") for i in range(n)]
    with monkeypatch.context() as patch:
        patch.setattr(BaseDocument, "_get_changed_fields", counting)
        session = records.create_session(TG, f"{n:06d}", ["B1"], "Python", 17.4, 78.5, 50, utc(minutes=5), students)
    Session.close(session.id)
    return calls


async def test_opening_a_session_costs_linear_in_the_class(service, monkeypatch):
    # Setting snapshot fields in clean() made mongoengine walk the whole roster once per
    # snapshot after save(): ~2·N² walks, 8.5 s of CPU at 1,000 students.
    small, large = _changed_field_walks(monkeypatch, 50), _changed_field_walks(monkeypatch, 400)
    assert large <= 10 * small, (small, large)  # 8× the class: linear gives ≤ 8×, quadratic 64×


async def test_snapshots_are_stored_normalised_with_their_phone_tail(service):
    session = await open_one(service)
    stored = Session._get_collection().find_one({"_id": session.id})
    by_id = {s["student_id"]: s for s in stored["students"]}
    assert (by_id["S1"]["phone"], by_id["S1"]["phone_tail"]) == ("919000000001", "9000000001")
    assert (by_id["S3"]["phone"], by_id["S3"]["phone_tail"]) == ("", "")
