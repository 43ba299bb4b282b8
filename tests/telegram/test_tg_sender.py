"""Each reply action becomes the exact raw MTProto call Telegram expects (real client, network
intercepted). Queue behaviour (order, limits, FloodWait, retries) is in test_tg_queue.py."""
from __future__ import annotations

import asyncio
import logging

import pytest
from pyrogram import raw
from pyrogram.errors import MessageNotModified, UserIsBlocked

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
from integrations.telegram.coalesce import split_text
from integrations.telegram.sender import TelegramSender
from tests.telegram.conftest import TEACHER_TOKEN

F = raw.functions.messages
CHAT = 777


def out(*actions, request_id: str = "req-1", bot: str = "teacher") -> Outgoing:
    return Outgoing(bot=bot, chat_id=CHAT, actions=tuple(actions), request_id=request_id)


@pytest.fixture
async def sender(client, recorder):
    sender = TelegramSender({"teacher": client}, per_chat_rate=1000, global_rate=1000, chat_burst=10)
    await sender.start()
    yield sender
    await sender.stop()


async def send(sender: TelegramSender, outgoing: Outgoing) -> None:
    """Deliver as the engine does, then wait until the queue has sent it."""
    await sender.deliver(outgoing)
    assert await sender.flush(5)


async def test_plain_text_is_literal_without_markup(sender, recorder):
    await send(sender, out(SendText("Hi *student_01*, welcome_")))
    (call,) = recorder.of(F.SendMessage)
    assert call.message == "Hi *student_01*, welcome_"  # parse mode disabled: nothing eaten
    assert call.entities is None and call.reply_markup is None
    assert call.peer == raw.types.InputPeerUser(user_id=CHAT, access_hash=42)
    assert call.no_webpage is True


async def test_reply_keyboard_requests_contact_and_location(sender, recorder):
    keyboard = [[Button("Share phone", request="contact")], [Button("Send location", request="location"), Button("Cancel")]]
    await send(sender, out(SendText("Share please", keyboard=keyboard)))
    markup = recorder.of(F.SendMessage)[0].reply_markup
    assert isinstance(markup, raw.types.ReplyKeyboardMarkup)
    assert markup.resize is True and markup.single_use is True
    row1, row2 = markup.rows
    assert row1.buttons == [raw.types.KeyboardButtonRequestPhone(text="Share phone")]
    assert row2.buttons == [raw.types.KeyboardButtonRequestGeoLocation(text="Send location"),
                            raw.types.KeyboardButton(text="Cancel")]


async def test_inline_keyboard_carries_callback_data(sender, recorder):
    inline = [[InlineButton("Batch A", "batch:A"), InlineButton("Batch B", "batch:B")]]
    await send(sender, out(SendText("Pick", inline=inline)))
    markup = recorder.of(F.SendMessage)[0].reply_markup
    assert isinstance(markup, raw.types.ReplyInlineMarkup)
    assert markup.rows[0].buttons == [
        raw.types.KeyboardButtonCallback(text="Batch A", data=b"batch:A"),
        raw.types.KeyboardButtonCallback(text="Batch B", data=b"batch:B"),
    ]


async def test_remove_keyboard(sender, recorder):
    await send(sender, out(SendText("Done", remove_keyboard=True)))
    assert isinstance(recorder.of(F.SendMessage)[0].reply_markup, raw.types.ReplyKeyboardHide)


async def test_inline_wins_over_reply_keyboard(sender, recorder, caplog):
    await send(sender, out(SendText("x", keyboard=[[Button("a")]], inline=[[InlineButton("b", "b")]])))
    assert isinstance(recorder.of(F.SendMessage)[0].reply_markup, raw.types.ReplyInlineMarkup)
    assert "inline only" in caplog.text


async def test_edit_text_with_inline_markup(sender, recorder):
    await send(sender, out(EditText(55, "Selected: A ✓", inline=[[InlineButton("Done", "done")]])))
    (call,) = recorder.of(F.EditMessage)
    assert call.id == 55 and call.message == "Selected: A ✓"
    assert call.reply_markup.rows[0].buttons == [raw.types.KeyboardButtonCallback(text="Done", data=b"done")]


async def test_answer_callback(sender, recorder):
    await send(sender, out(AnswerCallback("987654321", text="Saved")))
    (call,) = recorder.of(F.SetBotCallbackAnswer)
    assert call.query_id == 987654321 and call.message == "Saved" and not call.alert


