"""Abuse: code guessing across accounts and sessions, other people's contacts and media,
teachers reaching other teachers' sessions, forged buttons."""
from __future__ import annotations

import re

from engine.simulator import InputError
from integrations.storage.documents import AttendanceRecord, Session

from .appkit import (
    ASHA,
    NEAR,
    STUDENTS,
    VIKRAM,
    make_app,
    open_session,
    student_at_code,
)


async def test_one_account_guessing_across_sessions_is_slowed_down() -> None:
    app, sim = make_app(otp_max_attempts=50, otp_user_wrong_per_10min=3)
    await app.start()
    await open_session(sim)
    ravi = await student_at_code(sim, "ravi")
    for guess in ("000001", "000002", "000003"):
        assert any("Wrong code" in r for r in await sim.send(ravi, guess))
    replies = " ".join(await sim.send(ravi, "000004"))
    assert re.search(r"Please wait (10|[1-9]) min", replies)
    session = Session.objects.first()
    assert session.failed_otp_total == 3  # the 4th guess was not even looked at
    await app.stop()


async def test_many_accounts_guessing_one_session_hit_the_session_brake() -> None:
    # The brake is max(OTP_SESSION_MAX_WRONG, class size): 4 students here, so the 5th miss brakes.
    app, sim = make_app(otp_session_max_wrong=3)
    await app.start()
    code = await open_session(sim)
    wrong = [f"{(int(code) + n) % 1000000:06d}" for n in (1, 2)]
    outcomes = []
    for name in ("ravi", "sita", "arjun"):
        user = await student_at_code(sim, name)
        outcomes += [" ".join(await sim.send(user, guess)) for guess in wrong]
    assert ["Wrong code" in o for o in outcomes] == [True, True, True, True, False, False]
    assert "locked out" in outcomes[4]  # after the brake, one miss locks out
    assert Session.objects.first().locked_out == ["22PFS003#6003"]  # the student on this account
    assert Session.objects.first().locked_student_ids() == {"22PFS003"}
    await app.stop()


async def test_a_student_cannot_use_someone_elses_contact_or_forwarded_media() -> None:
    app, sim = make_app()
    await app.start()
    code = await open_session(sim)
    ravi, _ = STUDENTS["ravi"]
    await sim.send(ravi, "/start")
    # Sita's number shared by Ravi: a contact card whose user is not the sender.
    assert any("not your own contact" in r for r in await sim.send(ravi, "/contact +919000010002 6002"))
    await sim.send(ravi, "/contact +919000010001")
    await sim.send(ravi, code)
    assert any("Forwarded" in r for r in await sim.send(ravi, "/forward " + NEAR))
    await sim.send(ravi, NEAR)
    note = "flows/scripts/media/hello.mp4"
    assert any("Forwarded" in r for r in await sim.send(ravi, f"/forward /video {note}"))
    assert AttendanceRecord.objects.count() == 0
    await app.stop()


async def test_a_teacher_reaches_only_their_own_sessions() -> None:
    app, sim = make_app()
    await app.start()
    await open_session(sim)
    for line in ("/start", "/contact +919848000002", "vikram.sen@example.edu", "demo-pass-2"):
        await sim.send(VIKRAM, line)
    assert any("no open session" in r for r in await sim.send(VIKRAM, "/status"))
    await sim.send(VIKRAM, "/start")
    assert any("no open session" in r for r in await sim.send(VIKRAM, "/mark 22PFS001 vouching"))
    assert any("There is no report yet" in r for r in await sim.send(VIKRAM, "/report"))
    assert AttendanceRecord.objects.count() == 0
    assert any("0 present" in r for r in await sim.send(ASHA, "/status"))
    await app.stop()


async def test_forged_and_stale_buttons_do_nothing() -> None:
    app, sim = make_app()
    await app.start()
    for line in ("/start", "/contact +919848000001", "asha.rao@example.edu", "demo-pass-1"):
        await sim.send(ASHA, line)
    await sim.send(ASHA, "/tap 📝 Take attendance")
    state_before = await sim.state_of(ASHA)
    from engine.types import Callback, Update

    for data in ("1|o0", "999999|o0", "x", "", "0|done", "-1|o1"):
        await app.engine.submit(Update("teacher", ASHA.chat, ASHA.user_id, "callback", Callback(data, "c"),
                                       message_id=1))
    assert await sim.state_of(ASHA) == state_before == "choose_batches"
    conv = await app.engine.store.get(("teacher", ASHA.chat))
    assert conv.data.get("batches") == []
    try:
        await sim.send(ASHA, "/tap No Such Button")
    except InputError:
        pass
    await app.stop()
