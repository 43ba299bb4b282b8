"""Conversations in MongoDB through mongoengine, with an atomic versioned update.

`save` is one `update_one({_id, version: v}, {$set ..., version: v+1})`: if another worker saved
first, nothing matches and :class:`VersionConflict` is raised, so one chat never advances twice.
A first save inserts, and the unique `_id` makes a racing insert fail the same way.
Blocking driver calls run in a worker thread so the event loop keeps serving other chats.
"""
from __future__ import annotations

import time
from typing import Optional

from mongoengine import DictField, Document, FloatField, IntField, StringField
from pymongo.errors import DuplicateKeyError

from engine import Conversation, Key, VersionConflict
from integrations.foundation.blocking import run_blocking


class ConversationDoc(Document):
    id = StringField(primary_key=True)  # "bot:chat_id"
    bot = StringField(required=True)
    chat_id = IntField(required=True)
    user_id = IntField(required=True)
    flow = StringField(required=True)
    state = StringField(required=True)
    data = DictField()
    version = IntField(required=True, default=1)
    retries = IntField(default=0)
    epoch = IntField(default=0)
    deadline = FloatField(null=True)
    updated_at = FloatField()

    meta = {
        "collection": "conversations",
        "indexes": [{"fields": ["deadline"], "sparse": True}, "bot"],
    }


def _doc_id(key: Key) -> str:
    return f"{key[0]}:{key[1]}"


class MongoConversationStore:
    """Conversations in MongoDB; its indexes come with the others (storage.indexes)."""

    @staticmethod
    def _to_conversation(doc: dict) -> Conversation:
        return Conversation(
            bot=doc["bot"], chat_id=doc["chat_id"], user_id=doc["user_id"], flow=doc["flow"],
            state=doc["state"], data=dict(doc.get("data") or {}), version=doc["version"],
            retries=doc.get("retries", 0), epoch=doc.get("epoch", 0),
            deadline=doc.get("deadline"), updated_at=doc.get("updated_at", 0.0),
        )

    def _get(self, key: Key) -> Optional[Conversation]:
        raw = ConversationDoc._get_collection().find_one({"_id": _doc_id(key)})
        return self._to_conversation(raw) if raw else None

    def _save(self, conv: Conversation) -> None:
        now = time.time()
        fields = {
            "bot": conv.bot, "chat_id": conv.chat_id, "user_id": conv.user_id, "flow": conv.flow,
            "state": conv.state, "data": conv.data, "retries": conv.retries, "epoch": conv.epoch,
            "deadline": conv.deadline, "updated_at": now,
        }
        collection = ConversationDoc._get_collection()
        if conv.version == 0:
            try:
                collection.insert_one({"_id": _doc_id(conv.key), **fields, "version": 1})
            except DuplicateKeyError:
                raise VersionConflict(f"{conv.key}: created by someone else") from None
        else:
            result = collection.update_one(
                {"_id": _doc_id(conv.key), "version": conv.version},
                {"$set": {**fields, "version": conv.version + 1}},
            )
            if result.matched_count != 1:
                raise VersionConflict(f"{conv.key}: not at version {conv.version}")
        conv.version += 1
        conv.updated_at = now

    def _with_deadlines(self) -> list[Conversation]:
        cursor = ConversationDoc._get_collection().find({"deadline": {"$ne": None}})
        return [self._to_conversation(raw) for raw in cursor]

    async def get(self, key: Key) -> Optional[Conversation]:
        return await run_blocking(self._get, key)

    async def save(self, conversation: Conversation) -> None:
        await run_blocking(self._save, conversation)

    async def with_deadlines(self) -> list[Conversation]:
        return await run_blocking(self._with_deadlines)

    async def count(self) -> int:
        return await run_blocking(ConversationDoc._get_collection().count_documents, {})

    async def close(self) -> None:
        return None


__all__ = ["ConversationDoc", "MongoConversationStore"]
