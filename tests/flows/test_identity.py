"""Issue 15.1: students identify by student ID or by contact; bindings; attempts per account."""
from __future__ import annotations

import pytest

from engine.simulator import SimUser
from integrations.foundation.names import attempt_key, student_of_key, user_of_key
from integrations.roster import records
from integrations.settings import load_settings
from integrations.storage.audit import AuditEvent
from integrations.storage.documents import AttendanceRecord, Session, StudentBinding
from tests.integrations.conftest import api, db  # noqa: F401  (fixtures)

from .appkit import ASHA, make_app
from .appkit import open_session as open_local
from .httpkit import NEAR, NOTE, TEACHER, http_app, open_session


def student(name: str, uid: int) -> SimUser:
    return SimUser(name, uid, "student", name.title())


@pytest.mark.parametrize("backend, mode, expected", [
    ("local", "auto", "contact"), ("http", "auto", "student_id"),
    ("local", "student_id", "student_id"), ("http", "contact", "contact"),
])
def test_identity_mode_per_backend(backend: str, mode: str, expected: str) -> None:
    settings = load_settings(_env_file=None, roster_backend=backend, student_identity=mode)
    assert settings.identity_mode() == expected


def test_attempt_keys_round_trip() -> None:
    assert attempt_key("22PFS001", 6001) == "22PFS001#6001" and attempt_key("22PFS001") == "22PFS001"
    assert (student_of_key("A#B#6001"), user_of_key("A#B#6001")) == ("A#B", 6001)
    assert (student_of_key("22PFS001"), user_of_key("22PFS001")) == ("22PFS001", None)


def test_bindings_one_account_per_student_and_back(db) -> None:  # noqa: F811
    assert records.bind_student("S1", 1) == (records.BOUND, None)
    assert records.bind_student("S1", 1) == (records.SAME, None)
    assert records.bind_student("S1", 2) == (records.TAKEN, None)
    assert records.bind_student("S2", 1) == (records.OTHER_STUDENT, "S1")
    # A contact proves who the sender is: it moves the binding instead of being refused.
    assert records.bind_student("S1", 2, via="contact") == (records.BOUND, "1")
    assert {(b.student_id, b.telegram_user_id, b.via) for b in StudentBinding.objects} == {("S1", 2, "contact")}
    assert records.unbind_student("S1") == 2 and records.unbind_student("S1") is None
    assert records.bind_student("S1", 1) == (records.BOUND, None)


async def test_http_students_identify_by_id_before_and_after_the_session_opens(db, api) -> None:  # noqa: F811
    app, sim, _ = http_app(api)
    await app.start()
    ravi = student("ravi", 9001)
    replies = await sim.send(ravi, "/start")
    assert any("type your student ID" in r for r in replies)
    # The http backend knows students only from sessions: before the first one, say so (not "unknown").
    assert any("can't find B1-S1 in any class yet" in r for r in await sim.send(ravi, "B1-S1"))
    assert await sim.state_of(ravi) == "ask_student_id"
    code = await open_session(sim)
    assert any("Hello Student 1 of B1 (B1-S1)!" in r for r in await sim.send(ravi, "b1-s1"))
    assert any("Code accepted" in r for r in await sim.send(ravi, code))
    await sim.send(ravi, NEAR)
    before = len(sim.received(ravi))
    await sim.send(ravi, NOTE)
    assert not await sim.wait_for(ravi, ["Marked present for Python"], before, within=10)
    record = AttendanceRecord.objects.get(student_id="B1-S1")
    assert (record.status, record.method, record.synced) == ("present", "face", True)
    # Another account cannot take the ID; the first account cannot speak for a classmate.
    eve = student("eve", 9002)
    await sim.send(eve, "/start")
    assert any("already used from another Telegram account" in r for r in await sim.send(eve, "B1-S1"))
    await sim.send(ravi, "/start")
    assert any("already marks attendance for B1-S1" in r for r in await sim.send(ravi, "B1-S2"))
    await sim.send(ravi, "/start")  # ... nor learn whether another ID exists
    assert any("already marks attendance for B1-S1" in r for r in await sim.send(ravi, "NO-SUCH-ID"))
    # The teacher frees the ID; an admin (web panel) would call the same RosterService method.
    assert any("no longer linked" in r for r in await sim.send(TEACHER, "/unbind B1-S1"))
    assert await app.services.roster.unbind_student("B1-S1") is None  # already free
    await sim.send(eve, "/start")
    assert any("Hello Student 1 of B1" in r for r in await sim.send(eve, "B1-S1"))
    kinds = [e.kind for e in AuditEvent.objects(student_id="B1-S1").order_by("at")]
    assert kinds.count("student_bound") == 2 and "binding_refused" in kinds and "student_unbound" in kinds
    await app.stop()