async def test_answer_callback_without_text(sender, recorder):
    await send(sender, out(AnswerCallback("1")))
    assert recorder.of(F.SetBotCallbackAnswer)[0].message is None


async def test_delete_message(sender, recorder):
    await send(sender, out(DeleteMessage(5)))
    (call,) = recorder.of(F.DeleteMessages)
    assert call.id == [5] and call.revoke is True


async def test_send_document_uploads_in_memory_bytes(sender, recorder):
    await send(sender, out(SendDocument("report.csv", b"id,present\n1,yes\n", caption="Report")))
    assert recorder.uploads == [("report.csv", b"id,present\n1,yes\n")]
    (call,) = recorder.of(F.SendMedia)
    media = call.media
    assert isinstance(media, raw.types.InputMediaUploadedDocument)
    assert media.file.name == "report.csv" and media.mime_type == "text/csv"
    assert raw.types.DocumentAttributeFilename(file_name="report.csv") in media.attributes
    assert call.message == "Report"


async def test_actions_of_one_outgoing_go_in_order(sender, recorder):
    await send(sender, out(EditText(9, "e"), SendText("s"), DeleteMessage(3)))
    assert [type(c) for c in recorder.calls] == [F.EditMessage, F.SendMessage, F.DeleteMessages]


async def test_callback_answer_goes_out_at_once_beside_the_queue(sender, recorder):
    await send(sender, out(AnswerCallback("1"), SendText("s")))
    await asyncio.sleep(0.05)
    assert {type(c) for c in recorder.calls} == {F.SetBotCallbackAnswer, F.SendMessage}


async def test_consecutive_texts_of_a_step_are_one_message(sender, recorder):
    await send(sender, out(SendText("Code accepted."), SendText("Now your location", keyboard=[[Button("Send", "location")]])))
    (call,) = recorder.of(F.SendMessage)
    assert call.message == "Code accepted.\n\nNow your location"
    assert isinstance(call.reply_markup, raw.types.ReplyKeyboardMarkup)


async def test_long_text_is_split_and_markup_goes_on_the_last_part(sender, recorder):
    text = ("line of text\n" * 700).strip()  # > 4096 characters
    await send(sender, out(SendText(text, remove_keyboard=True)))
    calls = recorder.of(F.SendMessage)
    assert len(calls) == 3 and all(len(c.message) <= 4096 for c in calls)
    assert "\n".join(c.message for c in calls) == text
    assert [c.reply_markup is not None for c in calls] == [False, False, True]


def test_split_text_hard_cut_without_newlines():
    assert split_text("a" * 10, limit=4) == ["aaaa", "aaaa", "aa"]


async def test_send_failure_is_logged_with_request_id_and_never_raises(sender, recorder, caplog):
    caplog.handler.addFilter(RequestIdFilter())
    recorder.queue(F.SendMessage, UserIsBlocked())
    with caplog.at_level(logging.WARNING):
        await send(sender, out(SendText("a"), DeleteMessage(2), request_id="rq-42"))
    assert len(recorder.of(F.DeleteMessages)) == 1  # the rest of the step still goes
    record = next(r for r in caplog.records if "failed" in r.getMessage())
    assert record.request_id == "rq-42" and "USER_IS_BLOCKED" in record.getMessage()
    assert TEACHER_TOKEN not in caplog.text
    (failed,) = await sender.journal.failed()
    assert "USER_IS_BLOCKED" in failed.reason and failed.entry.chat_id == CHAT


async def test_unexpected_exception_is_contained(sender, recorder, caplog):
    recorder.queue(F.EditMessage, RuntimeError("boom"))
    await send(sender, out(EditText(1, "x"), SendText("after")))
    assert len(recorder.of(F.SendMessage)) == 1
    assert "EditText to chat 777 (bot teacher) failed" in caplog.text


async def test_message_not_modified_counts_as_done(sender, recorder):
    recorder.queue(F.EditMessage, MessageNotModified())
    await send(sender, out(EditText(8, "same")))
    assert await sender.journal.pending() == [] and await sender.journal.failed() == []


async def test_unknown_bot_is_dropped_and_logged(sender, recorder, caplog):
    await send(sender, out(SendText("x"), bot="nobody"))
    assert recorder.calls == [] and "no Telegram bot serves 'nobody'" in caplog.text


async def test_oversized_callback_data_is_refused_locally(sender, recorder, caplog):
    await send(sender, out(SendText("x", inline=[[InlineButton("b", "x" * 65)]])))
    assert recorder.calls == [] and "64 bytes" in caplog.text
