"""The http roster backend: encrypted per-teacher secrets, POST-then-PUT, outbox, report, concurrency."""
from __future__ import annotations

import time

import pytest

from integrations.api.roster import HttpRoster, TeacherTokenStore
from integrations.app.assembly import make_roster_backend as make_roster
from integrations.foundation import crypto
from integrations.foundation.errors import ApiError, RosterError
from integrations.roster.service import RosterService, snapshot
from integrations.settings import load_settings
from integrations.storage.documents import (
    AttendanceRecord,
    Session,
    StudentSnapshot,
    Teacher,
)
from tests.fakes.fake_attendance_api import Reply
from tests.integrations.conftest import PASSWORD, make_client, utc

TG = 7001
EMAIL = "asha@example.edu"
PHONE = "919848000001"


@pytest.fixture
def roster(db, box, api):
    r = HttpRoster(make_client(api))
    yield r
    r.close()


def logged_in(roster: HttpRoster) -> Teacher:
    roster.login(TG, PHONE, EMAIL, PASSWORD)
    return Teacher.objects(telegram_id=TG).get()


def open_session(roster: HttpRoster, batches=("B1", "B2")) -> Session:
    teacher = Teacher.objects(telegram_id=TG).get()
    students = [s for b in batches for s in roster.students(TG, b, "Python")]
    return Session(otp="424242", teacher=teacher, batches=list(batches), subject="Python", latitude=17.4,
                   longitude=78.5, expires_at=utc(minutes=5),
                   students=[StudentSnapshot(**d) for d in snapshot(students)]).save()


# ---------------------------------------------------------------------------------------------
# login and stored secrets


def test_login_stores_encrypted_credentials_and_tokens(roster, box):
    info = roster.login(TG, "+91 98480 00001", " Asha@Example.edu", PASSWORD)
    assert (info.telegram_id, info.external_id, info.name, info.phone) == (TG, "M1", "Asha Rao", PHONE)
    raw = Teacher._get_collection().find_one({"telegram_id": TG})
    dumped = repr(raw)
    assert PASSWORD not in dumped and "eyJ" not in dumped  # no password, no JWT in clear
    assert PASSWORD in box.decrypt(raw["credentials_enc"])
    assert roster.find_teacher(TG) == info


def test_bad_credentials_store_nothing(roster, api):
    with pytest.raises(ApiError) as err:
        roster.login(TG, PHONE, EMAIL, "wrong")
    assert err.value.message_key == "bad_credentials"
    assert Teacher.objects.count() == 0 and roster.find_teacher(TG) is None


def test_partial_login_answer_stores_nothing(roster, api):
    api.script("POST", "/login", Reply(200, {"access_token": "a.b.c", "user": {"name": "no id"}}))
    with pytest.raises(ApiError) as err:
        roster.login(TG, PHONE, EMAIL, PASSWORD)
    assert err.value.message_key == "bad_response"
    assert Teacher.objects.count() == 0


def test_contact_phone_must_match_the_api_profile(roster, api):
    with pytest.raises(RosterError) as err:
        roster.login(TG, "919000000000", EMAIL, PASSWORD)
    assert err.value.message_key == "phone_mismatch"
    assert Teacher.objects.count() == 0
    assert api.calls("POST", "/logout")  # the tokens we got are not left open


def test_tokens_survive_a_restart(db, box, api):
    first = HttpRoster(make_client(api))
    first.login(TG, PHONE, EMAIL, PASSWORD)
    first.close()
    logins = len(api.calls("POST", "/login"))
    second = HttpRoster(make_client(api))  # a new process: tokens come from Mongo
    assert second.assignments(TG)
    assert len(api.calls("POST", "/login")) == logins
    second.close()


def test_lost_secret_key_means_logging_in_again(roster, api):
    logged_in(roster)
    crypto.set_secret_box(crypto.SecretBox([crypto.generate_key()]))  # SECRET_KEY changed
    with pytest.raises(ApiError) as err:
        roster.assignments(TG)
    assert err.value.message_key == "not_logged_in"


def test_401_refresh_is_persisted_encrypted(roster, api, box):
    teacher = logged_in(roster)
    api.script("GET", "/attend", Reply(401))
    roster.students(TG, "B1", "Python")
    after = Teacher.objects(telegram_id=TG).get().tokens_enc
    assert after != teacher.tokens_enc and "eyJ" not in after
    assert api.calls("GET", "/attend")[-1].token in box.decrypt(after)


def test_logout_forgets_everything(roster, api):
    logged_in(roster)
    roster.logout(TG)
    raw = Teacher._get_collection().find_one({"email": EMAIL})
    assert "credentials_enc" not in raw and "tokens_enc" not in raw and "telegram_id" not in raw
    assert roster.find_teacher(TG) is None and api.calls("POST", "/logout")


# ---------------------------------------------------------------------------------------------
# roster reads


async def test_service_loads_batches_concurrently(roster, api):
    service = RosterService(roster)
    await service.login_teacher(TG, PHONE, EMAIL, PASSWORD)
    assert await service.list_batches(TG) == ["B1", "B2"]
    assert await service.list_subjects(TG, ["B2"]) == ["DSA", "Python"]
    api.latency["/attend"] = 0.5
    started = time.monotonic()
    students = await service.load_students(TG, ["B1", "B2", "B3", "B4", "B5"], "Python")
    elapsed = time.monotonic() - started
    assert len(students) == 10
    assert elapsed < 1.5, f"5 batches at 0.5 s took {elapsed:.2f} s (sequential: 2.5 s)"
    service.close()


