"""Each reply action becomes the exact raw MTProto call Telegram expects."""
from __future__ import annotations

import logging

import pytest
from pyrogram import raw
from pyrogram.errors import FloodWait, MessageNotModified, UserIsBlocked

from engine.types import (
    AnswerCallback,
    Button,
    DeleteMessage,
    EditText,
    InlineButton,
    Outgoing,
    SendDocument,
    SendText,
)
from integrations.foundation.logs import RequestIdFilter
from integrations.telegram.sender import TelegramSender, split_text
from tests.telegram.conftest import TEACHER_TOKEN

F = raw.functions.messages
CHAT = 777


def out(*actions, request_id: str = "req-1", bot: str = "teacher") -> Outgoing:
    return Outgoing(bot=bot, chat_id=CHAT, actions=tuple(actions), request_id=request_id)


@pytest.fixture
def sender(client, recorder, fast_sleep) -> TelegramSender:
    return TelegramSender({"teacher": client}, per_chat_rate=1000, global_rate=1000, sleep=fast_sleep)


async def test_plain_text_is_literal_without_markup(sender, recorder):
    ids = await sender.deliver(out(SendText("Hi *student_01*, welcome_")))
    (call,) = recorder.of(F.SendMessage)
    assert call.message == "Hi *student_01*, welcome_"  # parse mode disabled: nothing eaten
    assert call.entities is None and call.reply_markup is None
    assert call.peer == raw.types.InputPeerUser(user_id=CHAT, access_hash=42)
    assert call.no_webpage is True
    assert ids == [100 + len(call.message) % 7]


async def test_reply_keyboard_requests_contact_and_location(sender, recorder):
    keyboard = [[Button("Share phone", request="contact")], [Button("Send location", request="location"), Button("Cancel")]]
    await sender.deliver(out(SendText("Share please", keyboard=keyboard)))
    markup = recorder.of(F.SendMessage)[0].reply_markup
    assert isinstance(markup, raw.types.ReplyKeyboardMarkup)
    assert markup.resize is True and markup.single_use is True
    row1, row2 = markup.rows
    assert row1.buttons == [raw.types.KeyboardButtonRequestPhone(text="Share phone")]
    assert row2.buttons == [raw.types.KeyboardButtonRequestGeoLocation(text="Send location"),
                            raw.types.KeyboardButton(text="Cancel")]


async def test_inline_keyboard_carries_callback_data(sender, recorder):
    inline = [[InlineButton("Batch A", "batch:A"), InlineButton("Batch B", "batch:B")]]
    await sender.deliver(out(SendText("Pick", inline=inline)))
    markup = recorder.of(F.SendMessage)[0].reply_markup
    assert isinstance(markup, raw.types.ReplyInlineMarkup)
    assert markup.rows[0].buttons == [
        raw.types.KeyboardButtonCallback(text="Batch A", data=b"batch:A"),
        raw.types.KeyboardButtonCallback(text="Batch B", data=b"batch:B"),
    ]


async def test_remove_keyboard(sender, recorder):
    await sender.deliver(out(SendText("Done", remove_keyboard=True)))
    assert isinstance(recorder.of(F.SendMessage)[0].reply_markup, raw.types.ReplyKeyboardHide)


async def test_inline_wins_over_reply_keyboard(sender, recorder, caplog):
    await sender.deliver(out(SendText("x", keyboard=[[Button("a")]], inline=[[InlineButton("b", "b")]])))
    assert isinstance(recorder.of(F.SendMessage)[0].reply_markup, raw.types.ReplyInlineMarkup)
    assert "inline only" in caplog.text


async def test_edit_text_with_inline_markup(sender, recorder):
    ids = await sender.deliver(out(EditText(55, "Selected: A ✓", inline=[[InlineButton("Done", "done")]])))
    (call,) = recorder.of(F.EditMessage)
    assert call.id == 55 and call.message == "Selected: A ✓"
    assert call.reply_markup.rows[0].buttons == [raw.types.KeyboardButtonCallback(text="Done", data=b"done")]
    assert ids == [55]


async def test_answer_callback(sender, recorder):
    await sender.deliver(out(AnswerCallback("987654321", text="Saved")))
    (call,) = recorder.of(F.SetBotCallbackAnswer)
    assert call.query_id == 987654321 and call.message == "Saved" and not call.alert


async def test_answer_callback_without_text(sender, recorder):
    await sender.deliver(out(AnswerCallback("1")))
    assert recorder.of(F.SetBotCallbackAnswer)[0].message is None


async def test_delete_message(sender, recorder):
    await sender.deliver(out(DeleteMessage(5)))
    (call,) = recorder.of(F.DeleteMessages)
    assert call.id == [5] and call.revoke is True


