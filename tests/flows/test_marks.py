"""Issue 15.3: manual marks change only what they change, and keep the history of overrides."""
from __future__ import annotations

from integrations.attendance import marks
from integrations.storage import outbox
from integrations.storage.audit import AuditEvent
from integrations.storage.documents import AttendanceRecord, Session
from tests.fakes.faces import MISMATCHED
from tests.fakes.fake_attendance_api import Reply
from tests.integrations.conftest import api, db  # noqa: F401  (fixtures)

from .httpkit import NEAR, NOTE, TEACHER, http_app, open_session
from .test_identity import student


def writes(api, since: int = 0) -> list[tuple[str, str, str, str]]:  # noqa: F811
    out = []
    for call in api.calls()[since:]:
        if call.path == "/attendance" and call.method in ("POST", "PUT"):
            for rec in call.body["students"]:
                out.append((call.method, rec["student_id"], rec["status"], rec["method"]))
    return out


async def check_in(sim, user, student_id: str, code: str, expect: str = "Marked present") -> None:  # noqa: ANN001
    await sim.send(user, "/start")
    await sim.send(user, student_id)
    await sim.send(user, code)
    await sim.send(user, NEAR)
    before = len(sim.received(user))
    await sim.send(user, NOTE)
    assert not await sim.wait_for(user, [expect], before, within=10), sim.texts(user, before)


async def test_marking_a_student_verified_by_face_changes_nothing(db, api) -> None:  # noqa: F811
    app, sim, _ = http_app(api)
    await app.start()
    code = await open_session(sim)
    await check_in(sim, student("ravi", 9001), "B1-S1", code)
    since = len(api.calls())
    replies = await sim.send(TEACHER, "/mark B1-S1 was in the front row")
    assert any("Student 1 of B1 (B1-S1) is already marked present." in r for r in replies)
    assert writes(api, since) == []  # no extra PUT
    record = AttendanceRecord.objects.get(student_id="B1-S1")
    assert (record.status, record.method, record.history, record.note) == ("present", "face", [], None)
    await sim.send(TEACHER, "/close")
    before = len(sim.received(TEACHER))
    assert not await sim.wait_for(TEACHER, ["Present 1/2", "Marked by hand: 0"], before, within=10)
    assert not AuditEvent.objects(kind="manual_mark")
    await app.stop()


async def test_an_override_keeps_who_when_why_and_the_previous_status(db, api) -> None:  # noqa: F811
    app, sim, verifier = http_app(api, face_max_attempts=1)
    await app.start()
    code = await open_session(sim)
    verifier.then(MISMATCHED)
    await check_in(sim, student("sita", 9002), "B1-S2", code, expect="did not match after 1 attempts")
    assert AttendanceRecord.objects.get(student_id="B1-S2").status == "failed"
    since = len(api.calls())
    replies = await sim.send(TEACHER, "/mark B1-S2 camera broken, I saw her")
    assert any("Student 2 of B1 (B1-S2) marked present by hand." in r for r in replies)
    assert writes(api, since) == [("PUT", "B1-S2", "present", "manual")]
    record = AttendanceRecord.objects.get(student_id="B1-S2")
    assert (record.status, record.method, record.synced) == ("present", "manual", True)
    [change] = record.history
    assert change["by"] == "teacher:Asha Rao" and change["reason"] == "camera broken, I saw her"
    assert (change["from_status"], change["from_method"], change["to_status"]) == ("failed", "face", "present")
    assert change["at"] is not None
    # The web panel's call: an admin sets her absent again; the history grows, one more PUT.
    session_id = str(Session.objects.first().id)
    result = await marks.mark_by_hand(app.services.roster, app.services.audit, session_id, "B1-S2", "absent",
                                      by="admin:ops", reason="left after the code")
    assert (result.outcome, result.previous, result.status) == (marks.MARKED, "present", "absent")
    record.reload()
    assert [(h["from_status"], h["to_status"], h["by"]) for h in record.history] == [
        ("failed", "present", "teacher:Asha Rao"), ("present", "absent", "admin:ops")]
    assert writes(api, since)[-1] == ("PUT", "B1-S2", "absent", "manual")
    again = await marks.mark_by_hand(app.services.roster, None, session_id, "B1-S2", "absent", by="admin:ops",
                                     reason="again")
    assert again.outcome == marks.UNCHANGED and len(record.reload().history) == 2
    audit = [(e.actor, e.data["from_status"], e.data["to_status"]) for e in AuditEvent.objects(kind="manual_mark")]
    assert audit == [("teacher:Asha Rao", "failed", "present"), ("admin:ops", "present", "absent")]
    await app.stop()


async def test_a_mark_while_the_api_is_down_waits_in_the_outbox(db, api) -> None:  # noqa: F811
    app, sim, _ = http_app(api)
    await app.start()
    await open_session(sim)
    api.script("PUT", "/attendance", *[Reply(503)] * 3)
    api.script("POST", "/attendance", *[Reply(503)] * 3)
    replies = await sim.send(TEACHER, "/mark B1-S1 phone dead")
    assert any("it will be sent when it is back" in r for r in replies)
    record = AttendanceRecord.objects.get(student_id="B1-S1")
    assert (record.status, record.method, record.synced) == ("present", "manual", False)
    [entry] = outbox.open_entries()
    assert (entry.student_id, entry.payload["method"]) == ("B1-S1", "manual")
    await app.outbox.run_once()
    assert AttendanceRecord.objects.get(student_id="B1-S1").synced
    await app.stop()
