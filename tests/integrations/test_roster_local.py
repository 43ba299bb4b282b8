"""Local roster: CSV import, password hashes, login, roster reads, idempotent attendance, report."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine.types import Contact
from integrations.app.assembly import make_roster_backend as make_roster
from integrations.foundation.crypto import hash_password, verify_password
from integrations.foundation.errors import RosterError
from integrations.roster.csv_import import (
    CsvImportError,
    import_roster,
    import_roster_text,
)
from integrations.roster.local import LocalRoster
from integrations.roster.service import RosterService, check_own_contact, snapshot
from integrations.settings import load_settings
from integrations.storage.documents import (
    AttendanceRecord,
    Batch,
    Session,
    Student,
    StudentSnapshot,
    Subject,
    Teacher,
)
from tests.integrations.conftest import utc

SAMPLE = Path(__file__).resolve().parents[2] / "scripts" / "sample_roster.csv"
HEADER = "role,id,name,phone,email,password,batch,subject\n"
ROSTER = HEADER + (
    "teacher,,Asha Rao,+91 98480 00001,Asha@Example.edu,pw-asha,B1;B2,Python\n"
    "teacher,,,,asha@example.edu,,B2,DSA\n"
    "student,S1,Ravi,+91 90000 00001,,,B1,\n"
    "student,S2,Sita,90000 00002,,,B1,\n"
    "student,S3,Meena,,,,B2,\n"
)
TG = 5001


@pytest.fixture
def roster(db):
    import_roster_text(ROSTER)
    return LocalRoster()


def open_session(teacher: Teacher, students=("S1", "S2", "S3")) -> Session:
    snaps = [StudentSnapshot(student_id=s.student_id, name=s.name, batch=s.batch, phone=s.phone)
             for s in Student.objects(student_id__in=list(students))]
    return Session(otp="123456", teacher=teacher, batches=["B1", "B2"], subject="Python", latitude=17.4,
                   longitude=78.5, radius_m=50, expires_at=utc(minutes=5), students=snaps).save()


# ---------------------------------------------------------------------------------------------
# CSV import


def test_sample_roster_imports(db):
    result = import_roster(SAMPLE)
    assert result.teachers_created == 2 and result.students_created == 7
    assert Batch.objects.count() == 3 and Subject.objects.count() == 3
    asha = Teacher.objects(email="asha.rao@example.edu").get()
    assert {(a.batch, a.subject) for a in asha.assignments} == {
        ("PFS-101", "Python"), ("PFS-102", "Python"), ("PFS-102", "Data Structures")}


def test_reimport_updates_and_never_duplicates(db):
    import_roster_text(ROSTER)
    changed = ROSTER.replace("student,S2,Sita,90000 00002,,,B1,", "student,S2,Sita Devi,90000 00009,,,B2,")
    changed += "student,S4,New,,,,B2,\n"
    result = import_roster_text(changed)
    assert (result.students_created, result.students_updated) == (1, 3)
    assert (result.teachers_created, result.teachers_updated) == (0, 1)
    assert Student.objects.count() == 4 and Teacher.objects.count() == 1
    s2 = Student.objects(student_id="S2").get()
    assert (s2.name, s2.phone, s2.batch) == ("Sita Devi", "919000000009", "B2")  # E.164, DEFAULT_PHONE_REGION=IN
    import_roster_text(changed)
    assert Student.objects.count() == 4 and Batch.objects.count() == 2


def test_import_errors_name_every_bad_line_and_write_nothing(db):
    text = HEADER + (
        "student,S1,Ravi,,,,B1,\n"            # 2 ok
        "student,,No Id,,,,B1,\n"              # 3
        "teacher,,T,,not-an-email,pw,B1,Py\n"  # 4
        "student,S1,Again,,,,B1,\n"            # 5 duplicate of line 2
        "student,S9,Phone,12345,,,B1,\n"       # 6 short phone
        "student,S8,,,,,,\n"                   # 7 no name, no batch
        "boss,X,Y,,,,B1,\n"                    # 8
        "student,S7,Two,,,,B1;B2,\n"           # 9
        "student,S6,Pw,,,secret,B1,\n"         # 10
        "teacher,,New,,new@example.edu,,B1,Py\n"  # 11 new teacher without password
        "student,S5,a,b,c,d,e,f,g\n"           # 12 too many fields
    )
    with pytest.raises(CsvImportError) as err:
        import_roster_text(text)
    lines = sorted({e.line for e in err.value.errors})
    assert lines == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    message = str(err.value)
    assert "line 5: student S1 already on line 2" in message
    assert "line 6: phone '12345'" in message
    assert "nothing imported" in message
    assert Student.objects.count() == 0 and Teacher.objects.count() == 0


def test_line_numbers_count_comments_blank_lines_and_quoted_newlines(db):
    text = "# comment\n\n" + HEADER + 'student,S1,"Ravi\nKumar",,,,B1,\nstudent,S2,,,,,B1,\n'
    with pytest.raises(CsvImportError) as err:
        import_roster_text(text)
    assert [e.line for e in err.value.errors] == [6]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "line 1: the file is empty"),
        ("role,id,name,batch,colour\n", "unknown column(s) colour"),
        ("role,name,batch\n", "missing column(s) id"),
    ],
)
def test_bad_headers(db, text, fragment):
    with pytest.raises(CsvImportError) as err:
        import_roster_text(text)
    assert fragment in str(err.value)


def test_utf8_bom_file(db, tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER, encoding="utf-8-sig")
    assert import_roster(path).students_created == 3


# ---------------------------------------------------------------------------------------------
# passwords


def test_passwords_are_stored_as_scrypt_hashes(roster):
    stored = Teacher.objects(email="asha@example.edu").get().password_hash
    assert stored.startswith("scrypt$") and "pw-asha" not in stored
    assert verify_password("pw-asha", stored) and not verify_password("pw-ash", stored)


def test_reimport_keeps_or_changes_the_hash(roster):
    before = Teacher.objects(email="asha@example.edu").get().password_hash
    import_roster_text(ROSTER)
    assert Teacher.objects(email="asha@example.edu").get().password_hash == before  # same password
    import_roster_text(ROSTER.replace("pw-asha", ""))
    assert Teacher.objects(email="asha@example.edu").get().password_hash == before  # blank keeps
    import_roster_text(ROSTER.replace("pw-asha", "new-pass"))
    after = Teacher.objects(email="asha@example.edu").get().password_hash
    assert after != before and verify_password("new-pass", after)


def test_prehashed_password_is_stored_as_is(db):
    hashed = hash_password("from-a-hash")
    import_roster_text(ROSTER.replace("pw-asha", hashed))
    assert Teacher.objects(email="asha@example.edu").get().password_hash == hashed


# ---------------------------------------------------------------------------------------------
# teachers


def test_login_binds_the_telegram_user(roster):
    info = roster.login(TG, "919848000001", " ASHA@example.edu ", "pw-asha")
    assert (info.telegram_id, info.email, info.name) == (TG, "asha@example.edu", "Asha Rao")
    assert roster.find_teacher(TG) == info
    assert roster.find_teacher(TG + 1) is None


@pytest.mark.parametrize("email, password", [("asha@example.edu", "wrong"), ("nobody@example.edu", "pw-asha")])
def test_bad_credentials(roster, email, password):
    with pytest.raises(RosterError) as err:
        roster.login(TG, "919848000001", email, password)
    assert err.value.message_key == "bad_credentials"
    assert roster.find_teacher(TG) is None


def test_contact_phone_must_match_the_roster(roster):
    with pytest.raises(RosterError) as err:
        roster.login(TG, "919999999999", "asha@example.edu", "pw-asha")
    assert err.value.message_key == "phone_mismatch"
    assert roster.login(TG, "+91 98480-00001", "asha@example.edu", "pw-asha").telegram_id == TG


def test_telegram_account_moves_and_logout(roster):
    import_roster_text(ROSTER + "teacher,,Vik,,vik@example.edu,pw-vik,B3,Java\n")
    roster.login(TG, "919848000001", "asha@example.edu", "pw-asha")
    roster.login(TG, "919848000007", "vik@example.edu", "pw-vik")
    assert roster.find_teacher(TG).email == "vik@example.edu"
    assert Teacher.objects(telegram_id=TG).count() == 1
    roster.logout(TG)
    assert roster.find_teacher(TG) is None


def test_check_own_contact():
    assert check_own_contact(Contact(phone="+91 98480 00001", user_id=7), 7) == "919848000001"
    for contact in (Contact(phone="+91 98480 00001", user_id=8), Contact(phone="+91 98480 00001")):
        with pytest.raises(RosterError) as err:
            check_own_contact(contact, 7)
        assert err.value.message_key == "not_own_contact"


# ---------------------------------------------------------------------------------------------
# roster reads (through the async service)


async def test_service_lists_batches_subjects_and_students(roster):
    service = RosterService(roster)
    await service.login_teacher(TG, "919848000001", "asha@example.edu", "pw-asha")
    assert (await service.find_teacher(TG)).name == "Asha Rao"
    assert await service.list_batches(TG) == ["B1", "B2"]
    assert await service.list_subjects(TG) == ["DSA", "Python"]
    assert await service.list_subjects(TG, ["B1"]) == ["Python"]
    students = await service.load_students(TG, ["B2", "B1"], "Python")
    assert [s.student_id for s in students] == ["S1", "S2", "S3"]
    assert students[0].phone == "919000000001"
    assert snapshot(students)[0] == {"student_id": "S1", "name": "Ravi", "batch": "B1", "phone": "919000000001"}
    with pytest.raises(RosterError) as err:
        await service.load_students(TG, ["B1"], "DSA")
    assert err.value.message_key == "rejected"
    service.close()


def test_unknown_teacher(roster):
    with pytest.raises(RosterError) as err:
        roster.assignments(TG)
    assert err.value.message_key == "unknown_teacher"


# ---------------------------------------------------------------------------------------------
# attendance


def test_marking_twice_is_one_record(roster):
    roster.login(TG, "919848000001", "asha@example.edu", "pw-asha")
    session = open_session(Teacher.objects(telegram_id=TG).get())
    first = roster.submit(str(session.id), "S1", "present", "face", similarity=97.5, distance_m=12.0)
    again = roster.submit(str(session.id), "S1", "present", "face", similarity=97.5, distance_m=12.0)
    assert first.changed and not again.changed and again.synced
    assert AttendanceRecord.objects(session=session.id, student_id="S1").count() == 1
    record = AttendanceRecord.objects(session=session.id).get()
    assert (record.similarity, record.distance_m, record.synced) == (97.5, 12.0, True)


def test_concurrent_marks_are_one_record(roster):
    roster.login(TG, "919848000001", "asha@example.edu", "pw-asha")
    session = open_session(Teacher.objects(telegram_id=TG).get())
    service = RosterService(roster)

    async def many():
        return await asyncio.gather(*(service.submit_attendance(str(session.id), "S2", "present") for _ in range(8)))

    results = asyncio.run(many())
    assert all(r.status == "present" for r in results)
    assert AttendanceRecord.objects(session=session.id).count() == 1
    service.close()


def test_failure_never_downgrades_present_but_manual_override_does(roster):
    roster.login(TG, "919848000001", "asha@example.edu", "pw-asha")
    sid = str(open_session(Teacher.objects(telegram_id=TG).get()).id)
    roster.submit(sid, "S1", "present")
    assert roster.submit(sid, "S1", "failed").status == "present"
    assert roster.submit(sid, "S1", "absent", "manual").status == "absent"
    assert AttendanceRecord.objects.count() == 1


@pytest.mark.parametrize("session_id, student, key", [("nope", "S1", "unknown_session"),
                                                      ("0" * 24, "S1", "unknown_session"),
                                                      (None, "S99", "unknown_student")])
def test_submit_rejects_unknown_session_or_student(roster, session_id, student, key):
    roster.login(TG, "919848000001", "asha@example.edu", "pw-asha")
    session = open_session(Teacher.objects(telegram_id=TG).get())
    with pytest.raises(RosterError) as err:
        roster.submit(session_id or str(session.id), student, "present")
    assert err.value.message_key == key
    assert AttendanceRecord.objects.count() == 0


async def test_report_lists_every_snapshot_student(roster):
    service = RosterService(roster)
    await service.login_teacher(TG, "919848000001", "asha@example.edu", "pw-asha")
    session = open_session(Teacher.objects(telegram_id=TG).get())
    await service.submit_attendance(str(session.id), "S1", "present", similarity=99.0)
    await service.submit_attendance(str(session.id), "S3", "failed")
    report = await service.report(str(session.id))
    assert [(r.student_id, r.status) for r in report.rows] == [("S1", "present"), ("S2", "absent"), ("S3", "failed")]
    assert [r.student_id for r in report.present] == ["S1"]
    assert [r.student_id for r in report.absent] == ["S2", "S3"]
    assert (report.subject, report.teacher_name, report.source, report.complete) == ("Python", "Asha Rao", "local", True)
    service.close()


def test_make_roster_defaults_to_local(db):
    assert isinstance(make_roster(load_settings()), LocalRoster)


async def test_service_opens_finds_and_closes_sessions(roster):
    service = RosterService(roster)
    await service.login_teacher(TG, "919848000001", "asha@example.edu", "pw-asha")
    students = await service.load_students(TG, ["B1"], "Python")
    session = await service.open_session(TG, "654321", ["B1"], "Python", 17.4, 78.5, 50, utc(minutes=5), students)
    assert [s.student_id for s in session.students] == ["S1", "S2"]
    assert (await service.find_open_session("654321")).id == session.id
    with pytest.raises(RosterError) as err:
        await service.open_session(TG, "654321", ["B1"], "Python", 17.4, 78.5, 50, utc(minutes=5), students)
    assert err.value.message_key == "otp_in_use"
    assert await service.close_session(str(session.id)) and not await service.close_session(str(session.id))
    assert await service.find_open_session("654321") is None
    expired = await service.open_session(TG, "111111", ["B1"], "Python", 17.4, 78.5, 50, utc(seconds=-1), students)
    assert expired.status == "open" and await service.find_open_session("111111") is None
    service.close()


# ---------------------------------------------------------------------------------------------
# bulk writes (issue 12)


def _students(rows: list[tuple[str, str, str, str]]) -> str:
    return HEADER + "".join(f"student,{sid},{name},{phone},,,{batch},\n" for sid, name, phone, batch in rows)


def test_import_in_batches_inserts_new_updates_changed_and_skips_the_rest(db, monkeypatch):
    from integrations.roster import csv_import
    from integrations.storage import bulk

    monkeypatch.setattr(bulk, "BATCH_SIZE", 3)  # 10 students: 4 batches
    writes: list[tuple[str, int]] = []  # (which write, how many documents it was given)

    def spy(name: str):
        real = getattr(csv_import, name)

        def wrapper(collection, docs, *args, **kwargs):
            writes.append((name, len(docs)))
            return real(collection, docs, *args, **kwargs)
        return wrapper

    for name in ("insert_or_upsert", "upsert_all"):
        monkeypatch.setattr(csv_import, name, spy(name))
    rows = [(f"S{i:02d}", f"Name {i}", f"+91 90000 000{i:02d}", "B1") for i in range(10)]
    first = import_roster_text(_students(rows))
    assert (first.students_created, first.students_updated) == (10, 0)
    assert sum(n for name, n in writes if name == "insert_or_upsert") == 10
    Student.objects(student_id="S04").update_one(set__telegram_user_id=44)  # set by a bot meanwhile

    writes.clear()
    again = import_roster_text(_students(rows))
    assert (again.students_created, again.students_updated) == (0, 10)
    assert writes and all(n == 0 for name, n in writes if name == "insert_or_upsert")  # nothing new
    assert sum(n for name, n in writes if name == "upsert_all") == 1  # only the batch code B1 (an upsert that changes nothing)

    writes.clear()
    rows[3] = ("S03", "Renamed", rows[3][2], "B2")
    rows[8] = ("S08", rows[8][1], "+91 90000 00099", "B1")
    rows += [("S10", "New", "", "B2"), ("S05a", "Between", "", "B1")]
    changed = import_roster_text(_students(rows))
    assert (changed.students_created, changed.students_updated) == (2, 10)
    assert sum(n for name, n in writes if name == "insert_or_upsert") == 2
    assert sum(n for name, n in writes if name == "upsert_all") == 2 + 2  # 2 changed students, 2 batch codes
    s3, s8 = Student.objects(student_id="S03").get(), Student.objects(student_id="S08").get()
    assert (s3.name, s3.batch) == ("Renamed", "B2")
    assert (s8.phone, s8.phone_tail) == ("919000000099", "9000000099")
    assert Student.objects(student_id="S04").get().telegram_user_id == 44
    assert Student.objects.count() == 12 and Batch.objects.count() == 2


def test_insert_falls_back_to_upsert_for_a_row_someone_else_inserted(db):
    from integrations.storage.bulk import insert_or_upsert, upsert_all

    collection = Student._get_collection()
    collection.insert_one({"student_id": "S2", "name": "Old", "batch": "B1", "telegram_user_id": 7})
    docs = [{"student_id": f"S{i}", "name": f"New {i}", "batch": "B9"} for i in (1, 2, 3, 4)]
    assert insert_or_upsert(collection, docs, "student_id", batch_size=3) == 3
    s2 = collection.find_one({"student_id": "S2"})
    assert (s2["name"], s2["batch"], s2["telegram_user_id"]) == ("New 2", "B9", 7)
    assert collection.count_documents({}) == 4 and "_id" not in docs[0]  # the caller's dicts untouched
    ops = [({"student_id": f"S{i}"}, {"$set": {"batch": "B8"}}) for i in range(1, 7)]
    assert upsert_all(collection, ops, batch_size=4) == 2  # S5, S6
    assert collection.count_documents({"batch": "B8"}) == 6
