"""Restart anywhere: a whole class session survives the app being replaced after every step.

After every input (and at the points where time passes) the running app instance is stopped and
a new one is built over the same database and the same conversation store: the same
``MemoryStore`` object, or a new ``MongoConversationStore`` over the same database on the test server.
Every conversation must continue where it was; a restart alone changes no stored conversation;
state timeouts and the expiry report fire exactly once across all instances; attendance is
neither lost nor doubled. Face checks: one student records a real video note checked by the real
local (dlib) verifier, the others send fake notes judged instantly.
"""
from __future__ import annotations

import asyncio
import dataclasses
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest

from engine import TIMEOUT_EVENT
from integrations.attendance.reports import ReportScheduler
from integrations.storage.documents import AttendanceRecord, Session

from .kit import (
    CLASS,
    FAKE_MATCH,
    FAKE_MISMATCH,
    FAKE_NOFACE,
    Deployment,
    count_texts,
    kill_engine,
    place_faces,
    snapshot,
    user,
)

USERS = {
    "asha": user("asha", 5001, "teacher", "Asha"),
    "ravi": user("ravi", 6001, "student", "Ravi"),
    "sita": user("sita", 6002, "student", "Sita"),
    "arjun": user("arjun", 6003, "student", "Arjun"),
    "meena": user("meena", 6101, "student", "Meena"),
    "kiran": user("kiran", 6102, "student", "Kiran"),
}
REPORT_HEAD = "📋 Attendance report"
TIMED_OUT = "No answer for a while"


@dataclass
class Step:
    who: str
    line: Optional[str]  # None: send nothing, only wait for `expect` (a timer, a report)
    expect: tuple[str, ...] = ()
    within: float = 0.0
    state: Optional[str] = None
    capture: Optional[str] = None  # regex with one group, saved as $otp
    advance: float = 0.0  # seconds that pass while the next instance is down
    crash: bool = False  # end the instance by crashing it instead of stopping it


@dataclass
class Run:
    restarts: int = 0
    steps: int = 0
    values: dict[str, str] = field(default_factory=dict)


def open_session_steps(minutes: str = "/tap 10 min") -> list[Step]:
    return [
        Step("asha", "/start", ("share your phone number",), state="ask_contact"),
        Step("asha", "/contact +919848000001", ("email address",), state="ask_email"),
        Step("asha", "asha.rao@example.edu", ("Enter your password",), state="ask_password"),
        Step("asha", "demo-pass-1", ("Logged in. Welcome, Asha Rao!", "What would you like to do?"), state="menu"),
        Step("asha", "/tap 📝 Take attendance", ("Choose the batches", "{PFS-101 | PFS-102 | Done ✔}")),
        Step("asha", "/tap PFS-101", ("(edited)", "✅ PFS-101"), state="choose_batches"),
        Step("asha", "/tap PFS-102", ("✅ PFS-102",), state="choose_batches"),
        Step("asha", "/tap Done ✔", ("Which subject?", "Python"), state="choose_subject"),
        Step("asha", "/tap Python", ("How long should the code stay valid",), state="choose_duration"),
        Step("asha", minutes, ("The usual is 50 m",), state="choose_radius"),
        Step("asha", "/tap 50", ("share the classroom's location",), state="ask_class_location"),
        Step("asha", f"/location {CLASS[0]} {CLASS[1]} 5",
             ("Session open for Python (PFS-101, PFS-102), 6 students.", "Code: "),
             state="session_open", capture=r"Code: (\d{6})"),
    ]


def student_start(who: str, phone: str, hello: str) -> list[Step]:
    return [
        Step(who, "/start", ("share your phone number",), state="ask_contact"),
        Step(who, f"/contact {phone}", (hello, "6-digit code"), state="ask_code"),
    ]


def checked_in(who: str, phone: str, location: str) -> list[Step]:
    """Contact, code and location: the student is asked for the video note."""
    return [*student_start(who, phone, "Hello "), Step(who, "$otp", ("Code accepted",)),
            Step(who, location, ("You are in class",), state="ask_video")]