async def test_http_contact_before_any_session_is_not_open_not_unknown(db, api) -> None:  # noqa: F811
    app, sim, _ = http_app(api, student_identity="contact")
    await app.start()
    ravi = student("ravi", 9001)
    await sim.send(ravi, "/start")
    replies = await sim.send(ravi, "/contact +919000001100 9001")
    assert any("can't find your number in any class yet" in r for r in replies)
    assert not any("not on any class roster" in r for r in replies)
    assert await sim.state_of(ravi) == "ask_contact"
    await open_session(sim)
    assert any("Hello Student 1 of B1 (B1-S1)!" in r for r in await sim.send(ravi, "/contact +919000001100 9001"))
    # ... and a later day, before that day's session: found in the last session's roster.
    Session.objects.update(set__status="closed")
    await sim.send(ravi, "/start")
    assert any("Hello Student 1 of B1" in r for r in await sim.send(ravi, "/contact +919000001100 9001"))
    await app.stop()


async def test_typing_a_classmates_id_never_locks_the_classmate_out() -> None:
    app, sim = make_app(student_identity="student_id", otp_max_attempts=2)
    await app.start()
    code = await open_local(sim)
    mallory, sita = student("mallory", 6666), student("sita", 6002)
    await sim.send(mallory, "/start")
    await sim.send(mallory, "22PFS002")  # Sita's ID, before Sita ever used the bot
    await sim.send(mallory, "000000")
    assert any("locked out" in r for r in await sim.send(mallory, "000001"))
    session = Session.objects.first()
    assert session.is_locked_out("22PFS002", 6666) and not session.is_locked_out("22PFS002", 6002)
    assert session.failed_otp_count("22PFS002", 6666) == 2 and session.failed_otp_count("22PFS002", 6002) == 0
    await sim.send(ASHA, "/unbind 22PFS002")
    await sim.send(sita, "/start")
    await sim.send(sita, "22PFS002")
    assert any("Code accepted" in r for r in await sim.send(sita, code))
    # The report does not call Sita locked out: the lockout was another account's.
    stats = await app.services.roster.session_stats(str(session.id))
    assert stats["locked"] == 0
    await app.stop()


async def test_face_attempts_count_per_account(db) -> None:  # noqa: F811
    from integrations.presence.verify_queue import VerifyJob, VerifyQueue
    from integrations.presence.faces.base import FaceResult

    outcomes = []

    async def done(outcome):  # type: ignore[no-untyped-def]
        outcomes.append(outcome)

    queue = VerifyQueue(lambda job: FaceResult(False, "mismatch"), max_attempts=2, workers=1)
    for _ in range(2):
        queue.submit(VerifyJob("S", "22PFS002", "PFS-101", b"x", done, user_id=6666))
    await queue.drain()
    queue.submit(VerifyJob("S", "22PFS002", "PFS-101", b"x", done, user_id=6002))
    await queue.drain()
    assert [o.reason for o in outcomes] == ["mismatch", "attempts_exhausted", "mismatch"]
    assert queue.attempts("S", "22PFS002", 6666) == 2 and queue.attempts("S", "22PFS002", 6002) == 1
    await queue.close()


async def test_teacher_unbind_needs_a_student_of_theirs() -> None:
    app, sim = make_app()
    await app.start()
    await open_local(sim)
    assert any("22JFS001 is not one of your students" in r for r in await sim.send(ASHA, "/unbind 22JFS001"))
    assert any("is not linked to any Telegram account" in r for r in await sim.send(ASHA, "/unbind 22PFS001"))
    assert await sim.state_of(ASHA) == "session_open"
    assert any("Use /unbind STUDENT_ID" in r for r in await sim.send(ASHA, "/unbind ../../etc"))
    await app.stop()