async def test_send_document_uploads_in_memory_bytes(sender, recorder):
    await sender.deliver(out(SendDocument("report.csv", b"id,present\n1,yes\n", caption="Report")))
    assert recorder.uploads == [("report.csv", b"id,present\n1,yes\n")]
    (call,) = recorder.of(F.SendMedia)
    media = call.media
    assert isinstance(media, raw.types.InputMediaUploadedDocument)
    assert media.file.name == "report.csv" and media.mime_type == "text/csv"
    assert raw.types.DocumentAttributeFilename(file_name="report.csv") in media.attributes
    assert call.message == "Report"


async def test_actions_of_one_outgoing_go_in_order(sender, recorder):
    await sender.deliver(out(AnswerCallback("1"), EditText(9, "e"), SendText("s"), DeleteMessage(3)))
    assert [type(c) for c in recorder.calls] == [F.SetBotCallbackAnswer, F.EditMessage, F.SendMessage, F.DeleteMessages]


async def test_long_text_is_split_and_markup_goes_on_the_last_part(sender, recorder):
    text = ("line of text\n" * 700).strip()  # > 4096 characters
    await sender.deliver(out(SendText(text, remove_keyboard=True)))
    calls = recorder.of(F.SendMessage)
    assert len(calls) == 3 and all(len(c.message) <= 4096 for c in calls)
    assert "\n".join(c.message for c in calls) == text
    assert [c.reply_markup is not None for c in calls] == [False, False, True]


def test_split_text_hard_cut_without_newlines():
    assert split_text("a" * 10, limit=4) == ["aaaa", "aaaa", "aa"]


async def test_flood_wait_sleeps_then_retries_once(sender, recorder, fast_sleep):
    recorder.queue(F.SendMessage, FloodWait(value=1))
    ids = await sender.deliver(out(SendText("hello")))
    assert fast_sleep.slept == [1.0]
    assert len(recorder.of(F.SendMessage)) == 2 and ids[0] is not None


async def test_second_flood_wait_is_logged_and_later_actions_still_sent(sender, recorder, fast_sleep, caplog):
    recorder.queue(F.SendMessage, FloodWait(value=3), FloodWait(value=3))
    ids = await sender.deliver(out(SendText("a"), DeleteMessage(4)))
    assert fast_sleep.slept == [3.0]
    assert ids[0] is None and len(recorder.of(F.DeleteMessages)) == 1
    assert "SendText to chat 777" in caplog.text


async def test_flood_wait_over_cap_is_not_slept(client, recorder, fast_sleep):
    sender = TelegramSender({"teacher": client}, max_flood_wait=60, sleep=fast_sleep)
    recorder.queue(F.SendMessage, FloodWait(value=3600))
    assert await sender.deliver(out(SendText("a"))) == [None]
    assert fast_sleep.slept == []


async def test_send_failure_is_logged_with_request_id_and_never_raises(sender, recorder, caplog):
    caplog.handler.addFilter(RequestIdFilter())
    recorder.queue(F.SendMessage, UserIsBlocked())
    with caplog.at_level(logging.WARNING):
        ids = await sender.deliver(out(SendText("a"), SendText("b"), request_id="rq-42"))
    assert ids[0] is None and ids[1] is not None
    record = next(r for r in caplog.records if "failed" in r.getMessage())
    assert record.request_id == "rq-42" and "USER_IS_BLOCKED" in record.getMessage()
    assert TEACHER_TOKEN not in caplog.text


async def test_unexpected_exception_is_contained(sender, recorder, caplog):
    recorder.queue(F.EditMessage, RuntimeError("boom"))
    assert await sender.deliver(out(EditText(1, "x"), AnswerCallback("2"))) == [None, None]
    assert len(recorder.of(F.SetBotCallbackAnswer)) == 1
    assert "EditText to chat 777 (bot teacher) failed" in caplog.text


async def test_message_not_modified_counts_as_done(sender, recorder):
    recorder.queue(F.EditMessage, MessageNotModified())
    assert await sender.deliver(out(EditText(8, "same"))) == [8]


async def test_unknown_bot_is_dropped_and_logged(sender, recorder, caplog):
    assert await sender.deliver(out(SendText("x"), bot="nobody")) == [None]
    assert recorder.calls == [] and "no running Telegram client for bot 'nobody'" in caplog.text


async def test_oversized_callback_data_is_refused_locally(sender, recorder, caplog):
    await sender.deliver(out(SendText("x", inline=[[InlineButton("b", "x" * 65)]])))
    assert recorder.calls == [] and "64 bytes" in caplog.text