def class_steps(notes: dict[str, Path]) -> list[Step]:
    near = f"/location {CLASS[0] + 0.0001} {CLASS[1]} 8"
    return [
        *open_session_steps(),
        Step("asha", "hello", ("Your session is running (code $otp)",), state="session_open"),
        # Ravi: everything right; a real note checked by the real local verifier
        *student_start("ravi", "+919000010001", "Hello Ravi Kumar (22PFS001)!"),
        Step("ravi", " $otp ", ("Code accepted: Python with Asha Rao.",), state="ask_location"),
        Step("ravi", f"/live {CLASS[0] + 0.0001} {CLASS[1]} 8", ("You are in class (12 m away).",), state="ask_video"),
        Step("ravi", f"/video {notes['real']}", ("Video received", "✅ Marked present for Python at"),
             within=90, state="marked"),
        # Sita: an impostor three times (the attempt count lives in the database, not the queue)
        *student_start("sita", "+919000010002", "Hello Sita Devi"),
        Step("sita", "$otp", ("Code accepted",), state="ask_location"),
        Step("sita", f"/location {CLASS[0] + 0.0019} {CLASS[1]}", ("must be within 50 m",), state="ask_location"),
        Step("sita", near, ("You are in class",), state="ask_video"),
        Step("sita", f"/video {notes['mismatch']}", ("did not match your photo. 2 attempt(s) left",), within=15,
             state="ask_video"),
        Step("sita", f"/video {notes['mismatch']}", ("1 attempt(s) left",), within=15, state="ask_video"),
        Step("sita", f"/video {notes['mismatch']}", ("did not match after 3 attempts",), within=15, state="finished"),
        # Arjun: five wrong codes lock him out (the counter lives in the session)
        *student_start("arjun", "+919000010003", "Hello Arjun Reddy"),
        Step("arjun", "000000", ("4 attempt(s) left",)),
        Step("arjun", "000001", ("3 attempt(s) left",)),
        Step("arjun", "000002", ("2 attempt(s) left",)),
        Step("arjun", "000003", ("1 attempt(s) left",)),
        Step("arjun", "000004", ("locked out of this session",), state="locked_out"),
        # Meena: no face, then her face
        *student_start("meena", "+919000010101", "Hello Meena Iyer"),
        Step("meena", "$otp", ("Code accepted",)),
        Step("meena", near, ("You are in class",), state="ask_video"),
        Step("meena", f"/video {notes['noface']}", ("could not find a face",), within=15, state="ask_video"),
        Step("meena", f"/video {notes['match']}", ("Marked present for Python",), within=15, state="marked"),
        # Kiran: starts, then goes quiet; his 600 s timeout is pending through every restart
        *student_start("kiran", "+919000010102", "Hello Kiran Patel"),
        # the teacher while the session runs
        Step("asha", "/status", ("📊 Python: 2 present, 4 not yet, 1 failed checks, 1 locked out.",),
             state="session_open"),
        Step("asha", "/mark 22PFS004 phone camera broken", ("Lata Singh (22PFS004) marked present by hand.",)),
        Step("asha", "/mark 22PFS004 again", ("already marked present",)),
        Step("asha", "/extend 5", ("Extended by 5 min",), state="session_open", advance=700),
        # 700 s later (the session runs 15 min): Kiran's timeout fires once, in the new instance
        Step("kiran", None, (TIMED_OUT,), within=15, state="timed_out"),
        # Ravi again: already marked, no second record
        *student_start("ravi", "+919000010001", "Hello Ravi Kumar"),
        Step("ravi", "$otp", ("You are already marked present for Python",), state="finished", advance=400),
        # 1100 s after the extension: the session expired while nothing ran; the report follows
        Step("asha", None, (REPORT_HEAD, "Present 3/6", "Absent 3", "Failed face check 1: Sita Devi (22PFS002)",
                            "Locked out 1: Arjun Reddy (22PFS003)", "Marked by hand: 1",
                            "[document attendance_Python_"), within=15, state="menu"),
        *student_start("kiran", "+919000010102", "Hello Kiran Patel"),
        Step("kiran", "$otp", ("That session has ended",), state="finished"),
        Step("asha", "/report", (REPORT_HEAD, "Present 3/6"), state="menu"),
    ]


