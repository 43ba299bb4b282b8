"""The send queue against a fake client that enforces Telegram's limits, on a virtual clock.

Each test runs the real TelegramSender/BotQueue/aiolimiter on ``VirtualClockLoop``: times
asserted are virtual seconds, so they do not depend on the machine.
"""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiolimiter import AsyncLimiter
from pyrogram.errors import FloodWait, InternalServerError, MessageIdInvalid, UserIsBlocked

from engine.types import Button, Outgoing, SendText
from integrations.telegram.journal import MemoryReplyJournal
from integrations.telegram.sender import TelegramSender
from tests.fakes.fake_pyrogram import FakePyrogramClient
from tests.fakes.virtual_clock import run_virtual


def out(chat: int, *texts: str, bot: str = "student") -> Outgoing:
    return Outgoing(bot, chat, tuple(SendText(t) for t in texts), request_id=f"r{chat}")


async def started(fake: FakePyrogramClient, **options: Any) -> TelegramSender:
    sender = TelegramSender({"student": fake}, **options)
    await sender.start()
    return sender


async def answer(sender: TelegramSender, chat: int, *texts: str) -> None:
    """A step answering user input: the transport notes the input, the engine delivers."""
    sender.note_input("student", chat)
    await sender.deliver(out(chat, *texts))


def test_the_global_budget_is_smooth_and_never_bursts():
    async def main() -> tuple[float, FakePyrogramClient]:
        fake = FakePyrogramClient("student")
        sender = await started(fake, global_rate=30)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for chat in range(300):
            await answer(sender, chat, f"hello {chat}")
        assert await sender.flush(60)
        return loop.time() - start, fake

    took, fake = run_virtual(main)
    assert not fake.flood_waits and fake.max_in_window <= 30
    assert len(fake.calls) == 300
    assert 299 / 30 - 0.01 <= took <= 300 / 30 + 0.1  # one message every 1/30 s, from the first


def test_the_fake_catches_the_old_bursting_limiter():
    """aiolimiter's AsyncLimiter(30, 1), what the transport used before, floods at start."""
    async def main() -> FakePyrogramClient:
        fake = FakePyrogramClient("student")
        limiter = AsyncLimiter(30, 1)

        async def one(chat: int) -> None:
            async with limiter:
                try:
                    await fake.send_message(chat, "x")
                except FloodWait:
                    pass

        await asyncio.gather(*(one(chat) for chat in range(120)))
        return fake

    fake = run_virtual(main)
    assert fake.flood_waits, "the fake must reject the burst the old limiter allowed"


def test_one_chat_gets_its_burst_then_one_per_second():
    async def main() -> list[float]:
        fake = FakePyrogramClient("student")
        sender = await started(fake, per_chat_rate=1.0, chat_burst=2)
        for i in range(6):
            await answer(sender, 7, f"m{i}")
        assert await sender.flush(60)
        return [t for t, _, _ in fake.calls]

    times = run_virtual(main)
    # the burst of 2 (spaced by the bot budget, 1/30 s), then one a second
    assert [round(t - times[0], 3) for t in times] == [0.0, 0.033, 1.0, 2.0, 3.0, 4.0]


def test_a_waiting_chat_does_not_hold_back_the_others():
    async def main() -> FakePyrogramClient:
        fake = FakePyrogramClient("student")
        sender = await started(fake, chat_burst=1)
        for i in range(5):
            await answer(sender, 1, f"busy {i}")
        await answer(sender, 2, "other")
        assert await sender.flush(60)
        return fake

    fake = run_virtual(main)
    sent_to_2 = next(t for t, _, chat in fake.calls if chat == 2)
    assert sent_to_2 - fake.calls[0][0] < 0.1  # not behind chat 1's four paced messages


