"""Issue 14: the holes hostile testing found, each replayed against the real flows and hooks.

Every test here failed before its fix (docs/reliability.md, "Security", maps item -> fix -> test).
"""
from __future__ import annotations

import asyncio
import re
import resource
import threading
import time
from pathlib import Path
from typing import Any, Optional

from engine.simulator import Simulator, SimUser
from engine.types import Command, Contact, Location, Update, VideoNote
from integrations.app import build_app
from integrations.attendance.reports import CORRECTION_DELAY_SECONDS
from integrations.roster.csv_import import import_roster_text
from integrations.storage.documents import AttendanceRecord, Session, Teacher
from tests.fakes.faces import MATCHED, MISMATCHED
from tests.fakes.notes import mjpg_avi_bomb, mp4_note

from .appkit import ASHA, NEAR, REPO, STUDENTS, VIKRAM, make_app, open_session, student_at_code


def _texts(actions: list) -> str:
    return " ".join(getattr(a, "text", "") for a in actions)


# ------------------------------------------------------------------ 1. group chats
async def test_a_group_cannot_assemble_one_check_in_from_two_students() -> None:
    """A shares A's contact and face, B sends the code and B's location: nothing is recorded."""
    app, sim = make_app()
    await app.start()
    code = await open_session(sim)
    (asha, a_phone), (bala, _) = STUDENTS["ravi"], STUDENTS["sita"]
    group = -100777
    replies = []
    for user, kind, payload in (
            (asha.user_id, "command", Command("start")),
            (asha.user_id, "contact", Contact(a_phone, asha.user_id)),
            (bala.user_id, "text", code),
            (bala.user_id, "location", Location(17.3851, 78.4867, 5.0))):
        replies.append(_texts(await app.engine.submit(Update("student", group, user, kind, payload, private=False))))
    assert replies[0].startswith("I only talk in private chats") and replies[1:] == ["", "", ""]
    assert await app.engine.store.get(("student", group)) is None

    # The same, had the chat been taken for a private one: the second user never reaches A's conversation.
    chat = asha.user_id
    await app.engine.submit(Update("student", chat, asha.user_id, "command", Command("start")))
    await app.engine.submit(Update("student", chat, asha.user_id, "contact", Contact(a_phone, asha.user_id)))
    refused = _texts(await app.engine.submit(Update("student", chat, bala.user_id, "text", code)))
    assert refused == "This conversation belongs to someone else."
    assert (await app.engine.store.get(("student", chat))).state == "ask_code"
    assert AttendanceRecord.objects.count() == 0
    await app.stop()


# ------------------------------------------------------------------ 2. decode bombs
def _peak_rss_reset() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (the peak) on Linux
    except OSError:
        pass


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def test_a_decode_bomb_is_refused_from_its_headers_fast_and_small(tmp_path: Path) -> None:
    app, sim = make_app()
    await app.start()
    code = await open_session(sim)
    ravi = await student_at_code(sim, "ravi")
    bombs = {
        "an MJPG AVI of 16000×16000": (mjpg_avi_bomb(tmp_path), "I can only read round video notes"),
        "an H.264 MP4 whose SPS says 16000×16000 (headers say 384)": (
            mp4_note(sps_size=(16000, 16000)), "16000×16000 px; a video note is at most 1280 px"),
        "an MP4 with a 16000 px SPS inside a sample": (
            mp4_note(inband_sps=(16000, 16000)), "16000×16000 px; a video note is at most 1280 px"),
    }
    for name, (data, answer) in bombs.items():
        await sim.send(ravi, "/start")
        await sim.send(ravi, f"/contact {STUDENTS['ravi'][1]}")
        await sim.send(ravi, code)
        await sim.send(ravi, NEAR)
        _peak_rss_reset()
        before = _peak_rss_mb()
        started = time.perf_counter()
        replies = _texts(await app.engine.submit(Update(
            "student", ravi.chat, ravi.user_id, "video_note", VideoNote(data, 1, 384, len(data), "bomb"))))
        elapsed = time.perf_counter() - started
        assert answer in replies, name
        assert "Video received" not in replies, name
        assert elapsed < 0.5, (name, elapsed)
        assert _peak_rss_mb() - before < 200, name
        assert await sim.state_of(ravi) == "ask_video"
    assert app.verify_queue.stats()["submitted"] == 0  # nothing reached a decoder
    await app.stop()


