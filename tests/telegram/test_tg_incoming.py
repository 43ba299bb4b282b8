"""Every incoming kind, fed as raw MTProto updates through Pyrogram's own dispatcher."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pyrogram import enums, raw, types

from engine.types import Callback, Command, Contact, Location, Update, VideoNote
from integrations.foundation.logs import request_id_var
from integrations.telegram.mapping import map_callback, map_message, parse_command
from integrations.telegram.transport import BotTransport
from tests.telegram.conftest import (
    NOW,
    USER_ID,
    document_media,
    geo,
    new_message,
    raw_message,
    raw_user,
    settle,
    video_note_media,
    wire,
)

CAP = 4096


class Harness:
    """A started dispatcher with a :class:`BotTransport` installed; ``feed`` returns what was submitted."""

    def __init__(self, client, transport: BotTransport, submitted: asyncio.Queue):
        self.client, self.transport, self.submitted = client, transport, submitted

    async def feed(self, update, users=None, chats=None, *, expect: bool = True) -> Update | None:
        self.client.dispatcher.updates_queue.put_nowait((update, users or {}, chats or {}))
        if not expect:
            await settle(20)
            assert self.submitted.empty()
            return None
        return await asyncio.wait_for(self.submitted.get(), 2)


@pytest.fixture
async def harness(client, recorder, tmp_path, monkeypatch):
    submitted: asyncio.Queue = asyncio.Queue()
    seen_request_ids: list[str] = []

    async def submit(update: Update) -> None:
        seen_request_ids.append(request_id_var.get())
        assert request_id_var.get() == update.request_id  # logs during submit carry the id
        await submitted.put(update)

    monkeypatch.setattr(client, "PARENT_DIR", tmp_path)  # where a non-memory download would go
    transport = BotTransport("student", client, submit, video_max_bytes=CAP)
    await client.dispatcher.start()
    transport.install()
    await settle()
    yield Harness(client, transport, submitted)
    await client.dispatcher.stop()


async def test_text(harness):
    update = await harness.feed(*new_message(raw_message(11, "hello there")))
    assert (update.bot, update.kind, update.payload) == ("student", "text", "hello there")
    assert (update.chat_id, update.user_id, update.message_id, update.first_name) == (USER_ID, USER_ID, 11, "Asha")
    assert update.forwarded is False


@pytest.mark.parametrize("text, expected", [
    ("/start", Command("start")),
    ("/Start@TeacherBot", Command("start")),
    ("/otp 1234", Command("otp", "1234")),
    ("/join@teacherbot  batch A ", Command("join", "batch A")),
])
async def test_commands(harness, text, expected):
    harness.client.me = types.User(id=1, username="TeacherBot")
    update = await harness.feed(*new_message(raw_message(12, text)))
    assert update.kind == "command" and update.payload == expected


async def test_command_for_another_bot_is_ignored(harness):
    harness.client.me = types.User(id=1, username="TeacherBot")
    await harness.feed(*new_message(raw_message(13, "/start@SomeOtherBot")), expect=False)


def test_parse_command_edge_cases():
    assert parse_command("/ not a command") is None
    assert parse_command("hello /start") is None
    assert parse_command("/start@x_bot", "X_Bot") == Command("start")
    assert parse_command("/start@other_bot", "x_bot") == ""


async def test_contact(harness):
    media = raw.types.MessageMediaContact(phone_number="919876543210", first_name="Asha", last_name="K",
                                          vcard="", user_id=USER_ID)
    update = await harness.feed(*new_message(raw_message(14, media=media)))
    assert update.kind == "contact"
    assert update.payload == Contact(phone="919876543210", user_id=USER_ID, first_name="Asha", last_name="K")


async def test_location_keeps_accuracy(harness):
    update = await harness.feed(*new_message(raw_message(15, media=raw.types.MessageMediaGeo(geo=geo(accuracy=12)))))
    assert update.kind == "location"
    assert update.payload == Location(latitude=17.385, longitude=78.4867, horizontal_accuracy=12.0)


async def test_live_location(harness):
    media = raw.types.MessageMediaGeoLive(geo=geo(accuracy=None), period=900)
    update = await harness.feed(*new_message(raw_message(16, media=media)))
    assert update.kind == "location"
    assert update.payload == Location(latitude=17.385, longitude=78.4867, horizontal_accuracy=None, live_period=900)
    assert harness.submitted.empty()  # submitted once, not again by the parsed handler


async def test_live_location_position_edits_are_not_submitted(harness):
    message = raw_message(16, media=raw.types.MessageMediaGeoLive(geo=geo(), period=900))
    users = {USER_ID: wire(raw_user())}
    await harness.feed(wire(raw.types.UpdateEditMessage(message=message, pts=2, pts_count=1)), users, expect=False)


async def test_stopped_live_location_is_not_a_location(harness):
    media = raw.types.MessageMediaGeoLive(geo=raw.types.GeoPointEmpty(), period=900)
    update = await harness.feed(*new_message(raw_message(17, media=media)))
    assert update.kind == "other"




async def test_pyrofork_drops_live_locations(client):
    """Why the transport reads locations from raw TL; if this fails, the library learned live locations."""
    parsed = await types.Message._parse(
        client, wire(raw_message(1, media=raw.types.MessageMediaGeoLive(geo=geo(), period=60))),
        {USER_ID: wire(raw_user())}, {})
    assert parsed.location is None and parsed.media is None


@pytest.mark.parametrize("fwd", [
    raw.types.MessageFwdHeader(date=NOW - 60, from_name="Hidden Sender"),  # hidden account
    raw.types.MessageFwdHeader(date=NOW - 60, from_id=raw.types.PeerUser(user_id=888)),
])
async def test_forwarded(harness, fwd):
    update = await harness.feed(*new_message(raw_message(18, "123456", fwd_from=fwd), raw_user(888, "Other")))
    assert update.kind == "text" and update.forwarded is True


async def test_forwarded_location_is_flagged(harness):
    fwd = raw.types.MessageFwdHeader(date=NOW - 60, from_name="x")
    update = await harness.feed(*new_message(raw_message(19, media=raw.types.MessageMediaGeo(geo=geo()), fwd_from=fwd)))
    assert update.kind == "location" and update.forwarded is True


async def test_video_note_downloaded_in_memory(harness, monkeypatch, tmp_path):
    client = harness.client
    calls: list[dict] = []
    original = client.download_media

    async def spy(message, *args, **kwargs):
        calls.append(kwargs)
        return await original(message, *args, **kwargs)

    async def fake_get_file(file_id, file_size=0, limit=0, offset=0, progress=None, progress_args=()):
        for chunk in (b"\x00" * 600, b"\x01" * 400):
            yield chunk

    monkeypatch.setattr(client, "download_media", spy)
    monkeypatch.setattr(client, "get_file", fake_get_file)
    update = await harness.feed(*new_message(raw_message(20, media=video_note_media(size=1000, duration=7))))
    assert calls == [{"in_memory": True}]
    assert update.kind == "video_note"
    note = update.payload
    assert isinstance(note, VideoNote)
    assert note.data == b"\x00" * 600 + b"\x01" * 400
    assert (note.duration, note.length, note.file_size) == (7, 240, 1000) and note.file_id
    assert list(tmp_path.rglob("*")) == [] and not Path("downloads").exists()


async def test_oversized_video_note_is_not_downloaded(harness, monkeypatch):
    async def forbidden(*args, **kwargs):
        raise AssertionError("must not download")

    monkeypatch.setattr(harness.client, "download_media", forbidden)
    update = await harness.feed(*new_message(raw_message(21, media=video_note_media(size=CAP + 1))))
    assert update.kind == "video_note"
    assert update.payload.data == b"" and update.payload.file_size == CAP + 1


async def test_failed_download_still_submits_empty_video_note(harness, monkeypatch):
    async def broken(*args, **kwargs):
        return None  # what Pyrogram returns when the transfer fails

    monkeypatch.setattr(harness.client, "download_media", broken)
    update = await harness.feed(*new_message(raw_message(22, media=video_note_media(size=10))))
    assert update.kind == "video_note" and update.payload.data == b"" and update.payload.file_size == 10


@pytest.mark.parametrize("attrs, mime, kind", [
    ([raw.types.DocumentAttributeVideo(duration=3, w=640, h=480)], "video/mp4", "video"),
    ([raw.types.DocumentAttributeAudio(duration=3, voice=True)], "audio/ogg", "voice"),
    ([raw.types.DocumentAttributeAudio(duration=3, title="song")], "audio/mpeg", "audio"),
    ([raw.types.DocumentAttributeFilename(file_name="a.pdf")], "application/pdf", "document"),
    ([raw.types.DocumentAttributeAnimated(), raw.types.DocumentAttributeVideo(duration=1, w=1, h=1)], "video/mp4", "animation"),
])
async def test_other_media_kinds(harness, attrs, mime, kind):
    update = await harness.feed(*new_message(raw_message(23, media=document_media(attrs, mime))))
    assert update.kind == "other" and update.payload == kind


async def test_photo_is_other(harness):
    photo = raw.types.Photo(id=1, access_hash=1, file_reference=b"r", date=NOW, dc_id=2,
                            sizes=[raw.types.PhotoSize(type="m", w=320, h=320, size=100)])
    update = await harness.feed(*new_message(raw_message(24, media=raw.types.MessageMediaPhoto(photo=photo))))
    assert update.kind == "other" and update.payload == "photo"


def _message(**fields) -> types.Message:
    chat = types.Chat(id=USER_ID, type=enums.ChatType.PRIVATE)
    return types.Message(id=30, chat=chat, from_user=types.User(id=USER_ID, first_name="Asha"), **fields)


@pytest.mark.parametrize("field", ["sticker", "venue", "poll", "dice", "game"])
def test_other_kinds_from_constructed_messages(field):
    update = map_message(_message(**{field: object()}), "teacher")
    assert update.kind == "other" and update.payload == field


def test_service_message_is_ignored():
    assert map_message(_message(service=enums.MessageServiceType.PINNED_MESSAGE), "teacher") is None


def test_constructed_forwarded_and_location():
    origin = types.MessageOriginHiddenUser(sender_user_name="x")
    message = _message(location=types.Location(latitude=1.5, longitude=2.5), forward_origin=origin)
    update = map_message(message, "teacher")
    assert update.payload == Location(1.5, 2.5) and update.forwarded is True


async def test_callback_query(harness):
    client = harness.client
    client.message_cache[(USER_ID, 40)] = _message()
    update_raw = wire(raw.types.UpdateBotCallbackQuery(
        query_id=5555, user_id=USER_ID, peer=raw.types.PeerUser(user_id=USER_ID), msg_id=40,
        chat_instance=1, data=b"batch:A"))
    update = await harness.feed(update_raw, {USER_ID: wire(raw_user())})
    assert update.kind == "callback" and update.payload == Callback(data="batch:A", callback_id="5555")
    assert (update.chat_id, update.user_id, update.first_name) == (USER_ID, USER_ID, "Asha")


def test_callback_without_message_uses_the_user_chat():
    query = types.CallbackQuery(id="9", from_user=types.User(id=5, first_name="B"), chat_instance="1",
                                data=b"\xff")
    update = map_callback(query, "teacher")
    assert update.chat_id == 5 and update.message_id is None and update.payload.data == "\ufffd"


async def test_engine_failure_is_logged_not_raised(client, recorder, caplog):
    async def failing_submit(update):
        raise RuntimeError("engine exploded")

    transport = BotTransport("student", client, failing_submit, video_max_bytes=CAP)
    await transport.on_message(client, _message(text="hi"))  # must not raise
    assert "engine failed on a text update" in caplog.text and transport.in_flight == 0


async def test_not_accepting_after_stop(client):
    got = []

    async def submit(update):
        got.append(update)

    transport = BotTransport("student", client, submit, video_max_bytes=CAP)
    transport.stop_accepting()
    await transport.on_message(client, _message(text="late"))
    assert got == []


def test_the_sender_language_code_is_carried():
    """The user's app language (Telegram's language_code) picks the flow's language."""
    chat = types.Chat(id=USER_ID, type=enums.ChatType.PRIVATE)
    user = types.User(id=USER_ID, first_name="Asha", language_code="hi")
    update = map_message(types.Message(id=31, chat=chat, from_user=user, text="hello"), "student")
    assert update.language_code == "hi"
    query = types.CallbackQuery(id="9", from_user=types.User(id=5, first_name="B", language_code="te"),
                                chat_instance="1", data=b"lang:te")
    assert map_callback(query, "teacher").language_code == "te"
    assert map_message(_message(text="hi"), "teacher").language_code is None  # none given


async def test_each_update_is_parsed_once(harness, monkeypatch):
    """pyrofork's dispatcher parses every update before calling the raw handler: the transport
    takes that parse instead of parsing again (a second parse cost as much as the first)."""
    from pyrogram.types import Message

    calls = []
    real = Message._parse

    async def counting(*args, **kwargs):
        calls.append(args[1].id)
        return await real(*args, **kwargs)

    monkeypatch.setattr(Message, "_parse", counting)
    update = await harness.feed(*new_message(raw_message(12, "once")))
    assert update.payload == "once" and calls == [12]
    assert harness.transport._parsed == {}  # nothing kept after the handler took it
    # The catch-up path has no dispatcher parse: the transport parses itself.
    await harness.transport.handle_caught_up(*new_message(raw_message(13, "caught up")))
    assert (await asyncio.wait_for(harness.submitted.get(), 2)).payload == "caught up" and calls == [12, 13]
    assert harness.transport._parsed == {}