def test_order_per_chat_with_many_sends_in_flight():
    async def main() -> FakePyrogramClient:
        fake = FakePyrogramClient("student", latency=0.3)
        sender = await started(fake, senders=8, per_chat_rate=50, chat_burst=3)
        fake.limits.chat_rate, fake.limits.chat_burst = 50, 3
        for step in range(3):
            for chat in range(40):
                await answer(sender, chat, f"{chat}:{step}")
        assert await sender.flush(120)
        return fake

    fake = run_virtual(main)
    for chat in range(40):
        assert fake.texts(chat) == [f"{chat}:0", f"{chat}:1", f"{chat}:2"]
    assert not fake.flood_waits


def test_flood_wait_pauses_the_whole_bot_and_the_message_goes_first_after():
    async def main() -> tuple[FakePyrogramClient, TelegramSender, float]:
        fake = FakePyrogramClient("student")
        sender = await started(fake)
        fake.fail_next("send_message", FloodWait(value=7))
        start = asyncio.get_running_loop().time()
        await answer(sender, 1, "first")
        await asyncio.sleep(0.5)
        await answer(sender, 2, "second")
        assert await sender.flush(60)
        return fake, sender, start

    fake, sender, start = run_virtual(main)
    assert [chat for _, _, chat in fake.calls] == [1, 2]
    assert fake.calls[0][0] - start >= 7.0  # nothing went out during the pause
    assert sender.stats()["student"]["flood_waits"] == 1


def test_transient_failures_are_retried_with_back_off():
    async def main() -> tuple[FakePyrogramClient, float, dict]:
        fake = FakePyrogramClient("student")
        sender = await started(fake)
        fake.fail_next("send_message", InternalServerError(), OSError("reset"))
        start = asyncio.get_running_loop().time()
        await answer(sender, 1, "hello")
        assert await sender.flush(60)
        return fake, start, sender.stats()["student"]

    fake, start, stats = run_virtual(main)
    assert fake.texts(1) == ["hello"]
    assert fake.calls[0][0] - start >= 3.0  # 1 s then 2 s of back-off
    assert stats["retries"] == 2 and stats["failed"] == 0


def test_a_reply_that_keeps_failing_is_recorded_not_retried_forever():
    async def main() -> tuple[FakePyrogramClient, MemoryReplyJournal, dict]:
        fake = FakePyrogramClient("student")
        journal = MemoryReplyJournal()
        sender = await started(fake, journal=journal, max_attempts=3)
        fake.fail_next("send_message", *(OSError("down") for _ in range(3)), chat_id=1)
        await answer(sender, 1, "lost")
        await answer(sender, 2, "fine")
        assert await sender.flush(60)
        return fake, journal, sender.stats()["student"]

    fake, journal, stats = run_virtual(main)
    assert fake.texts(1) == [] and fake.texts(2) == ["fine"]
    assert stats["failed"] == 1 and stats["retries"] == 2

    async def check() -> None:
        (failed,) = await journal.failed()
        assert failed.entry.chat_id == 1 and failed.reason == "OSError"
        assert await journal.pending() == []

    run_virtual(check)


def test_a_refusal_is_recorded_at_once():
    async def main() -> dict:
        fake = FakePyrogramClient("student")
        sender = await started(fake)
        fake.fail_next("send_message", UserIsBlocked())
        await answer(sender, 1, "blocked")
        assert await sender.flush(60)
        return sender.stats()["student"]

    stats = run_virtual(main)
    assert stats["failed"] == 1 and stats["retries"] == 0


def test_a_follow_up_joins_a_message_still_waiting_in_the_queue():
    async def main() -> FakePyrogramClient:
        fake = FakePyrogramClient("student")
        sender = await started(fake, chat_burst=1)
        await answer(sender, 1, "prompt")
        await answer(sender, 1, "🎥 Video received")  # paced: waits 1 s behind the prompt
        await sender.deliver(out(1, "✅ Marked present"))  # the verdict: no user input since
        assert await sender.flush(60)
        return fake

    fake = run_virtual(main)
    assert fake.texts(1) == ["prompt", "🎥 Video received\n\n✅ Marked present"]
    assert fake.edits(1) == 0