# ------------------------------------------------------------------ 6. teacher passwords
async def _login(sim, user, phone: str, email: str, password: str) -> str:
    for line in ("/start", f"/contact {phone}", email):
        await sim.send(user, line)
    return " ".join(await sim.send(user, password))


async def test_password_guessing_waits_per_user_and_per_account_and_says_the_same_for_every_failure() -> None:
    app, sim = make_app()
    await app.start()
    mallory = SimUser("mallory", 5999, "teacher", "Mallory")
    answers = [await _login(sim, mallory, "+919848000099", "asha.rao@example.edu", f"guess-{n}") for n in range(5)]
    assert all("That login did not work" in a for a in answers)
    # The 6th try waits, even with the right password: nothing is compared while waiting.
    sixth = await _login(sim, mallory, "+919848000099", "asha.rao@example.edu", "demo-pass-1")
    assert "Too many failed logins. Please wait 1 min" in sixth
    # The account waits too, from any Telegram user (another phone, another guesser)...
    other = SimUser("trudy", 5998, "teacher", "Trudy")
    assert "Please wait" in await _login(sim, other, "+919848000098", "asha.rao@example.edu", "guess-x")
    # ...while other accounts do not.
    assert "Logged in" in await _login(sim, VIKRAM, "+919848000002", "vikram.sen@example.edu", "demo-pass-2")
    await app.stop()


async def test_the_right_password_from_a_foreign_phone_confirms_nothing() -> None:
    app, sim = make_app()
    await app.start()
    mallory = SimUser("mallory", 5999, "teacher", "Mallory")
    wrong = await _login(sim, mallory, "+919999999999", "asha.rao@example.edu", "not-her-password")
    right = await _login(sim, mallory, "+919999999999", "asha.rao@example.edu", "demo-pass-1")
    strip = lambda text: re.sub(r"\[deleted your message \d+\]", "", text)  # noqa: E731
    assert strip(wrong) == strip(right)
    assert "belongs to another phone number" not in right
    assert await sim.state_of(mallory) == "ask_email"
    await app.stop()


def test_the_phone_binding_is_checked_before_the_password(tmp_path: Path) -> None:
    from integrations.foundation.errors import RosterError
    from integrations.roster.local import LocalRoster

    app, _ = make_app()
    for password in ("wrong", "demo-pass-1"):  # the key never depends on the password
        try:
            LocalRoster().login(5999, "919999999999", "asha.rao@example.edu", password)
        except RosterError as exc:
            assert exc.message_key == "phone_mismatch"
        else:
            raise AssertionError("a foreign phone logged in")


# ------------------------------------------------------------------ 7. the code-guessing oracle
async def test_the_reply_to_a_guess_never_tells_whether_it_was_right() -> None:
    app, sim = make_app(otp_user_wrong_per_10min=2, otp_max_attempts=50)
    await app.start()
    code = await open_session(sim)
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    ravi, sita = await student_at_code(sim, "ravi"), await student_at_code(sim, "sita")
    for guess in (wrong, f"{(int(code) + 2) % 1000000:06d}"):  # Ravi: two wrong guesses
        await sim.send(ravi, guess)
    await sim.send(sita, wrong)  # Sita: one wrong guess, then the right one
    assert any("Code accepted" in r for r in await sim.send(sita, code))
    await sim.send(sita, "/start")
    await sim.send(sita, f"/contact {STUDENTS['sita'][1]}")
    # The third attempt of each is refused the same way, whatever was right before and now.
    after_ravi = " ".join(await sim.send(ravi, code))
    after_sita = " ".join(await sim.send(sita, wrong))
    assert "Please wait" in after_ravi and "Please wait" in after_sita
    assert after_ravi == after_sita
    await app.stop()


async def test_a_locked_student_gets_one_answer_for_every_code_and_counts_nothing() -> None:
    app, sim = make_app(otp_max_attempts=2, otp_user_wrong_per_10min=50)
    await app.start()
    code = await open_session(sim)
    ravi = await student_at_code(sim, "ravi")
    await sim.send(ravi, "000001")
    assert any("locked out" in r for r in await sim.send(ravi, "000002"))
    answers = set()
    for guess in (code, "000003", code):
        await sim.send(ravi, "/start")
        await sim.send(ravi, f"/contact {STUDENTS['ravi'][1]}")
        answers.add(" ".join(await sim.send(ravi, guess)))
    assert len(answers) == 1 and "locked out" in answers.pop()
    assert Session.objects.first().failed_otp_total == 2
    await app.stop()


