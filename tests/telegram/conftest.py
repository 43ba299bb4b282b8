"""Offline fixtures: real Pyrogram clients whose network calls are intercepted.

``client.invoke`` is replaced by a recorder that serialises every raw request (so a request
Telegram would reject as malformed fails here too) and returns a canned raw result; the updates
functions (``getState``/``getDifference``) are answered by a
:class:`tests.fakes.fake_telegram_updates.FakeUpdatesApi`. ``resolve_peer`` and ``save_file``
(uploads go through their own sessions) are stubbed.
"""
from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field
from typing import Any, Optional

import pytest
from pyrogram import Client, raw, types
from pyrogram.raw.core import TLObject

from tests.fakes.fake_telegram_updates import FakeUpdatesApi

BOT_ID = 123456
TEACHER_TOKEN = f"{BOT_ID}:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
STUDENT_TOKEN = "654321:AAEnotarealtokenbutshapedlikeone_x"
API_HASH = "0123456789abcdef0123456789abcdef"
USER_ID = 777
NOW = 1_700_000_000


def make_client(name: str = "teacher", token: str = TEACHER_TOKEN) -> Client:
    """A real Client (must be built inside the running loop, as Pyrogram binds it at init)."""
    client = Client(f"test-{name}", api_id=12345, api_hash=API_HASH, bot_token=token, in_memory=True)
    client.me = types.User(id=int(token.split(":")[0]), is_bot=True, first_name=name, username=f"{name.title()}Bot")
    return client


@dataclass
class Recorder:
    """Captured raw API calls; ``responders`` map a raw function type to a result or exception."""

    calls: list[Any] = field(default_factory=list)
    uploads: list[tuple[str, bytes]] = field(default_factory=list)
    responders: dict[type, list[Any]] = field(default_factory=dict)
    updates: dict[int, FakeUpdatesApi] = field(default_factory=dict)  # bot id -> its raw updates API

    def queue(self, kind: type, *results: Any) -> None:
        self.responders.setdefault(kind, []).extend(results)

    def of(self, kind: type) -> list[Any]:
        return [c for c in self.calls if isinstance(c, kind)]

    def sent_texts(self) -> list[str]:
        return [c.message for c in self.of(raw.functions.messages.SendMessage)]

    def respond(self, query: Any, bot_id: int = BOT_ID) -> Any:
        if isinstance(query, (raw.functions.updates.GetState, raw.functions.updates.GetDifference)):
            api = self.updates.setdefault(bot_id, FakeUpdatesApi(bot_id, pts=0))
            return api.answer(query)
        queued = self.responders.get(type(query))
        result = queued.pop(0) if queued else default_result(query)
        if isinstance(result, BaseException):
            raise result
        return result(query) if callable(result) and not isinstance(result, TLObject) else result


def default_result(query: Any) -> Any:
    f = raw.functions
    if isinstance(query, f.messages.SendMessage):
        return raw.types.UpdateShortSentMessage(id=100 + len(query.message) % 7, pts=1, pts_count=1, date=NOW, out=True)
    if isinstance(query, f.messages.SendMedia):
        # Pyrogram re-sends forever until the result holds the new message, as Telegram's does.
        return sent_updates(query.peer.user_id, 200, raw.types.UpdateNewMessage)
    if isinstance(query, f.messages.EditMessage):
        return sent_updates(query.peer.user_id, query.id, raw.types.UpdateEditMessage, query.message)
    if isinstance(query, f.messages.SetBotCallbackAnswer):
        return True
    if isinstance(query, f.messages.DeleteMessages):
        return raw.types.messages.AffectedMessages(pts=1, pts_count=1)
    raise AssertionError(f"unexpected raw call {type(query).__name__}")


def wire(obj: Any) -> Any:
    """Serialise and parse back, so the object looks exactly like one read off the network."""
    return TLObject.read(io.BytesIO(obj.write()))