async def play(dep: Deployment, steps: list[Step], run: Run, restart: bool = True) -> None:
    sim = dep.sim
    assert sim is not None
    for number, step in enumerate(steps, start=1):
        who = USERS[step.who]
        sub = lambda text: string.Template(text).safe_substitute(run.values)  # noqa: E731
        before = len(sim.received(who))
        where = f"step {number} ({step.who}: {step.line}) after {run.restarts} restart(s)"
        if step.line is not None:
            await sim.send(who, sub(step.line))
        missing = await sim.wait_for(who, [sub(e) for e in step.expect], before, step.within)
        got = sim.texts(who, before)
        assert not missing, f"{where}: missing {missing}; got {got}"
        if step.capture:
            found = re.search(step.capture, "\n".join(got))
            assert found, f"{where}: nothing to capture in {got}"
            run.values["otp"] = found.group(1)
        if step.state is not None:
            assert await sim.state_of(who) == step.state, f"{where}: state {await sim.state_of(who)!r}; got {got}"
        run.steps += 1
        if restart:
            await restart_checked(dep, run, crash=step.crash, advance=step.advance)


async def restart_checked(dep: Deployment, run: Run, *, crash: bool = False, advance: float = 0.0) -> None:
    """Restart; unless time passes meanwhile, the new instance must see every conversation as it was."""
    await (dep.crash() if crash else dep.stop())
    if advance:
        await dep.warp(advance)
    before = await snapshot(dep)
    dep.restarts += 1
    await dep.boot()
    if not advance:
        after = await snapshot(dep)
        assert after == before, f"restart {dep.restarts} changed stored conversations"
    run.restarts += 1


def fake_notes(tmp_path: Path, faces_dir: Path) -> dict[str, Path]:
    notes = {"real": faces_dir / "note_obama_2.mp4"}
    for name, data in (("match", FAKE_MATCH), ("mismatch", FAKE_MISMATCH), ("noface", FAKE_NOFACE)):
        path = tmp_path / f"fake_{name}.mp4"
        path.write_bytes(data + b"\x00" * 64)
        notes[name] = path
    return notes