async def test_another_class_s_code_is_a_wrong_code_like_any_other() -> None:
    app, sim = make_app()
    await app.start()
    code = await open_session(sim)
    farah = SimUser("farah", 6201, "student", "Farah")
    await sim.send(farah, "/start")
    await sim.send(farah, "/contact +919000020001")
    assert " ".join(await sim.send(farah, code)) == " ".join(await sim.send(farah, "000000"))
    await app.stop()


async def test_the_code_limit_survives_a_restart() -> None:
    app, sim = make_app(otp_user_wrong_per_10min=2, otp_max_attempts=50)
    await app.start()
    code = await open_session(sim)
    ravi = await student_at_code(sim, "ravi")
    for guess in ("000001", "000002"):
        await sim.send(ravi, guess)
    await app.stop()
    again = build_app(app.settings, flows=REPO / "flows", verifier=app.verifier, connect=False,
                      store=app.engine.store)
    again.open_storage()
    await again.start()
    sim = Simulator(again.engine)
    replies = await sim.send(ravi, code)
    assert any("Please wait" in r for r in replies), replies
    await again.stop()


# ------------------------------------------------------------------ 9. the session brake
async def test_accomplices_locked_out_cannot_spend_the_session_brake() -> None:
    app, sim = make_app(otp_max_attempts=2, otp_session_max_wrong=5, otp_user_wrong_per_10min=50)
    await app.start()
    code = await open_session(sim)
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    for name in ("ravi", "sita"):  # two accomplices lock themselves out, then keep guessing
        user = await student_at_code(sim, name)
        for _ in range(12):
            await sim.send(user, wrong)
            if await sim.state_of(user) != "ask_code":
                user = await student_at_code(sim, name)
    arjun = await student_at_code(sim, "arjun")  # an honest student makes one typo
    assert any("Wrong code. 1 attempt(s) left" in r for r in await sim.send(arjun, wrong))
    assert any("Code accepted" in r for r in await sim.send(arjun, code))
    assert Session.objects.first().failed_otp_total == 5
    await app.stop()


async def test_the_session_brake_scales_with_the_class() -> None:
    app, sim = make_app(otp_session_max_wrong=1)  # below the class size of 4: the class size counts
    await app.start()
    code = await open_session(sim)
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    for name in ("ravi", "sita", "arjun", "lata"):
        user = await student_at_code(sim, name)
        assert any("Wrong code" in r for r in await sim.send(user, wrong)), name
    await app.stop()


# ------------------------------------------------------------------ 3, 4, 10. face checks
class Gate:
    """A face check processor that answers only when the test opens its session's gate."""

    def __init__(self, answer: Any = MATCHED) -> None:
        self.answer = answer
        self.gates: dict[str, threading.Event] = {}
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def gate(self, session_id: str) -> threading.Event:
        with self.lock:
            return self.gates.setdefault(session_id, threading.Event())

    def __call__(self, job: Any) -> Any:
        with self.lock:
            self.calls.append(job.session_id)
        self.gate(job.session_id).wait(20)
        return self.answer

    def open(self, session_id: Optional[str] = None) -> None:
        for sid in [session_id] if session_id else list(self.gates) or []:
            self.gate(sid).set()


NOTE = "/video flows/scripts/media/hello.mp4"


async def _check_in(sim, name: str, code: str) -> SimUser:
    user = await student_at_code(sim, name)
    await sim.send(user, code)
    await sim.send(user, NEAR)
    return user


