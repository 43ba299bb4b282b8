"""The transport's durable state in MongoDB (``STORE=mongo``): reply journal, update states, routes.

Three small collections, each behind the protocol the transport uses
(:class:`~integrations.telegram.journal.ReplyJournal`,
:class:`~integrations.telegram.catchup.UpdateStateStore`,
:class:`~integrations.telegram.bots.ChatRoutes`). mongoengine documents, called through
``asyncio.to_thread`` so the event loop never waits on the database. The connection is the
app's (``integrations.storage.connection.connect_db``, done by ``build_services``).

* ``telegram_replies``: one document per step's replies, deleted once Telegram accepted all
  of them (so the collection holds only what is in flight); failed ones stay 30 days.
* ``telegram_update_states``: per bot id, the pts/qts/date the catch-up starts from.
* ``telegram_chat_routes``: for flows served by several bots, the bot a chat last wrote to.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import threading
from typing import Any, Optional, Sequence

from mongoengine import (
    DateTimeField,
    DictField,
    Document,
    IntField,
    ListField,
    StringField,
)

from engine import ReplyAction
from integrations.telegram.catchup import UpdateState
from integrations.telegram.journal import (
    FailedReply,
    JournalEntry,
    decode_action,
    encode_action,
)

FAILED_KEPT_S = 30 * 24 * 3600


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class TelegramReply(Document):
    meta = {
        "collection": "telegram_replies",
        "indexes": [("status", "seq"), {"fields": ["failed_at"], "expireAfterSeconds": FAILED_KEPT_S}],
    }
    seq = IntField(primary_key=True)
    bot = StringField(required=True)
    logical = StringField(required=True)
    chat_id = IntField(required=True)
    actions = ListField(DictField())
    request_id = StringField(default="")
    status = StringField(default="pending", choices=("pending", "failed"))
    error = StringField()
    created_at = DateTimeField(default=_now)
    failed_at = DateTimeField()

    def entry(self) -> JournalEntry:
        return JournalEntry(self.seq, self.bot, self.logical, self.chat_id,
                            tuple(decode_action(a) for a in self.actions), self.request_id or "",
                            self.created_at.timestamp() if self.created_at else 0.0)


class TelegramUpdateState(Document):
    meta = {"collection": "telegram_update_states"}
    bot_id = IntField(primary_key=True)
    pts = IntField(required=True)
    qts = IntField(required=True)
    date = IntField(required=True)
    updated_at = DateTimeField(default=_now)


class TelegramChatRoute(Document):
    meta = {"collection": "telegram_chat_routes"}
    key = StringField(primary_key=True)  # "<flow bot>:<chat id>"
    bot = StringField(required=True)
    updated_at = DateTimeField(default=_now)


DOCUMENTS = (TelegramReply, TelegramUpdateState, TelegramChatRoute)


class MongoReplyJournal:
    """:class:`~integrations.telegram.journal.ReplyJournal` in the ``telegram_replies`` collection.

    ``seq`` comes from an in-process counter seeded from the highest stored one: one process per
    session directory (the bots' MTProto sessions already require it).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: Optional[int] = None

    def _seq(self) -> int:
        with self._lock:
            if self._next is None:
                top = TelegramReply.objects.order_by("-seq").only("seq").first()
                self._next = (top.seq if top else 0) + 1
            seq, self._next = self._next, self._next + 1
            return seq

    def _append(self, bot: str, logical: str, chat_id: int, actions: Sequence[ReplyAction],
                request_id: str) -> JournalEntry:
        doc = TelegramReply(seq=self._seq(), bot=bot, logical=logical, chat_id=chat_id,
                            actions=[encode_action(a) for a in actions], request_id=request_id)
        doc.save(force_insert=True)
        return JournalEntry(doc.seq, bot, logical, chat_id, tuple(actions), request_id, doc.created_at.timestamp())

    async def append(self, bot: str, logical: str, chat_id: int, actions: Sequence[ReplyAction],
                     request_id: str = "") -> JournalEntry:
        return await asyncio.to_thread(self._append, bot, logical, chat_id, actions, request_id)

    async def ack(self, seq: int) -> None:
        await asyncio.to_thread(lambda: TelegramReply.objects(seq=seq, status="pending").delete())

    async def fail(self, seq: int, reason: str) -> None:
        await asyncio.to_thread(lambda: TelegramReply.objects(seq=seq, status="pending").update_one(
            set__status="failed", set__error=reason[:500], set__failed_at=_now()))

    async def pending(self) -> list[JournalEntry]:
        return await asyncio.to_thread(
            lambda: [doc.entry() for doc in TelegramReply.objects(status="pending").order_by("seq")])

    async def failed(self, limit: int = 100) -> list[FailedReply]:
        def read() -> list[FailedReply]:
            docs = TelegramReply.objects(status="failed").order_by("-seq").limit(limit)
            return [FailedReply(d.entry(), d.error or "", d.failed_at.timestamp() if d.failed_at else 0.0)
                    for d in docs]
        return await asyncio.to_thread(read)


class MongoUpdateStateStore:
    """:class:`~integrations.telegram.catchup.UpdateStateStore` in ``telegram_update_states``."""

    async def load(self, bot_id: int) -> Optional[UpdateState]:
        def read() -> Optional[UpdateState]:
            doc = TelegramUpdateState.objects(bot_id=bot_id).first()
            return UpdateState(doc.pts, doc.qts, doc.date) if doc else None
        return await asyncio.to_thread(read)

    async def save(self, bot_id: int, state: UpdateState) -> None:
        await asyncio.to_thread(lambda: TelegramUpdateState.objects(bot_id=bot_id).update_one(
            upsert=True, set__pts=state.pts, set__qts=state.qts, set__date=state.date, set__updated_at=_now()))


class MongoChatRoutes:
    """:class:`~integrations.telegram.bots.ChatRoutes` in ``telegram_chat_routes``."""

    async def get(self, logical: str, chat_id: int) -> Optional[str]:
        def read() -> Optional[str]:
            doc = TelegramChatRoute.objects(key=f"{logical}:{chat_id}").first()
            return doc.bot if doc else None
        return await asyncio.to_thread(read)

    async def set(self, logical: str, chat_id: int, bot: str) -> None:
        await asyncio.to_thread(lambda: TelegramChatRoute.objects(key=f"{logical}:{chat_id}").update_one(
            upsert=True, set__bot=bot, set__updated_at=_now()))


def mongo_stores() -> dict[str, Any]:
    """The three stores for :class:`~integrations.telegram.runtime.TelegramRuntime` (indexes made)."""
    for document in DOCUMENTS:
        document.ensure_indexes()
    return {"journal": MongoReplyJournal(), "state_store": MongoUpdateStateStore(), "routes": MongoChatRoutes()}
