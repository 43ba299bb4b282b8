"""Durable replies: what a saved step says is written down before the step's send is acknowledged.

The engine saves a conversation and then hands its replies to the sink. The sink
(:meth:`integrations.telegram.sender.TelegramSender.deliver`) appends them to a
:class:`ReplyJournal` *before* it returns, and the send queue acknowledges (removes) an entry
only once Telegram has accepted every message of it. Entries still in the journal at start-up
are replayed first, in order, so a process that dies between the save and the send still
delivers: at least once, in order per chat (a message Telegram accepted just before the crash
may be sent a second time).

Two implementations: :class:`MemoryReplyJournal` here (tests, ``STORE=memory``, where the
conversations themselves do not survive a restart either) and
:class:`integrations.telegram.mongo_state.MongoReplyJournal` (``STORE=mongo``).
"""
from __future__ import annotations

import base64
import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, Sequence

from engine import (
    AnswerCallback,
    Button,
    DeleteMessage,
    EditText,
    InlineButton,
    ReplyAction,
    SendDocument,
    SendText,
)

FAILED_KEPT = 1000  # in memory: the most recent failed entries kept for inspection


@dataclass(frozen=True)
class JournalEntry:
    """One step's replies to one chat, as handed to the sink."""

    seq: int  # order of appending; replay follows it
    bot: str  # the Telegram bot that sends it ("student-2")
    logical: str  # the flow's bot name ("student")
    chat_id: int
    actions: tuple[ReplyAction, ...]
    request_id: str = ""
    created: float = field(default_factory=time.time)


@dataclass(frozen=True)
class FailedReply:
    """An entry given up on after its retries (kept for ``stats`` and inspection)."""

    entry: JournalEntry
    reason: str
    failed_at: float


class ReplyJournal(Protocol):
    """Where replies wait until Telegram has them. All methods are safe to call concurrently."""

    async def append(self, bot: str, logical: str, chat_id: int, actions: Sequence[ReplyAction],
                     request_id: str = "") -> JournalEntry:
        """Persist a step's replies; returns the entry (with its ``seq``) once it is durable."""

    async def ack(self, seq: int) -> None:
        """Every message of the entry was accepted by Telegram: forget it."""

    async def fail(self, seq: int, reason: str) -> None:
        """The entry could not be delivered after its retries: keep it as failed, not pending."""

    async def pending(self) -> list[JournalEntry]:
        """Entries neither acknowledged nor failed, in ``seq`` order (what start-up replays)."""

    async def failed(self, limit: int = 100) -> list[FailedReply]:
        """The most recent failed entries, newest first."""


class MemoryReplyJournal:
    """A :class:`ReplyJournal` in memory: order and bookkeeping without durability."""

    def __init__(self) -> None:
        self._seq = itertools.count(1)
        self._pending: dict[int, JournalEntry] = {}
        self._failed: deque[FailedReply] = deque(maxlen=FAILED_KEPT)

    async def append(self, bot: str, logical: str, chat_id: int, actions: Sequence[ReplyAction],
                     request_id: str = "") -> JournalEntry:
        entry = JournalEntry(next(self._seq), bot, logical, chat_id, tuple(actions), request_id)
        self._pending[entry.seq] = entry
        return entry

    async def ack(self, seq: int) -> None:
        self._pending.pop(seq, None)

    async def fail(self, seq: int, reason: str) -> None:
        entry = self._pending.pop(seq, None)
        if entry is not None:
            self._failed.append(FailedReply(entry, reason, time.time()))

    async def pending(self) -> list[JournalEntry]:
        return [self._pending[seq] for seq in sorted(self._pending)]

    async def failed(self, limit: int = 100) -> list[FailedReply]:
        return list(reversed(self._failed))[:limit]


# ------------------------------------------------------------------ codec (JSON-safe dicts)
def encode_action(action: ReplyAction) -> dict[str, Any]:
    """A reply action as a JSON-safe dict (bytes as base64), for a durable journal."""
    if isinstance(action, SendText):
        return {"t": "text", "text": action.text, "remove": action.remove_keyboard,
                "keyboard": [[{"text": b.text, "request": b.request} for b in row] for row in action.keyboard]
                if action.keyboard else None,
                "inline": _encode_inline(action.inline)}
    if isinstance(action, EditText):
        return {"t": "edit", "message_id": action.message_id, "text": action.text,
                "inline": _encode_inline(action.inline)}
    if isinstance(action, DeleteMessage):
        return {"t": "delete", "message_id": action.message_id}
    if isinstance(action, SendDocument):
        return {"t": "document", "filename": action.filename, "caption": action.caption,
                "data": base64.b64encode(action.data).decode("ascii")}
    if isinstance(action, AnswerCallback):
        return {"t": "answer", "callback_id": action.callback_id, "text": action.text}
    raise TypeError(f"unknown reply action {type(action).__name__}")


def decode_action(data: dict[str, Any]) -> ReplyAction:
    kind = data["t"]
    if kind == "text":
        keyboard = ([[Button(b["text"], b.get("request")) for b in row] for row in data["keyboard"]]
                    if data.get("keyboard") else None)
        return SendText(data["text"], keyboard=keyboard, inline=_decode_inline(data.get("inline")),
                        remove_keyboard=bool(data.get("remove")))
    if kind == "edit":
        return EditText(int(data["message_id"]), data["text"], inline=_decode_inline(data.get("inline")))
    if kind == "delete":
        return DeleteMessage(int(data["message_id"]))
    if kind == "document":
        return SendDocument(data["filename"], base64.b64decode(data["data"]), caption=data.get("caption", ""))
    if kind == "answer":
        return AnswerCallback(data["callback_id"], data.get("text", ""))
    raise ValueError(f"unknown journal action kind {kind!r}")


def _encode_inline(rows: Optional[list[list[InlineButton]]]) -> Optional[list[list[dict[str, str]]]]:
    return [[{"text": b.text, "data": b.data} for b in row] for row in rows] if rows else None


def _decode_inline(rows: Optional[list[list[dict[str, str]]]]) -> Optional[list[list[InlineButton]]]:
    return [[InlineButton(b["text"], b["data"]) for b in row] for row in rows] if rows else None
