"""A fake Pyrogram client that keeps Telegram's send limits, for the sender and load tests.

:class:`FakePyrogramClient` has the methods the transport's sender calls (``send_message``,
``edit_message_text``, ``delete_messages``, ``send_document``, ``answer_callback_query``) and
answers with the library's real types (``pyrogram.types.Message``). It enforces the limits
Telegram documents, with the library's real exception: more than ``global_limit`` messages
(sends and edits) within any 1 s window, or a chat's messages beyond a leaky bucket of
``chat_burst`` draining at ``chat_rate``/s, raise ``pyrogram.errors.FloodWait`` and the message
is not delivered. Time is the event loop's (a virtual clock in load tests), and every call can
take a simulated round trip (``latency``).

It records what each chat would show (messages and their edits) and lets a test wait for a text.
Failures can be scripted (:meth:`FakePyrogramClient.fail_next`).
"""
from __future__ import annotations

import asyncio
import io
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional

from pyrogram import enums, types
from pyrogram.errors import FloodWait, MessageIdInvalid

EPSILON = 1e-6  # Telegram does not measure microseconds; nor does the fake


@dataclass
class FakeLimits:
    """Telegram's limits as the fake enforces them (per bot)."""

    global_limit: int = 30  # messages within any 1 s
    chat_rate: float = 1.0  # per chat, long-run messages/s
    chat_burst: int = 3  # per chat, back to back
    flood_wait_s: int = 5  # what the fake asks to wait


@dataclass
class Delivered:
    """One message as the chat shows it (``text`` is the latest edit)."""

    message_id: int
    kind: str  # "text" | "document"
    text: str
    at: float
    markup: Any = None
    edits: list[tuple[float, str]] = field(default_factory=list)