@pytest.mark.slow
@pytest.mark.parametrize("store_kind", ["memory", "mongo"])
async def test_a_whole_class_survives_a_restart_after_every_step(
    store_kind: str, tmp_path: Path, faces_dir: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from integrations.presence.faces.local import LocalFaceVerifier

    real = LocalFaceVerifier(tmp_path / "faces", 0.6)
    dep = Deployment(tmp_path, store_kind, real_verifier=real)
    place_faces(dep.faces_dir, faces_dir, {"PFS-101/22PFS001": "obama_1.jpg"})
    run = Run()
    await dep.boot()
    try:
        await play(dep, class_steps(fake_notes(tmp_path, faces_dir)), run)
        # a few more restarts with nothing happening: nothing fires again
        for _ in range(3):
            await restart_checked(dep, run)
        await asyncio.sleep(1.5)  # longer than the report buffer
        sim = dep.sim
        assert sim is not None
        asha, kiran = USERS["asha"], USERS["kiran"]
        session = Session.objects.get()
        # the report: one event, one message (plus the one /report asked for), sent_at set once
        assert len(dep.report_events(asha.chat)) == 1, dep.report_events(asha.chat)
        assert count_texts(sim, asha, REPORT_HEAD) == 2
        assert dep.total_reports_sent() == 1
        assert session.report_sent_at is not None and session.status == "closed"
        # the timeout: fired once, in one instance
        assert count_texts(sim, kiran, TIMED_OUT) == 1
        # attendance: exact, one record per student
        records = list(AttendanceRecord.objects(session=session.id))
        ids = [r.student_id for r in records]
        assert len(ids) == len(set(ids)), ids
        assert sorted((r.student_id, r.status, r.method) for r in records) == [
            ("22PFS001", "present", "face"), ("22PFS002", "failed", "face"),
            ("22PFS004", "present", "manual"), ("22PFS101", "present", "face"),
        ]
        assert session.face_failure_count("22PFS002", 6002) == 3 and session.is_locked_out("22PFS003", 6003)
        assert any(v.real and v.matched and v.student_id == "22PFS001" for v in dep.processor.verdicts)
        assert dep.total_errors() == 0
    finally:
        await dep.close()
    with capsys.disabled():
        print(f"\n[restart-anywhere/{store_kind}] {run.steps} steps, {run.restarts} restarts tested "
              f"({len(dep.instances)} app instances)")


async def open_class(dep: Deployment, run: Run, minutes: str = "/tap 10 min") -> Session:
    """The teacher opens a session (10 minutes by default) in the running instance (no restarts)."""
    await play(dep, open_session_steps(minutes), run, restart=False)
    return Session.objects.get()


@pytest.mark.parametrize("store_kind", ["memory", "mongo"])
async def test_a_report_armed_by_a_crashed_instance_is_sent_once_by_the_next(store_kind: str, tmp_path: Path) -> None:
    dep = Deployment(tmp_path, store_kind)
    run = Run()
    a = await dep.boot()
    try:
        session = await open_class(dep, run)
        sid = str(session.id)
        assert ReportScheduler.job_id(sid) in a.services.reports.pending()  # A scheduled it ...
        await dep.crash()  # ... and died before it was due
        await dep.warp(700)  # the session (10 min) expired while nothing ran
        b = await dep.boot()  # B re-arms it from the database
        asha = USERS["asha"]
        assert dep.sim is not None
        missing = await dep.sim.wait_for(asha, [REPORT_HEAD, "Present 0/6"], 0, 15)
        assert not missing, dep.sim.texts(asha)
        assert b.services.reports.sent == 1
        # A comes back from the dead and fires its old job: nothing is sent
        assert await a.services.reports.fire(sid) is False
        await dep.restart()  # C: nothing left to re-arm
        assert dep.current is not None and dep.current.services.reports.pending() == []
        await asyncio.sleep(1.2)
        assert len(dep.report_events(asha.chat)) == 1
        assert count_texts(dep.sim, asha, REPORT_HEAD) == 1
        assert Session.objects.get().report_sent_at is not None
        assert await dep.sim.state_of(asha) == "menu"
    finally:
        await dep.close()


async def test_two_schedulers_racing_fire_send_one_report(tmp_path: Path) -> None:
    dep = Deployment(tmp_path, "mongo")
    run = Run()
    a = await dep.boot()
    try:
        session = await open_class(dep, run)
        sid = str(session.id)
        await dep.warp(700)
        # a second process over the same database and store, alive at the same time as A
        b = dep.build()
        assert dep.sim is not None
        b.engine.add_sink(dep.sim._receive)
        results = await asyncio.gather(*(inst.services.reports.fire(sid) for inst in (a, b, a, b, b, a)))
        assert sorted(results) == [False] * 5 + [True]
        assert a.services.reports.sent + b.services.reports.sent == 1
        asha = USERS["asha"]
        assert len(dep.report_events(asha.chat)) == 1
        assert count_texts(dep.sim, asha, REPORT_HEAD) == 1
        assert Session.objects.get().report_sent_at is not None
        await b.app.stop()
    finally:
        await dep.close()


async def test_a_crash_while_a_face_is_checked_loses_no_attendance(tmp_path: Path) -> None:
    """The queue lives in memory: a job lost in a crash is reported at the next start ("the face
    check was interrupted", attendance/recovery.py) and the student records again; a crash after
    the record was written but before the student was told does not lose (or double) the record."""
    dep = Deployment(tmp_path, "mongo")
    run = Run()
    await dep.boot()
    match = tmp_path / "match.mp4"
    match.write_bytes(FAKE_MATCH)
    near = f"/location {CLASS[0]} {CLASS[1]} 5"
    try:
        session = await open_class(dep, run, minutes="120")
        sim = dep.sim
        assert sim is not None
        ravi, meena = USERS["ravi"], USERS["meena"]
        # 1. Ravi's job is lost: the process dies before a worker picks it up
        await play(dep, checked_in("ravi", "+919000010001", near), run, restart=False)
        assert dep.current is not None
        queue = dep.current.services.verify_queue
        for task in queue._tasks:  # the workers are stuck: the job is accepted but never run
            task.cancel()
        queue.start = lambda: None
        await play(dep, [Step("ravi", f"/video {match}", ("Video received",), state="verifying")], run,
                   restart=False)
        since = len(sim.texts(ravi))
        await dep.restart(crash=True)
        assert not await sim.wait_for(ravi, ["face check was interrupted"], since, 15)
        assert await sim.state_of(ravi) == "ask_video"  # asked again at once, not after the timeout
        await play(dep, [Step("ravi", f"/video {match}", ("Marked present",), within=15, state="marked")], run)
        # 2. Meena's record is written, then the process dies before she is told
        await play(dep, checked_in("meena", "+919000010101", near), run)
        current = dep.current
        assert current is not None
        roster = current.services.roster
        original = roster.submit_attendance

        async def submit_then_die(*args: Any, **kwargs: Any) -> Any:
            result = await original(*args, **kwargs)
            kill_engine(current.engine)  # dead: the answer never goes out
            return result

        roster.submit_attendance = submit_then_die
        await play(dep, [Step("meena", f"/video {match}", ("Video received",))], run, restart=False)
        await current.services.verify_queue.drain()
        assert await sim.state_of(meena) == "verifying"
        await restart_checked(dep, run, crash=True, advance=700)
        assert not await sim.wait_for(meena, ["Checking took too long."], 0, 15)
        await play(dep, [*student_start("meena", "+919000010101", "Hello Meena"),
                         Step("meena", "$otp", ("You are already marked present for Python",), state="finished")], run)
        records = sorted((r.student_id, r.status) for r in AttendanceRecord.objects(session=session.id))
        assert records == [("22PFS001", "present"), ("22PFS101", "present")]
        assert dep.total_errors() == 0
    finally:
        await dep.close()


# ------------------------------------------------------------------------------ crashes inside a step
OPENING = "Session open for Python"
# Inputs whose effect is not idempotent by design, so replaying them after a crash inside the step
# changes the story: a wrong code counts twice (lockout comes sooner), /extend extends twice, and a
# face check may have finished in the dead process. They are restarted after, not inside.
NOT_REPLAYABLE = ("/video", "/extend", "00000")


async def crash_inside(dep: Deployment, run: Run, step: Step) -> None:
    """Send the step's input, but the process dies while saving the conversation; restart."""
    who = USERS[step.who]
    assert dep.current is not None and dep.sim is not None and step.line is not None
    store = dep.current.engine.store
    original = store.save
    saving = asyncio.Event()

    async def die_while_saving(conv: Any) -> None:
        if conv.key == (who.bot, who.chat):
            saving.set()
            await asyncio.Event().wait()  # never returns: the process is gone
        await original(conv)

    store.save = die_while_saving
    line = string.Template(step.line).safe_substitute(run.values)
    sending = asyncio.create_task(dep.sim.send(who, line))
    waiting = asyncio.create_task(saving.wait())
    try:
        await asyncio.wait({sending, waiting}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        assert saving.is_set(), f"{step.who}: {line} saved nothing"
    finally:
        sending.cancel()
        waiting.cancel()
        await asyncio.gather(sending, waiting, return_exceptions=True)
        del store.save  # the shared MemoryStore object outlives this instance
    await restart_checked(dep, run, crash=True)


def replayable(step: Step) -> bool:
    return step.line is not None and not any(step.line.startswith(p) for p in NOT_REPLAYABLE)


@pytest.mark.slow
async def test_a_step_cut_short_by_a_crash_and_sent_again_changes_nothing(
    tmp_path: Path, faces_dir: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Every input (but the session's opening and the ones in NOT_REPLAYABLE) first runs in a
    process that dies while saving its step, so its hooks ran but the conversation did not move;
    the user sends it again to the next instance. The class must end exactly as without crashes."""
    dep = Deployment(tmp_path, "mongo")
    run = Run()
    await dep.boot()
    notes = fake_notes(tmp_path, faces_dir)
    notes["real"] = notes["match"]  # the real verifier has its own test; this one is about replays
    try:
        for step in class_steps(notes):
            if replayable(step) and not any(OPENING in e for e in step.expect):
                await crash_inside(dep, run, step)
                if step.line and step.line.startswith("/mark"):  # it did mark in the dead process
                    step = dataclasses.replace(step, expect=("is already marked present",))
            await play(dep, [step], run)
        await asyncio.sleep(1.5)
        asha = USERS["asha"]
        sessions = list(Session.objects)
        assert len(sessions) == 1, f"{len(sessions)} sessions opened"
        records = sorted((r.student_id, r.status, r.method) for r in AttendanceRecord.objects(session=sessions[0].id))
        assert records == [("22PFS001", "present", "face"), ("22PFS002", "failed", "face"),
                           ("22PFS004", "present", "manual"), ("22PFS101", "present", "face")]
        assert len(dep.report_events(asha.chat)) == 1
        assert dep.total_errors() == 0
    finally:
        await dep.close()
    with capsys.disabled():
        print(f"\n[restart-anywhere/crash inside a step] {run.steps} steps, {run.restarts} restarts tested")


async def test_opening_a_session_cut_short_by_a_crash_and_sent_again_opens_one(tmp_path: Path) -> None:
    dep = Deployment(tmp_path, "memory")
    run = Run()
    await dep.boot()
    try:
        for step in open_session_steps():
            await crash_inside(dep, run, step)
            await play(dep, [step], run)
        opened = [s.otp for s in Session.objects(status="open")]
        assert opened == [run.values["otp"]], f"open sessions: {opened}"
    finally:
        await dep.close()


@pytest.mark.parametrize("store_kind", ["memory", "mongo"])
async def test_two_instances_starting_together_fire_each_timeout_and_the_report_once(
    store_kind: str, tmp_path: Path,
) -> None:
    """A rolling deploy: two new instances over the same store and database at once; both may
    re-arm the same overdue timeouts and the same report. Each fires once."""
    dep = Deployment(tmp_path, store_kind)
    run = Run()
    await dep.boot()
    try:
        await open_class(dep, run)  # 10 minutes
        await play(dep, [*student_start("kiran", "+919000010102", "Hello Kiran"),
                         *student_start("ravi", "+919000010001", "Hello Ravi"),
                         Step("ravi", "$otp", ("Code accepted",), state="ask_location")], run, restart=False)
        await dep.stop()
        await dep.warp(700)  # both students' timeouts and the session are overdue
        assert dep.sim is not None
        kiran, ravi, asha = USERS["kiran"], USERS["ravi"], USERS["asha"]
        first, second = dep.build(), dep.build()
        for instance in (first, second):
            instance.engine.add_sink(dep.sim._receive)
        # both timers of Kiran's timeout fire at the same moment, one in each instance
        conv = await first.engine.store.get(("student", kiran.chat))
        assert conv is not None and conv.deadline is not None
        await asyncio.gather(*(i.engine._fire_timeout(conv.key, conv.epoch) for i in (first, second)))
        assert {e.instance for e in dep.posted(TIMEOUT_EVENT, kiran.chat)} == {first.number, second.number}
        # then both start: both re-arm what is still overdue (Ravi's timeout, the report)
        await asyncio.gather(first.app.start(), second.app.start())
        for who, needles in ((kiran, [TIMED_OUT]), (ravi, [TIMED_OUT]), (asha, [REPORT_HEAD])):
            assert not await dep.sim.wait_for(who, needles, 0, 15), dep.sim.texts(who)
        await asyncio.sleep(1.5)  # let any second firing land
        assert count_texts(dep.sim, kiran, TIMED_OUT) == 1
        assert count_texts(dep.sim, ravi, TIMED_OUT) == 1
        assert count_texts(dep.sim, asha, REPORT_HEAD) == 1
        assert first.services.reports.sent + second.services.reports.sent == 1
        assert first.engine.stats["errors"] + second.engine.stats["errors"] == 0
        await asyncio.gather(first.app.stop(), second.app.stop())
    finally:
        await dep.close()