async def test_one_face_check_in_flight_per_student_and_three_attempts_mean_three() -> None:
    gate = Gate(MISMATCHED)
    app, sim = make_app(processor=gate, otp_user_wrong_per_10min=100)
    await app.start()
    code = await open_session(sim)
    ravi = await _check_in(sim, "ravi", code)
    assert any("Video received" in r for r in await sim.send(ravi, NOTE))
    for _ in range(4):  # /start while the check runs, and another note each time
        await _check_in(sim, "ravi", code)
        assert any("still being checked" in r for r in await sim.send(ravi, NOTE))
    assert app.verify_queue.stats()["submitted"] == 1
    gate.open()
    await app.verify_queue.drain()
    session_id = str(Session.objects.first().id)
    gate.gate(session_id).set()
    for _ in range(5):  # keep trying: the limit is 3 checks, whatever the timing
        await _check_in(sim, "ravi", code)
        await sim.send(ravi, NOTE)
        await app.verify_queue.drain()
    assert len(gate.calls) == 3
    assert Session.objects.first().face_failure_count("22PFS001", 6001) == 3  # counted per student and account
    assert AttendanceRecord.objects.get(student_id="22PFS001").status == "failed"
    await app.stop()


async def test_a_new_note_sent_right_after_an_answer_is_checked_not_refused() -> None:
    """The claim on the check is given back before the student hears its answer: a student who
    records again at once is never told the answered note is "still being checked"."""
    app, sim = make_app(processor=lambda job: MISMATCHED)
    await app.start()
    code = await open_session(sim)
    roster = app.services.roster
    release = roster.release_face_check

    async def slow_release(*args: Any) -> bool:  # a slow database, between the answer and the release
        await asyncio.sleep(0.3)
        return await release(*args)

    roster.release_face_check = slow_release  # type: ignore[method-assign]
    ravi = await _check_in(sim, "ravi", code)
    before = len(sim.received(ravi))
    await sim.send(ravi, NOTE)
    assert not await sim.wait_for(ravi, ["did not match"], before, within=10)
    replies = await sim.send(ravi, NOTE)  # at once, as a student does
    assert not any("still being checked" in r for r in replies) and any("Video received" in r for r in replies)
    await app.verify_queue.drain()
    await app.stop()


async def test_the_report_waits_for_a_face_check_accepted_before_the_close() -> None:
    gate = Gate()
    app, sim = make_app(processor=gate)
    await app.start()
    code = await open_session(sim)
    ravi = await _check_in(sim, "ravi", code)
    await sim.send(ravi, NOTE)
    since = len(sim.received(ASHA))
    await sim.send(ASHA, "/close")
    await asyncio.sleep(1.0)  # the report is due now, but a check is running
    assert not any("Attendance report" in t for t in sim.texts(ASHA, since))
    gate.open()
    assert await sim.wait_for(ASHA, ["📋 Attendance report", "Present 1/4: Ravi Kumar"], since, within=15) == []
    await asyncio.sleep(CORRECTION_DELAY_SECONDS + 0.5)
    assert not any("Corrected" in t for t in sim.texts(ASHA, since))
    await app.stop()


async def test_a_check_that_outlasts_the_wait_gets_a_corrected_report() -> None:
    gate = Gate()
    app, sim = make_app(processor=gate)
    app.reports.checks_wait_s = 0.5
    await app.start()
    code = await open_session(sim)
    ravi = await _check_in(sim, "ravi", code)
    await sim.send(ravi, NOTE)
    since = len(sim.received(ASHA))
    await sim.send(ASHA, "/close")
    assert await sim.wait_for(ASHA, ["📋 Attendance report", "Present 0/4"], since, within=15) == []
    gate.open()
    assert await sim.wait_for(ASHA, ["📋 Corrected attendance report", "Present 1/4: Ravi Kumar",
                                     "Corrected attendance report (CSV)"], since, within=15) == []
    assert AttendanceRecord.objects.get(student_id="22PFS001").status == "present"
    await app.stop()


