"""Issue 15.10: every attendance decision is an audit event, in MongoDB and the log; no secrets."""
from __future__ import annotations

import asyncio
import io
import json
import logging

from integrations.app.cli import operations as ops
from integrations.attendance.audit import KINDS, clean
from integrations.storage.audit import AuditEvent
from integrations.storage.documents import Session
from tests.fakes.faces import MISMATCHED
from tests.integrations.conftest import api, db  # noqa: F401  (fixtures)

from .appkit import ASHA, NEAR, make_app, open_session, student_at_code
from .httpkit import TEACHER, http_app
from .httpkit import open_session as open_http
from .test_marks import check_in

FAR = "/location 17.38770 78.4867 5"


async def written(kind: str, within: float = 5.0) -> None:
    """The report's audit events follow the report message: wait for them."""
    for _ in range(int(within / 0.05)):
        if AuditEvent.objects(kind=kind).count():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {kind} event")


async def test_a_sessions_decisions_are_on_the_audit_trail(caplog) -> None:
    caplog.set_level(logging.INFO)
    app, sim = make_app()
    await app.start()
    code = await open_session(sim)
    ravi = await student_at_code(sim, "ravi")
    await sim.send(ravi, f"{(int(code) + 1) % 1000000:06d}")
    await sim.send(ravi, code)
    await sim.send(ravi, FAR)
    await sim.send(ravi, NEAR)
    app.verifier.then(MISMATCHED)
    before = len(sim.received(ravi))
    await sim.send(ravi, "/video flows/scripts/media/hello.mp4")
    await sim.wait_for(ravi, ["did not match"], before, within=10)
    before = len(sim.received(ravi))
    await sim.send(ravi, "/video flows/scripts/media/hello.mp4")
    await sim.wait_for(ravi, ["Marked present"], before, within=10)
    await sim.send(ASHA, "/extend 5")
    await sim.send(ASHA, "/mark 22PFS004 phone camera broken")
    await sim.send(ASHA, "/close")
    await sim.wait_for(ASHA, ["📋 Attendance report"], 0, within=10)
    await app.services.verify_queue.drain()
    await written("report_sent")
    session = Session.objects.first()
    session_id = str(session.id)

    events = list(AuditEvent.objects(session_id=session_id).order_by("at", "id"))
    kinds = [e.kind for e in events]
    assert kinds[0] == "session_opened" and kinds[-1] == "report_sent"
    for kind in ("code_wrong", "code_accepted", "location_too_far", "location_ok", "face_mismatch", "face_match",
                 "present", "session_extended", "manual_mark", "session_closed"):
        assert kind in kinds, (kind, kinds)
    assert kinds.index("code_wrong") < kinds.index("code_accepted") < kinds.index("location_too_far")
    by_kind = {e.kind: e for e in events}
    assert by_kind["code_wrong"].data["attempts_left"] == 4 and by_kind["code_wrong"].user_id == 6001
    assert by_kind["location_too_far"].data["distance_m"] > 50
    assert by_kind["face_mismatch"].data["similarity"] == 12.0 and by_kind["face_match"].data["similarity"] == 99.1
    assert by_kind["manual_mark"].actor == "teacher:Asha Rao"
    assert by_kind["manual_mark"].data == {"reason": "phone camera broken", "from_status": "absent",
                                           "to_status": "present", "synced": True}
    assert by_kind["session_opened"].data["students"] == 4 and by_kind["session_opened"].actor == "teacher:Asha Rao"
    assert by_kind["report_sent"].data["present"] == 2
    assert set(kinds) <= set(KINDS)

    # Never a code or a phone number: not in the events, not in the log.
    stored = json.dumps([e.to_mongo().to_dict() for e in AuditEvent.objects], default=str)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "integrations.audit")
    for secret in (code, "9000010001", "919848000001"):
        assert secret not in stored and secret not in logged
    assert "audit code_accepted session=" in logged

    out = io.StringIO()
    assert ops.audit(app.services.settings, session_id, out=out, connect=False) == 0
    printed = out.getvalue()
    assert printed.startswith(f"session {session_id}: Python (PFS-101), 4 students;")
    assert "manual_mark" in printed and "reason=phone camera broken" in printed and "22PFS004" in printed
    assert ops.audit(app.services.settings, "0123456789abcdef01234567", out=io.StringIO(), connect=False) == 1
    await app.stop()


def test_clean_drops_secrets_and_odd_values() -> None:
    assert clean({"code": "123456", "otp": "1", "phone": "9", "student_phone": "9", "_x": 1, "password": "p",
                  "distance_m": float("nan"), "score": 0.123456, "ok": True, "none": None, "list": ("a",)}) == {
        "score": 0.1235, "ok": True, "list": ["a"]}


async def test_api_timings_are_summarised_per_session(db, api, caplog) -> None:  # noqa: F811
    caplog.set_level(logging.INFO)
    app, sim, _ = http_app(api)
    await app.start()
    code = await open_http(sim)
    from .test_identity import student

    await check_in(sim, student("ravi", 9001), "B1-S1", code)
    await sim.send(TEACHER, "/close")
    await sim.wait_for(TEACHER, ["📋 Attendance report"], 0, within=10)
    await written("api_timings")
    session_id = str(Session.objects.first().id)
    lines = [r.getMessage() for r in caplog.records if "api timings for session" in r.getMessage()]
    assert len(lines) == 1 and session_id in lines[0] and "GET /attend x1" in lines[0] and "POST /attendance x1" in lines[0]
    [event] = AuditEvent.objects(session_id=session_id, kind="api_timings")
    assert event.data["calls"] >= 3 and event.data["errors"] == 0 and event.data["max_s"] >= event.data["mean_s"]
    await app.stop()
