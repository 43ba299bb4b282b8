"""The transport's MongoDB state: journal, update states, routes; and the crash case."""
from __future__ import annotations

import pytest

from engine.types import Button, DeleteMessage, EditText, InlineButton, Outgoing, SendDocument, SendText
from integrations.storage.connection import connect_db
from tests.conftest import fresh_db_uri
from integrations.telegram.catchup import UpdateState
from integrations.telegram.config import TelegramConfig
from integrations.telegram.journal import decode_action, encode_action
from integrations.telegram.mongo_state import MongoReplyJournal, TelegramReply, mongo_stores
from integrations.telegram.runtime import default_stores
from integrations.telegram.sender import TelegramSender
from tests.fakes.fake_pyrogram import FakePyrogramClient
from tests.fakes.virtual_clock import run_virtual
from tests.telegram.conftest import API_HASH, TEACHER_TOKEN

ACTIONS = (
    SendText("Share", keyboard=[[Button("📱 Share", "contact"), Button("No")]]),
    SendText("Pick", inline=[[InlineButton("A", "1|o0")]], remove_keyboard=False),
    SendText("bye", remove_keyboard=True),
    EditText(5, "edited", inline=[[InlineButton("Done", "1|done")]]),
    DeleteMessage(9),
    SendDocument("report.csv", b"id,status\n\x00\xff", caption="Report"),
)


@pytest.fixture(autouse=True)
def db():
    connect_db(fresh_db_uri("tg_state"))
    yield


def test_actions_round_trip_through_the_codec():
    assert tuple(decode_action(encode_action(a)) for a in ACTIONS) == ACTIONS


async def test_journal_keeps_order_acks_and_failures():
    journal = mongo_stores()["journal"]
    first = await journal.append("student-2", "student", 7, ACTIONS, "r1")
    second = await journal.append("teacher", "teacher", 8, (SendText("x"),), "r2")
    assert second.seq == first.seq + 1
    pending = await journal.pending()
    assert [(e.seq, e.bot, e.logical, e.chat_id, e.request_id) for e in pending] == [
        (first.seq, "student-2", "student", 7, "r1"), (second.seq, "teacher", "teacher", 8, "r2")]
    assert pending[0].actions == ACTIONS
    await journal.fail(first.seq, "UserIsBlocked: blocked")
    await journal.ack(second.seq)
    assert await journal.pending() == []
    (failed,) = await journal.failed()
    assert failed.entry.seq == first.seq and failed.reason.startswith("UserIsBlocked")
    assert TelegramReply.objects.count() == 1  # acknowledged entries are deleted


async def test_a_new_process_continues_the_sequence():
    a = MongoReplyJournal()
    entry = await a.append("student", "student", 1, (SendText("x"),))
    b = MongoReplyJournal()
    assert (await b.append("student", "student", 1, (SendText("y"),))).seq == entry.seq + 1


async def test_update_states_and_routes():
    stores = mongo_stores()
    assert await stores["state_store"].load(42) is None
    await stores["state_store"].save(42, UpdateState(10, 2, 1000))
    await stores["state_store"].save(42, UpdateState(11, 2, 1001))
    assert await stores["state_store"].load(42) == UpdateState(11, 2, 1001)
    await stores["routes"].set("student", 7, "student-2")
    assert await stores["routes"].get("student", 7) == "student-2"
    assert await stores["routes"].get("student", 8) is None


def test_store_mongo_selects_the_mongo_stores(tmp_path):
    config = TelegramConfig(api_id=1, api_hash=API_HASH, bot_tokens={"teacher": TEACHER_TOKEN}, store="mongo")
    assert type(default_stores(config)["journal"]).__name__ == "MongoReplyJournal"


def test_replies_of_a_saved_step_survive_a_crash_before_sending():
    """The process dies right after the engine saved a step and handed its replies over."""
    async def died() -> None:
        sender = TelegramSender({"student": FakePyrogramClient("student")}, journal=MongoReplyJournal())
        await sender.start()
        fake = sender.queues["student"].client
        fake.latency = 5.0  # the send is still on its way when the process dies
        await sender.deliver(Outgoing("student", 7, (SendText("Code accepted."), SendText("Share your location"))))
        await sender.deliver(Outgoing("student", 8, (SendText("Hello"),)))
        # no flush: the loop ends here, as a killed process would

    run_virtual(died)

    async def restarted() -> FakePyrogramClient:
        fake = FakePyrogramClient("student")
        sender = TelegramSender({"student": fake}, journal=MongoReplyJournal())
        assert await sender.start() == 2
        assert await sender.flush(30)
        assert await sender.journal.pending() == []
        return fake

    fake = run_virtual(restarted)
    assert fake.texts(7) == ["Code accepted.\n\nShare your location"] and fake.texts(8) == ["Hello"]