async def test_a_face_answer_for_another_class_never_ends_this_one() -> None:
    gate = Gate()
    app, sim = make_app(processor=gate)
    await app.start()
    import_roster_text("role,id,name,phone,email,password,batch,subject\n"
                       "teacher,,Maya Das,+91 98480 00003,maya@example.edu,demo-pass-3,PFS-101,Maths\n")
    python = await open_session(sim)
    maya = SimUser("maya", 5003, "teacher", "Maya")
    maths = await open_session(sim, maya, "+919848000003", "maya@example.edu", "demo-pass-3", subject="Maths")
    ravi = await _check_in(sim, "ravi", python)
    await sim.send(ravi, NOTE)  # Python's check runs...
    ravi = await _check_in(sim, "ravi", maths)  # ...while Ravi checks in to Maths
    assert any("Video received" in r for r in await sim.send(ravi, NOTE))
    first, second = (str(s.id) for s in Session.objects.order_by("opened_at"))
    since = len(sim.received(ravi))
    gate.open(first)  # Python's answer arrives while the conversation is about Maths
    assert await sim.wait_for(ravi, ["Your earlier video note for Python has been checked"], since, within=15) == []
    assert await sim.state_of(ravi) == "verifying"
    assert not any("Marked present for Maths" in t for t in sim.texts(ravi, since))
    gate.open(second)
    assert await sim.wait_for(ravi, ["✅ Marked present for Maths at"], since, within=15) == []
    assert await sim.state_of(ravi) == "marked"
    assert AttendanceRecord.objects(status="present").count() == 2
    await app.stop()


# ------------------------------------------------------------------ 11. subjects of several batches
async def _log_in_asha(sim) -> None:
    for line in ("/start", "/contact +919848000001", "asha.rao@example.edu", "demo-pass-1"):
        await sim.send(ASHA, line)


async def test_only_subjects_taught_to_every_ticked_batch_are_offered() -> None:
    app, sim = make_app()
    await app.start()
    await _log_in_asha(sim)
    await sim.send(ASHA, "/tap 📝 Take attendance")
    await sim.send(ASHA, "/tap PFS-101")
    await sim.send(ASHA, "/tap PFS-102")
    offered = " ".join(await sim.send(ASHA, "/tap Done ✔"))
    assert "Python" in offered and "Data Structures" not in offered  # only PFS-101 has Data Structures
    import_roster_text("role,id,name,phone,email,password,batch,subject\n"
                       "teacher,,Nina Roy,+91 98480 00004,nina@example.edu,demo-pass-4,PFS-101,Maths\n"
                       "teacher,,Nina Roy,,nina@example.edu,,PFS-102,Physics\n")
    nina = SimUser("nina", 5004, "teacher", "Nina")
    for line in ("/start", "/contact +919848000004", "nina@example.edu", "demo-pass-4", "/tap 📝 Take attendance",
                 "/tap PFS-101", "/tap PFS-102"):
        await sim.send(nina, line)
    assert any("no subject to all of these batches" in r for r in await sim.send(nina, "/tap Done ✔"))
    assert await sim.state_of(nina) == "choose_batches"
    await app.stop()


async def test_a_refusal_is_not_reported_as_an_outage() -> None:
    from integrations.storage.documents import Assignment, Teacher

    app, sim = make_app()
    await app.start()
    await _log_in_asha(sim)
    for line in ("/tap 📝 Take attendance", "/tap PFS-101", "/tap Done ✔", "/tap Data Structures", "/tap 10 min",
                 "/tap 50"):
        await sim.send(ASHA, line)
    # The subject is withdrawn meanwhile: the roster now refuses (`rejected`), it is not down.
    Teacher.objects(email="asha.rao@example.edu").update_one(
        set__assignments=[Assignment(batch="PFS-101", subject="Python"), Assignment(batch="PFS-102", subject="Python")])
    replies = " ".join(await sim.send(ASHA, "/location 17.385 78.4867 5"))
    assert "not answering" not in replies
    assert "refused to open Data Structures for PFS-101" in replies
    assert await sim.state_of(ASHA) == "choose_batches"
    await app.stop()


# ------------------------------------------------------------------ 12, 15. phones and typed text
async def test_a_foreign_number_with_a_students_last_ten_digits_is_not_that_student() -> None:
    app, sim = make_app()
    await app.start()
    stranger = SimUser("stranger", 6666, "student", "Stranger")  # +1 900-001-0001 vs Ravi's +91 90000 10001
    await sim.send(stranger, "/start")
    assert any("not on any class roster" in r for r in await sim.send(stranger, "/contact +19000010001"))
    await app.stop()


async def test_invisible_characters_typed_in_an_email_are_dropped() -> None:
    app, sim = make_app()
    await app.start()
    replies = await _login(sim, ASHA, "+919848000001", "asha.rao\u200b@exam\u202eple.edu", "demo-pass-1")
    assert "Logged in" in replies
    assert Teacher.objects(telegram_id=ASHA.user_id).get().email == "asha.rao@example.edu"
    await app.stop()