def test_a_follow_up_to_a_sent_message_is_appended_by_an_edit():
    async def main() -> FakePyrogramClient:
        fake = FakePyrogramClient("student")
        sender = await started(fake)
        await answer(sender, 1, "🎥 Video received")
        assert await sender.flush(60)
        await asyncio.sleep(1.5)
        await sender.deliver(out(1, "✅ Marked present"))
        assert await sender.flush(60)
        return fake

    fake = run_virtual(main)
    assert fake.texts(1) == ["🎥 Video received\n\n✅ Marked present"]
    assert fake.messages(1) == 1 and fake.edits(1) == 1


@pytest.mark.parametrize("case", ["input since", "too old", "had a keyboard"])
def test_when_a_follow_up_is_a_new_message(case):
    async def main() -> FakePyrogramClient:
        fake = FakePyrogramClient("student")
        sender = await started(fake)
        sender.note_input("student", 1)
        keyboard = [[Button("Share", "location")]] if case == "had a keyboard" else None
        await sender.deliver(Outgoing("student", 1, (SendText("first", keyboard=keyboard),)))
        assert await sender.flush(60)
        if case == "input since":
            sender.note_input("student", 1)
        await asyncio.sleep(120 if case == "too old" else 1)
        await sender.deliver(out(1, "second"))
        assert await sender.flush(60)
        return fake

    fake = run_virtual(main)
    assert fake.texts(1) == ["first", "second"] and fake.edits(1) == 0


def test_a_failed_append_falls_back_to_a_new_message():
    async def main() -> FakePyrogramClient:
        fake = FakePyrogramClient("student")
        sender = await started(fake)
        await answer(sender, 1, "🎥 Video received")
        assert await sender.flush(60)
        fake.fail_next("edit_message_text", MessageIdInvalid())  # e.g. the user deleted it
        await sender.deliver(out(1, "✅ Marked present"))
        assert await sender.flush(60)
        return fake

    fake = run_virtual(main)
    assert fake.texts(1) == ["🎥 Video received", "✅ Marked present"]


def test_replies_journaled_by_a_process_that_died_are_sent_at_the_next_start_in_order():
    journal = MemoryReplyJournal()

    async def died() -> None:
        sender = TelegramSender({"student": FakePyrogramClient("student")}, journal=journal)
        # The engine saved the steps and handed their replies over; the process dies before the
        # sender ran (it was never started): nothing was sent.
        for chat, text in ((1, "a1"), (2, "b1"), (1, "a2")):
            await sender.deliver(out(chat, text))

    run_virtual(died)

    async def restarted() -> FakePyrogramClient:
        fake = FakePyrogramClient("student")
        sender = TelegramSender({"student": fake}, journal=journal)
        assert await sender.start() == 3
        assert await sender.flush(60)
        return fake

    fake = run_virtual(restarted)
    assert fake.texts(1) == ["a1", "a2"] and fake.texts(2) == ["b1"]

    async def empty() -> list:
        return await journal.pending()

    assert run_virtual(empty) == []


def test_stats_and_health_report_depth_rate_and_waits():
    async def main() -> tuple[dict, dict, dict]:
        fake = FakePyrogramClient("student")
        sender = await started(fake, global_rate=10)
        for chat in range(40):
            await answer(sender, chat, "x")
        await asyncio.sleep(2.05)
        during = sender.stats()["student"]
        assert await sender.flush(60)
        return during, sender.stats()["student"], sender.health()

    during, after, health = run_virtual(main)
    assert during["depth"] > 0 and during["send_rate"] > 0
    assert after["depth"] == 0 and after["sent"] == 40
    assert after["reply_wait_p95_s"] >= 3.5  # the 40th waited ~3.9 s at 10/s
    assert health["ok"] and health["bots"]["student"]["attached"]