def sent_updates(chat_id: int, msg_id: int, kind: type, text: str = "") -> raw.types.Updates:
    message = raw.types.Message(id=msg_id, peer_id=raw.types.PeerUser(user_id=chat_id), out=True,
                                from_id=raw.types.PeerUser(user_id=BOT_ID), date=NOW, message=text)
    bot = raw.types.User(id=BOT_ID, access_hash=1, first_name="bot", bot=True, bot_info_version=1)
    return wire(raw.types.Updates(updates=[kind(message=message, pts=1, pts_count=1)],
                                  users=[raw_user(chat_id), bot], chats=[], date=NOW, seq=0))


def intercept(client: Client, monkeypatch: pytest.MonkeyPatch, recorder: Optional[Recorder] = None) -> Recorder:
    rec = recorder or Recorder()

    async def fake_invoke(query: Any, *args: Any, **kwargs: Any) -> Any:
        query.write()  # must serialise: catches wrong field types before Telegram would
        rec.calls.append(query)
        token = getattr(client, "bot_token", None) or ""
        return rec.respond(query, int(token.split(":")[0]) if ":" in token else BOT_ID)

    async def fake_resolve_peer(peer_id: Any) -> Any:
        if isinstance(peer_id, int) and peer_id < 0:
            return raw.types.InputPeerChat(chat_id=-peer_id)
        return raw.types.InputPeerUser(user_id=int(peer_id), access_hash=42)

    async def fake_save_file(path: Any, *args: Any, **kwargs: Any) -> Any:
        if path is None:
            return None
        rec.uploads.append((path.name, path.read()))
        return raw.types.InputFile(id=1, parts=1, name=path.name, md5_checksum="")

    monkeypatch.setattr(client, "invoke", fake_invoke)
    monkeypatch.setattr(client, "resolve_peer", fake_resolve_peer)
    monkeypatch.setattr(client, "save_file", fake_save_file)
    return rec


@pytest.fixture
async def client() -> Client:
    return make_client()


@pytest.fixture
def recorder(client: Client, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    return intercept(client, monkeypatch)


class FastSleep:
    """Injected in place of ``asyncio.sleep``: records requested sleeps, returns at once."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def fast_sleep() -> FastSleep:
    return FastSleep()


# ---- raw builders for incoming updates


def raw_user(user_id: int = USER_ID, first_name: str = "Asha") -> raw.types.User:
    return raw.types.User(id=user_id, access_hash=1, first_name=first_name, username="asha")


def raw_message(msg_id: int = 10, text: str = "", *, user_id: int = USER_ID, media: Any = None,
                fwd_from: Any = None, entities: Any = None) -> raw.types.Message:
    return raw.types.Message(
        id=msg_id, peer_id=raw.types.PeerUser(user_id=user_id), from_id=raw.types.PeerUser(user_id=user_id),
        date=NOW, message=text, media=media, fwd_from=fwd_from, entities=entities,
    )


def new_message(message: raw.types.Message, *extra_users: raw.types.User) -> tuple[Any, dict, dict]:
    users = {u.id: u for u in (raw_user(), *extra_users)}
    return wire(raw.types.UpdateNewMessage(message=message, pts=1, pts_count=1)), {k: wire(u) for k, u in users.items()}, {}


def geo(lat: float = 17.385, long: float = 78.4867, accuracy: Optional[int] = 12) -> raw.types.GeoPoint:
    return raw.types.GeoPoint(long=long, lat=lat, access_hash=0, accuracy_radius=accuracy)


def video_note_media(size: int = 1000, duration: int = 5) -> raw.types.MessageMediaDocument:
    doc = raw.types.Document(
        id=99, access_hash=5, file_reference=b"ref", date=NOW, mime_type="video/mp4", size=size, dc_id=2,
        attributes=[raw.types.DocumentAttributeVideo(duration=duration, w=240, h=240, round_message=True)],
    )
    return raw.types.MessageMediaDocument(document=doc)


def document_media(attrs: list[Any], mime: str = "application/pdf") -> raw.types.MessageMediaDocument:
    doc = raw.types.Document(id=98, access_hash=5, file_reference=b"ref", date=NOW, mime_type=mime,
                             size=10, dc_id=2, attributes=attrs)
    return raw.types.MessageMediaDocument(document=doc)


async def settle(times: int = 5) -> None:
    for _ in range(times):
        await asyncio.sleep(0)
