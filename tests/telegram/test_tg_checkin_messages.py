"""How many Telegram messages a real check-in takes: the real flows and hooks (tests/flows/appkit.py)
through the real sender into fake clients (tests/fakes/fake_pyrogram.py).

"Today" is what the transport sent before coalescing: one message per text or document the
engine produced, counted from a plain sink on the same run.
"""
from __future__ import annotations

import asyncio

from engine.simulator import SimUser
from engine.types import Outgoing, SendDocument, SendText
from integrations.telegram.sender import TelegramSender
from tests.fakes.fake_pyrogram import FakeLimits, FakePyrogramClient
from tests.flows.appkit import ASHA, CLASS, NEAR, STUDENTS, make_app

VIDEO = "/video flows/scripts/media/hello.mp4"
TEACHER_INPUTS = ("/start", "/contact +919848000001", "asha.rao@example.edu", "demo-pass-1",
                  "/tap 📝 Take attendance", "/tap PFS-101", "/tap Done ✔", "/tap Python", "/tap 10 min", "/tap 50",
                  f"/location {CLASS} 5")


async def test_a_student_check_in_is_five_messages_and_the_teacher_no_more_than_before() -> None:
    app, sim = make_app()
    fast = FakeLimits(global_limit=1000, chat_rate=1000, chat_burst=100)
    fakes = {bot: FakePyrogramClient(bot, limits=fast) for bot in ("teacher", "student")}
    sender = TelegramSender(fakes, global_rate=500, per_chat_rate=500, chat_burst=50)
    today: dict[tuple[str, int], list[str]] = {}

    async def old_renderer(out: Outgoing) -> None:
        for action in out.actions:
            if isinstance(action, (SendText, SendDocument)):
                today.setdefault((out.bot, out.chat_id), []).append(getattr(action, "text", "") or action.caption)

    app.add_sink(sender.deliver)
    app.add_sink(old_renderer)
    await app.start()
    await sender.start()

    async def say(user: SimUser, line: str) -> None:
        sender.note_input(user.bot, user.chat)  # what the transport does for every user update
        await sim.send(user, line)
        assert await sender.flush(10)

    for line in TEACHER_INPUTS:
        await say(ASHA, line)
    opened = fakes["teacher"].texts(ASHA.chat)[-1]
    code = opened.split("Code: ")[1][:6]

    ravi, phone = STUDENTS["ravi"]
    for line in ("/start", f"/contact {phone}", code, NEAR, VIDEO):
        await say(ravi, line)
    await asyncio.wait_for(fakes["student"].wait_for(ravi.chat, "✅ Marked present"), 10)
    assert await sender.flush(10)

    student = fakes["student"]
    said_today = today[("student", ravi.chat)]
    assert len(said_today) == 10  # the figure this issue started from
    assert student.messages(ravi.chat) <= 5
    shown = "\n\n".join(student.texts(ravi.chat))
    position = 0
    for text in said_today:  # nothing lost, nothing reordered
        position = shown.index(text, position) + len(text)
    # Sent unhurried, the acknowledgement went at once and the verdict was appended to it by an edit.
    assert student.texts(ravi.chat)[-1].startswith("🎥 Video received, checking your face…\n\n✅ Marked present")
    assert student.edits(ravi.chat) == 1

    teacher = fakes["teacher"]
    assert teacher.messages(ASHA.chat) <= len(today[("teacher", ASHA.chat)])  # 10 against 11
    assert not student.flood_waits and not teacher.flood_waits
    await sender.stop()
    await app.stop()