def test_make_roster_http(db, box, api):
    settings = load_settings(roster_backend="http", base_url=api.base_url, api_timeout_seconds=3)
    roster = make_roster(settings, backoff_factor=0.01)
    assert isinstance(roster, HttpRoster) and isinstance(roster.client.store, TeacherTokenStore)
    assert roster.client.timeout == 3
    roster.login(TG, PHONE, EMAIL, PASSWORD)
    roster.close()


# ---------------------------------------------------------------------------------------------
# attendance


def test_first_student_is_posted_the_rest_put(roster, api):
    logged_in(roster)
    sid = str(open_session(roster).id)
    roster.submit(sid, "B1-S1", "present", similarity=98.0)
    roster.submit(sid, "B2-S2", "present")
    roster.submit(sid, "B1-S2", "failed")
    writes = [c.method for c in api.calls() if c.path == "/attendance" and c.method in ("POST", "PUT")]
    assert writes == ["POST", "PUT", "PUT"]
    body = api.calls("POST", "/attendance")[0].body
    assert body["session_id"] == sid and body["mentor_id"] == "M1" and body["subject"] == "Python"
    assert body["students"] == [{"student_id": "B1-S1", "batch": "B1", "status": "present", "method": "face",
                                 "time": body["students"][0]["time"]}]
    assert set(api.attendance[sid]["students"]) == {"B1-S1", "B2-S2", "B1-S2"}
    assert AttendanceRecord.objects(synced=True).count() == 3


def test_same_student_twice_is_one_record_and_one_call(roster, api):
    logged_in(roster)
    sid = str(open_session(roster).id)
    first = roster.submit(sid, "B1-S1", "present")
    again = roster.submit(sid, "B1-S1", "present")
    assert first.changed and not again.changed and again.synced
    assert AttendanceRecord.objects.count() == 1
    assert len([c for c in api.calls() if c.path == "/attendance" and c.method != "GET"]) == 1


def test_api_failure_keeps_an_unsynced_record_that_syncs_later(roster, api):
    logged_in(roster)
    sid = str(open_session(roster).id)
    api.script("POST", "/attendance", Reply(503), Reply(503), Reply(503))
    with pytest.raises(ApiError) as err:
        roster.submit(sid, "B1-S1", "present")
    assert err.value.message_key == "api_unavailable"
    record = AttendanceRecord.objects.get()
    assert record.status == "present" and not record.synced
    assert not Session.objects(id=sid).get().external_posted
    again = roster.submit(sid, "B1-S1", "present")  # the student retries: same record, sent now
    assert again.synced and AttendanceRecord.objects.get().synced
    assert AttendanceRecord.objects.count() == 1 and "B1-S1" in api.attendance[sid]["students"]


def test_put_for_a_session_the_api_lost_falls_back_to_post(roster, api):
    logged_in(roster)
    sid = str(open_session(roster).id)
    roster.submit(sid, "B1-S1", "present")
    api.attendance.clear()
    roster.submit(sid, "B1-S2", "present")
    writes = [c.method for c in api.calls() if c.path == "/attendance" and c.method in ("POST", "PUT")]
    assert writes == ["POST", "PUT", "POST"]


def test_report_uses_api_statuses_and_sends_pending_first(roster, api):
    logged_in(roster)
    sid = str(open_session(roster).id)
    roster.submit(sid, "B1-S1", "present")
    api.script("PUT", "/attendance", Reply(503), Reply(503), Reply(503))
    with pytest.raises(ApiError):
        roster.submit(sid, "B2-S1", "present")
    api.attendance[sid]["students"]["B1-S2"] = {"student_id": "B1-S2", "status": "present"}  # marked on the web
    report = roster.report(sid)
    assert report.source == "api" and report.complete
    assert {r.student_id for r in report.present} == {"B1-S1", "B1-S2", "B2-S1"}
    assert len(report.rows) == 4 and AttendanceRecord.objects(synced=False).count() == 0


def test_report_falls_back_to_local_records_when_the_api_is_down(roster, api):
    logged_in(roster)
    sid = str(open_session(roster).id)
    roster.submit(sid, "B1-S1", "present")
    api.script("GET", "/attendance", Reply(503), Reply(503), Reply(503))
    report = roster.report(sid)
    assert report.source == "local" and not report.complete
    assert [r.student_id for r in report.present] == ["B1-S1"]


def test_bad_report_answer_is_not_half_used(roster, api):
    logged_in(roster)
    sid = str(open_session(roster).id)
    roster.submit(sid, "B1-S1", "present")
    api.script("GET", "/attendance", Reply(200, {"data": [{"student_id": "B1-S1", "status": "maybe"}]}))
    report = roster.report(sid)
    assert not report.complete and [r.student_id for r in report.present] == ["B1-S1"]


def test_no_secret_in_any_log_line_of_the_backend(roster, api, box, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    logged_in(roster)
    sid = str(open_session(roster).id)
    api.script("GET", "/attend", Reply(401))
    roster.students(TG, "B1", "Python")
    api.script("PUT", "/attendance", Reply(409))
    roster.submit(sid, "B1-S1", "present")
    roster.submit(sid, "B1-S2", "present")
    roster.report(sid)
    with pytest.raises(ApiError):
        roster.login(TG + 1, PHONE, EMAIL, "wrong-password")
    crypto.set_secret_box(crypto.SecretBox([crypto.generate_key()]))
    roster.client.store.load(str(TG))  # unreadable secret: logged, never shown
    secrets = {PASSWORD, "wrong-password"} | {c.token for c in api.calls() if c.token}
    text = "\n".join(logging.Formatter("%(name)s %(message)s").format(r) for r in caplog.records)
    assert "cannot be read" in text
    for secret in secrets:
        assert secret not in text
    assert "eyJ" not in text and "gAAAA" not in text  # no JWT, no Fernet token
