"""Several student bots: the teacher's session message says which one each batch uses (issue 13)."""
from __future__ import annotations

import pytest

from integrations.attendance.student_bots import StudentBots
from integrations.settings import load_settings
from integrations.telegram.bots import student_bot_for_batches

from .appkit import ASHA, CLASS, make_app

STUDENT = "111111:AAEthestudentbottokenxxxxxxxxxxxxxxx"
SECOND = "222222:AAEanotherstudentbottokenxxxxxxxxxx"
OPENED = ("✅ Session open for Python (PFS-101, PFS-102), 6 students.\n\nCode: {code}\n\nValid until {until}. "
          "Students send this code to the student bot.")


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    for name in ("STUDENT_BOT_TOKEN", "STUDENT_BOT_TOKENS"):
        monkeypatch.delenv(name, raising=False)


def test_the_directory_takes_the_bots_from_the_settings_without_secrets():
    bots = StudentBots.from_settings(load_settings(app_env="test", student_bot_token=STUDENT,
                                                   student_bot_tokens=f"{SECOND},{STUDENT}"))
    assert bots.names == ["student", "student-2"] and bots.several
    assert "AAE" not in repr(vars(bots))
    one = StudentBots.from_settings(load_settings(app_env="test"))
    assert one.names == ["student"] and not one.several
    assert one.describe(["PFS-101", "PFS-102"]) == ""  # one bot: nothing to say


def test_the_directory_spreads_batches_by_bot_id_and_names_them_by_username():
    bots = StudentBots({"student": 111111, "student-2": 222222})
    sizes = {"PFS-101": 4, "PFS-102": 2}
    assert bots.describe(["PFS-101", "PFS-102"], sizes) == ""  # usernames not known yet: no wrong name
    bots.set_usernames({"teacher": "t_bot", "student": "@s1_bot", "student-2": "s2_bot"})
    assert bots.username("student") == "s1_bot" and bots.username("teacher") is None
    assignment = bots.assign(["PFS-101", "PFS-102"], sizes)
    by_id = student_bot_for_batches(["PFS-101", "PFS-102"], [111111, 222222], sizes=sizes)
    assert assignment == {b: {111111: "student", 222222: "student-2"}[i] for b, i in by_id.items()}
    assert sorted(assignment.values()) == ["student", "student-2"]  # two batches, two bots: one each
    at = {b: "@" + bots.username(name) for b, name in assignment.items()}  # type: ignore[operator]
    assert bots.describe(["PFS-101", "PFS-102"], sizes) == (
        f"Students check in with: PFS-101 → {at['PFS-101']}; PFS-102 → {at['PFS-102']}")
    assert bots.describe(["PFS-101"]) == f"Students check in with {at['PFS-101']}"


async def open_two_batches(sim) -> list[str]:  # type: ignore[no-untyped-def]
    for line in ("/start", "/contact +919848000001", "asha.rao@example.edu", "demo-pass-1",
                 "/tap 📝 Take attendance", "/tap PFS-101", "/tap PFS-102", "/tap Done ✔", "/tap Python",
                 "/tap 10 min", "/tap 50"):
        await sim.send(ASHA, line)
    return await sim.send(ASHA, f"/location {CLASS} 5")


async def test_with_two_student_bots_the_session_message_names_each_batchs_bot():
    app, sim = make_app(student_bot_token=STUDENT, student_bot_tokens=SECOND)
    app.services.student_bots.set_usernames({"student": "pfs_check_in_bot", "student-2": "pfs_check_in_2_bot"})
    await app.start()
    replies = await open_two_batches(sim)
    conv = await app.engine.store.get(("teacher", ASHA.user_id))
    line = conv.data["student_bots"]  # what open_session provided
    assert line.startswith("Students check in with: ") and "@pfs_check_in_bot" in line
    assert "@pfs_check_in_2_bot" in line and "PFS-101 → @" in line and "PFS-102 → @" in line
    code, until = conv.data["otp"], conv.data["expires_at"]
    assert replies == [OPENED.format(code=code, until=until), line]  # the open text unchanged, then the bots
    await app.stop()


async def test_with_one_student_bot_the_session_message_is_unchanged_and_nothing_follows():
    app, sim = make_app(student_bot_token=STUDENT)
    app.services.student_bots.set_usernames({"student": "pfs_check_in_bot"})
    await app.start()
    replies = await open_two_batches(sim)
    conv = await app.engine.store.get(("teacher", ASHA.user_id))
    assert conv.data["student_bots"] == ""
    assert replies == [OPENED.format(code=conv.data["otp"], until=conv.data["expires_at"])]
    assert conv.state == "session_open"
    await app.stop()
