"""A student in two sessions the same day; exactly one record each; the report per session."""
from __future__ import annotations

import asyncio

from integrations.storage.documents import AttendanceRecord, Session

from .appkit import ASHA, NEAR, make_app, open_session, student_at_code


async def check_in(sim, name: str, code: str) -> list[str]:  # type: ignore[no-untyped-def]
    user = await student_at_code(sim, name)
    await sim.send(user, code)
    await sim.send(user, NEAR)
    before = len(sim.received(user))
    await sim.send(user, "/video flows/scripts/media/hello.mp4")
    await sim.wait_for(user, ["Marked present"], before, within=10)
    return sim.texts(user, before)


async def test_a_student_in_two_sessions_the_same_day() -> None:
    app, sim = make_app()
    await app.start()
    python = await open_session(sim, subject="Python")
    assert any("Marked present for Python" in t for t in await check_in(sim, "ravi", python))
    # Marking again in the same session: told so, no second record.
    user = await student_at_code(sim, "ravi")
    assert any("already marked present for Python" in t for t in await sim.send(user, python))
    await sim.send(ASHA, "/close")
    before = len(sim.received(ASHA))
    await sim.wait_for(ASHA, ["📋 Attendance report: Python"], before, within=10)

    await sim.send(ASHA, "/start")
    structures = await open_session(sim, subject="Data Structures")
    assert structures != python or Session.objects.count() == 2
    assert any("Marked present for Data Structures" in t for t in await check_in(sim, "ravi", structures))
    records = AttendanceRecord.objects(student_id="22PFS001", status="present")
    assert records.count() == 2 and len({r.session.id for r in records}) == 2
    await asyncio.sleep(0)
    await app.stop()


async def test_a_students_steps_read_only_their_own_roster_entry() -> None:
    """Reading the whole class snapshot on every student step made a class cost O(N²)."""
    from integrations.roster import records

    app, sim = make_app()
    await app.start()
    code = await open_session(sim)
    session = Session.objects.first()
    assert len(session.students) == 4
    mine = records.get_session(str(session.id), "22PFS002")
    assert [s.student_id for s in mine.students] == ["22PFS002"]
    assert mine.otp == code and mine.subject == "Python" and mine.teacher.email == "asha.rao@example.edu"
    assert [s.student_id for s in records.session_by_otp(code, "22PFS003").students] == ["22PFS003"]
    assert records.get_session(str(session.id), "nobody").students == []
    await app.stop()