class FakePyrogramClient:
    """The send-side surface of ``pyrogram.Client``, with Telegram's limits, in memory."""

    def __init__(self, name: str = "bot", *, bot_id: int = 1000, limits: Optional[FakeLimits] = None,
                 latency: float = 0.0, username: Optional[str] = None) -> None:
        self.name = name
        self.me = types.User(id=bot_id, is_bot=True, first_name=name, username=username or f"{name}_bot")
        self.limits = limits or FakeLimits()
        self.latency = latency
        self.is_connected = True
        self.chats: dict[int, list[Delivered]] = defaultdict(list)
        self.by_id: dict[int, tuple[int, Delivered]] = {}
        self.calls: list[tuple[float, str, int]] = []  # (time, method, chat) of every accepted call
        self.answered: list[str] = []
        self.deleted: list[tuple[int, int]] = []
        self.flood_waits: list[tuple[float, str, int]] = []  # (time, reason, chat)
        self.max_in_window = 0
        self._window: deque[float] = deque()
        self._chat_level: dict[int, tuple[float, float]] = {}  # chat -> (level, at)
        self._next_id = 1
        self._failures: dict[str, deque[BaseException]] = defaultdict(deque)
        self._waiters: dict[int, list[tuple[str, asyncio.Future]]] = defaultdict(list)

    # ------------------------------------------------------------------ scripting
    def fail_next(self, method: str, *errors: BaseException, chat_id: Optional[int] = None) -> None:
        """The next calls of ``method`` (to ``chat_id``, if given) raise these, before any limit."""
        self._failures[f"{method}:{chat_id}" if chat_id is not None else method].extend(errors)

    # ------------------------------------------------------------------ limits
    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def _admit(self, method: str, chat_id: int) -> float:
        """Raise FloodWait if this message would break a limit; else count it."""
        now = self._now()
        window = self._window
        while window and window[0] <= now - 1.0 + EPSILON:
            window.popleft()
        if len(window) >= self.limits.global_limit:
            self.flood_waits.append((now, "global", chat_id))
            raise FloodWait(value=self.limits.flood_wait_s)
        level, at = self._chat_level.get(chat_id, (0.0, now))
        level = max(0.0, level - (now - at) * self.limits.chat_rate)
        if level + 1 > self.limits.chat_burst + EPSILON:
            self.flood_waits.append((now, "chat", chat_id))
            raise FloodWait(value=self.limits.flood_wait_s)
        self._chat_level[chat_id] = (level + 1, now)
        window.append(now)
        self.max_in_window = max(self.max_in_window, len(window))
        self.calls.append((now, method, chat_id))
        return now

    async def _call(self, method: str, chat_id: int) -> float:
        if self.latency:
            await asyncio.sleep(self.latency / 2)  # the request travels
        for key in (f"{method}:{chat_id}", method):
            queued = self._failures.get(key)
            if queued:
                raise queued.popleft()
        at = self._admit(method, chat_id)
        if self.latency:
            await asyncio.sleep(self.latency / 2)  # the answer travels
        return at

    def _message(self, chat_id: int, message_id: int, text: str = "") -> types.Message:
        return types.Message(id=message_id, chat=types.Chat(id=chat_id, type=enums.ChatType.PRIVATE),
                             from_user=self.me, text=text or None, date=datetime.now())

    def _deliver(self, chat_id: int, kind: str, text: str, markup: Any, at: float) -> Delivered:
        delivered = Delivered(self._next_id, kind, text, at, markup)
        self._next_id += 1
        self.chats[chat_id].append(delivered)
        self.by_id[delivered.message_id] = (chat_id, delivered)
        self._notify(chat_id, text)
        return delivered

    # ------------------------------------------------------------------ the client surface
    async def send_message(self, chat_id: int, text: str, parse_mode: Any = None, reply_markup: Any = None,
                           disable_web_page_preview: Optional[bool] = None, **_: Any) -> types.Message:
        if not text:
            raise ValueError("message text is empty")  # Telegram answers MESSAGE_EMPTY
        at = await self._call("send_message", chat_id)
        delivered = self._deliver(chat_id, "text", text, reply_markup, at)
        return self._message(chat_id, delivered.message_id, text)

    async def edit_message_text(self, chat_id: int, message_id: int, text: str, parse_mode: Any = None,
                                reply_markup: Any = None, disable_web_page_preview: Optional[bool] = None,
                                **_: Any) -> types.Message:
        at = await self._call("edit_message_text", chat_id)
        found = self.by_id.get(message_id)
        if found is None or found[0] != chat_id:
            raise MessageIdInvalid()
        delivered = found[1]
        delivered.text = text
        delivered.edits.append((at, text))
        if reply_markup is not None:
            delivered.markup = reply_markup
        self._notify(chat_id, text)
        return self._message(chat_id, message_id, text)

    async def delete_messages(self, chat_id: int, message_ids: Any, revoke: bool = True) -> int:
        await self._call("delete_messages", chat_id)
        ids = message_ids if isinstance(message_ids, list) else [message_ids]
        self.deleted.extend((chat_id, i) for i in ids)
        return len(ids)

    async def send_document(self, chat_id: int, document: Any, caption: str = "", file_name: Optional[str] = None,
                            parse_mode: Any = None, **_: Any) -> types.Message:
        at = await self._call("send_document", chat_id)
        data = document.read() if isinstance(document, io.IOBase) else bytes(document)
        name = file_name or getattr(document, "name", "file")
        delivered = self._deliver(chat_id, "document", caption, None, at)
        delivered.kind = f"document:{name}:{len(data)}"
        return self._message(chat_id, delivered.message_id, caption)

    async def answer_callback_query(self, callback_query_id: str, text: Optional[str] = None, **_: Any) -> bool:
        queued = self._failures.get("answer_callback_query")
        if queued:
            raise queued.popleft()
        self.answered.append(callback_query_id)
        return True

    async def invoke(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("FakePyrogramClient has no raw API; see tests/fakes/fake_telegram_updates.py")

    # ------------------------------------------------------------------ reading what a chat shows
    def texts(self, chat_id: int) -> list[str]:
        """The chat's messages as shown now (latest edit of each)."""
        return [d.text for d in self.chats.get(chat_id, [])]

    def messages(self, chat_id: int) -> int:
        return len(self.chats.get(chat_id, []))

    def edits(self, chat_id: int) -> int:
        return sum(len(d.edits) for d in self.chats.get(chat_id, []))

    def _notify(self, chat_id: int, text: str) -> None:
        waiting = self._waiters.get(chat_id)
        if not waiting:
            return
        keep = []
        for needle, future in waiting:
            if needle in text and not future.done():
                future.set_result(self._now())
            elif not future.done():
                keep.append((needle, future))
        self._waiters[chat_id] = keep

    def wait_for(self, chat_id: int, needle: str) -> "asyncio.Future[float]":
        """A future resolved (with the loop time) when a message or edit containing ``needle`` shows."""
        future = asyncio.get_running_loop().create_future()
        if any(needle in t for t in self.texts(chat_id)):
            future.set_result(self._now())
        else:
            self._waiters[chat_id].append((needle, future))
        return future

