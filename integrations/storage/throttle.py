"""Attempt limits kept in MongoDB, so a restart (or a second instance) does not reset them.

Two shapes, both one atomic update per attempt (documents expire by a TTL index once they no
longer matter):

* :class:`WindowLimit`: at most ``limit`` attempts per key in any moving window (code attempts
  per Telegram user: ``OTP_USER_WRONG_PER_10MIN`` in any 10 minutes): the `limits` library's
  moving window on its MongoDB storage, over the app's connection. The attempt is *taken* before
  anything is compared, and every attempt counts, right or wrong, so the limiter's state never
  tells whether a guess was right.
* :class:`Backoff`: a growing wait after repeated failures (teacher logins, per Telegram user and
  per account): ``free`` failures, then ``base_s``, doubling up to ``cap_s``; a success clears it.
"""
from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any, Optional

from limits import RateLimitItemPerSecond
from limits.storage import MongoDBStorage
from limits.strategies import MovingWindowRateLimiter
from mongoengine import DateTimeField, Document, IntField, StringField
from mongoengine.connection import get_db
from pymongo import ReturnDocument

from integrations.foundation.timefmt import as_utc
from integrations.storage.documents import utcnow


class ThrottleDoc(Document):
    key = StringField(primary_key=True)  # "<limit name>:<subject>"
    count = IntField(default=0)  # Backoff: failures so far
    until = DateTimeField()  # Backoff: no attempt before this
    expires_at = DateTimeField()  # the TTL index removes the document after this

    meta = {"collection": "throttles",
            "indexes": [{"fields": ["expires_at"], "expireAfterSeconds": 0}]}


DOCUMENTS = (ThrottleDoc,)


def _coll():  # type: ignore[no-untyped-def]
    return ThrottleDoc._get_collection()


class _AppMongoStorage(MongoDBStorage):
    """limits' MongoDB storage on the app's own connection (one client; the app's database)."""

    def __init__(self, database: Any) -> None:
        self._client = database.client
        super().__init__("mongodb://", database_name=database.name, counter_collection_name="throttle_counters",
                         window_collection_name="throttle_windows")

    def _init_mongo_client(self, uri: Optional[str], **options: Any) -> Any:
        return self._client

    def __del__(self) -> None:
        """The client is the app's: it is closed with the app, not with this storage."""


class WindowLimit:
    """At most ``limit`` attempts per key in any ``window_s`` seconds: the `limits` library's
    moving window, stored in the app's MongoDB (so a restart or a second instance shares it).

    Every attempt is *taken* before anything is compared, right or wrong, so the limiter's state
    never tells whether a guess was right. The library's acquire is one conditional update per
    attempt, so racing attempts never exceed the limit."""

    def __init__(self, name: str, limit: int, window_s: float) -> None:
        self.name, self.limit, self.window_s = name, max(1, int(limit)), float(window_s)
        self.item = RateLimitItemPerSecond(self.limit, max(1, int(window_s)))
        self._limiters: dict[tuple[int, str], MovingWindowRateLimiter] = {}

    def _limiter(self) -> MovingWindowRateLimiter:
        database = get_db()  # the connection in use now (tests reconnect between apps)
        found = self._limiters.get((id(database.client), database.name))
        if found is None:
            found = MovingWindowRateLimiter(_AppMongoStorage(database))
            self._limiters[(id(database.client), database.name)] = found
        return found

    def take(self, key: object) -> tuple[bool, float]:
        """Count one attempt if the window has room: (allowed, seconds until one attempt frees up)."""
        limiter = self._limiter()
        if limiter.hit(self.item, self.name, str(key)):
            return True, 0.0
        stats = limiter.get_window_stats(self.item, self.name, str(key))
        return False, max(1.0, stats.reset_time - time.time())

    def clear(self) -> None:
        """Forget every attempt of this limit (tests)."""
        storage = self._limiter().storage
        storage.windows.delete_many({"_id": {"$regex": f"^LIMITER/{re.escape(self.name)}/"}})


class Backoff:
    """After ``free`` failures a key waits ``base_s``, doubling per further failure up to ``cap_s``."""

    def __init__(self, name: str, free: int = 5, base_s: float = 60.0, cap_s: float = 3600.0,
                 forget_s: float = 24 * 3600.0) -> None:
        self.name, self.free = name, max(0, int(free))
        self.base_s, self.cap_s, self.forget_s = float(base_s), float(cap_s), float(forget_s)

    def _id(self, key: object) -> str:
        return f"{self.name}:{key}"

    def wait(self, key: object, now: Optional[dt.datetime] = None) -> float:
        """Seconds ``key`` must still wait (0: it may try)."""
        now = now or utcnow()
        doc = _coll().find_one({"_id": self._id(key)}, {"until": True})
        until = doc.get("until") if doc else None
        return max(0.0, (as_utc(until) - now).total_seconds()) if until else 0.0

    def fail(self, key: object, now: Optional[dt.datetime] = None) -> float:
        """Count one failure (atomically); returns the wait it starts (0 while failures are free)."""
        now = now or utcnow()
        doc = _coll().find_one_and_update(
            {"_id": self._id(key)},
            {"$inc": {"count": 1}, "$set": {"expires_at": now + dt.timedelta(seconds=self.forget_s)}},
            upsert=True, return_document=ReturnDocument.AFTER)
        over = int(doc["count"]) - self.free
        if over < 0:
            return 0.0
        wait = min(self.cap_s, self.base_s * 2 ** min(over, 30))
        until = now + dt.timedelta(seconds=wait)
        _coll().update_one({"_id": self._id(key), "$or": [{"until": None}, {"until": {"$lt": until}}]},
                           {"$set": {"until": until}})
        return wait

    def reset(self, key: object) -> None:
        _coll().delete_one({"_id": self._id(key)})

    def clear(self) -> None:
        """Forget every failure of this limit (tests)."""
        _coll().delete_many({"_id": {"$regex": f"^{self.name}:"}})
