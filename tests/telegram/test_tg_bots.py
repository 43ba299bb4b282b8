"""Several student bots: settings, which bot a batch uses, and replies through the right bot."""
from __future__ import annotations

from collections import Counter

import pytest

from engine.types import Outgoing, SendText
from integrations.settings import SettingsError, load_settings
from integrations.telegram.bots import (
    MemoryChatRoutes,
    describe_student_bots,
    physical_names,
    student_bot_for_batches,
)
from integrations.telegram.config import require_telegram_settings
from integrations.telegram.sender import TelegramSender
from tests.fakes.fake_pyrogram import FakePyrogramClient
from tests.fakes.virtual_clock import run_virtual
from tests.telegram.conftest import API_HASH, STUDENT_TOKEN, TEACHER_TOKEN

SECOND = "222222:AAEanotherstudentbottokenxxxxxxxxxx"
THIRD = "333333:AAEathirdstudentbottokenxxxxxxxxxxx"
VALID = dict(api_id=12345, api_hash=API_HASH, teacher_bot_token=TEACHER_TOKEN, student_bot_token=STUDENT_TOKEN)


@pytest.fixture(autouse=True)
def no_env(monkeypatch, tmp_path):
    for name in ("API_ID", "API_HASH", "TEACHER_BOT_TOKEN", "STUDENT_BOT_TOKEN", "STUDENT_BOT_TOKENS",
                 "TELEGRAM_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_student_bot_tokens_add_student_bots():
    config = require_telegram_settings(load_settings(**VALID, student_bot_tokens=f"{SECOND}, {THIRD}"))
    assert list(config.bot_tokens) == ["teacher", "student", "student-2", "student-3"]
    assert config.bot_tokens["student-3"] == THIRD
    assert config.flow_of == {"teacher": "teacher", "student": "student", "student-2": "student",
                              "student-3": "student"}
    assert physical_names("student", 3) == ["student", "student-2", "student-3"]


def test_student_bot_tokens_from_the_environment(monkeypatch):
    monkeypatch.setenv("STUDENT_BOT_TOKENS", f"{STUDENT_TOKEN},{SECOND}")  # the first one repeated: once
    monkeypatch.setenv("TELEGRAM_WORKERS", "24")
    config = require_telegram_settings(load_settings(**VALID))
    assert list(config.bot_tokens) == ["teacher", "student", "student-2"] and config.workers == 24


@pytest.mark.parametrize("extra, message", [
    ("123:bad", "STUDENT_BOT_TOKENS: entry 1 is malformed"),
    (f"{SECOND},222222:AAEsamebotdifferentsecretxxxxxxxxxxxx", "the same bot is listed twice"),
    (TEACHER_TOKEN, "the teacher bot cannot also be a student bot"),
])
def test_bad_student_bot_tokens_are_named(extra, message):
    with pytest.raises(SettingsError, match=message) as err:
        require_telegram_settings(load_settings(**VALID, student_bot_tokens=extra))
    assert "AAE" not in str(err.value)  # no secret echoed


def test_a_bad_transport_setting_is_named(monkeypatch):
    monkeypatch.setenv("TELEGRAM_WORKERS", "0")
    with pytest.raises(SettingsError, match="TELEGRAM_WORKERS"):
        require_telegram_settings(load_settings(**VALID))


def test_batches_spread_evenly_and_stably_over_the_bots():
    bots = [111111, 222222, 333333]
    batches = [f"PFS-{i:03d}" for i in range(12)]
    first = student_bot_for_batches(batches, bots)
    assert Counter(first.values()) == Counter({111111: 4, 222222: 4, 333333: 4})
    assert student_bot_for_batches(list(reversed(batches)), list(reversed(bots))) == first  # order-free
    one = student_bot_for_batches(["PFS-001"], bots)
    assert one == student_bot_for_batches(["PFS-001"], bots)  # stable
    sizes = {"A": 500, "B": 250, "C": 250}
    by_size = student_bot_for_batches(["A", "B", "C"], bots[:2], sizes=sizes)
    load = Counter()
    for batch, bot in by_size.items():
        load[bot] += sizes[batch]
    assert sorted(load.values()) == [500, 500]
    assert student_bot_for_batches(["A", "B"], bots, pinned={"A": 333333})["A"] == 333333
    with pytest.raises(ValueError):
        student_bot_for_batches(["A"], [])


def test_adding_a_bot_moves_only_some_single_batches():
    batches = [f"B{i}" for i in range(60)]
    before = {b: student_bot_for_batches([b], [1, 2, 3])[b] for b in batches}
    after = {b: student_bot_for_batches([b], [1, 2, 3, 4])[b] for b in batches}
    moved = [b for b in batches if before[b] != after[b]]
    assert all(after[b] == 4 for b in moved) and 0 < len(moved) < 30


def test_the_teachers_line_names_the_bots():
    assert describe_student_bots({"A": 1, "B": 1}, {1: "x_bot"}) == "Students check in with @x_bot"
    assert describe_student_bots({"A": 1, "B": 2}, {1: "x_bot", 2: "y_bot"}) == \
        "Students check in with: A → @x_bot; B → @y_bot"


def test_replies_go_through_the_bot_the_student_wrote_to_also_after_a_restart():
    routes = MemoryChatRoutes()

    async def first_run() -> dict[str, FakePyrogramClient]:
        fakes = {b: FakePyrogramClient(b) for b in ("student", "student-2")}
        sender = TelegramSender(fakes, bots={"student": "student", "student-2": "student"}, routes=routes)
        await sender.start()
        sender.note_input("student-2", 7)  # chat 7 wrote to the second bot
        await sender.deliver(Outgoing("student", 7, (SendText("hello 7"),)))
        await sender.deliver(Outgoing("student", 8, (SendText("hello 8"),)))  # never wrote: the first bot
        assert await sender.flush(10)
        return fakes

    fakes = run_virtual(first_run)
    assert fakes["student-2"].texts(7) == ["hello 7"] and fakes["student"].texts(8) == ["hello 8"]
    assert fakes["student"].texts(7) == []

    async def after_restart() -> dict[str, FakePyrogramClient]:
        fakes = {b: FakePyrogramClient(b) for b in ("student", "student-2")}
        sender = TelegramSender(fakes, bots={"student": "student", "student-2": "student"}, routes=routes)
        await sender.start()
        await sender.deliver(Outgoing("student", 7, (SendText("✅ Marked present"),)))  # a verdict, no input
        assert await sender.flush(10)
        return fakes

    fakes = run_virtual(after_restart)
    assert fakes["student-2"].texts(7) == ["✅ Marked present"]
