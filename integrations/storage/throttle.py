"""Attempt limits kept in MongoDB, so a restart (or a second instance) does not reset them.

Two shapes, both one atomic update per attempt on the ``throttles`` collection (documents expire
by a TTL index once they no longer matter):

* :class:`WindowLimit`: at most ``limit`` attempts per key in any moving window (code attempts
  per Telegram user: ``OTP_USER_WRONG_PER_10MIN`` in any 10 minutes). The attempt is *taken* before
  anything is compared, and every attempt counts, right or wrong, so the limiter's state never
  tells whether a guess was right.
* :class:`Backoff`: a growing wait after repeated failures (teacher logins, per Telegram user and
  per account): ``free`` failures, then ``base_s``, doubling up to ``cap_s``; a success clears it.
"""
from __future__ import annotations

import datetime as dt
from typing import Optional

from mongoengine import DateTimeField, Document, IntField, ListField, StringField
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from integrations.foundation.timefmt import as_utc
from integrations.storage.documents import utcnow


class ThrottleDoc(Document):
    key = StringField(primary_key=True)  # "<limit name>:<subject>"
    count = IntField(default=0)  # Backoff: failures so far
    hits = ListField(DateTimeField())  # WindowLimit: times of the attempts in the window
    until = DateTimeField()  # Backoff: no attempt before this
    expires_at = DateTimeField()  # the TTL index removes the document after this

    meta = {"collection": "throttles",
            "indexes": [{"fields": ["expires_at"], "expireAfterSeconds": 0}]}


DOCUMENTS = (ThrottleDoc,)


def _coll():  # type: ignore[no-untyped-def]
    return ThrottleDoc._get_collection()


class WindowLimit:
    """At most ``limit`` attempts per key in any ``window_s`` seconds (a moving window)."""

    def __init__(self, name: str, limit: int, window_s: float) -> None:
        self.name, self.limit, self.window_s = name, max(1, int(limit)), float(window_s)

    def take(self, key: object, now: Optional[dt.datetime] = None) -> tuple[bool, float]:
        """Count one attempt if the window has room: (allowed, seconds until one attempt frees up).

        The key's document holds the times of its attempts in the window. Old ones are pulled,
        then one conditional upsert pushes the new one only while fewer than ``limit`` are left:
        of two racing attempts at ``limit - 1`` one gets through (the other's insert fails on the
        key)."""
        now = now or utcnow()
        doc_id = f"{self.name}:{key}"
        window = dt.timedelta(seconds=self.window_s)
        _coll().update_one({"_id": doc_id}, {"$pull": {"hits": {"$lte": now - window}}})
        try:
            _coll().find_one_and_update(
                {"_id": doc_id, f"hits.{self.limit - 1}": {"$exists": False}},
                {"$push": {"hits": now}, "$set": {"expires_at": now + window}},
                upsert=True, return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:
            doc = _coll().find_one({"_id": doc_id}, {"hits": True}) or {}
            oldest = min((as_utc(t) for t in doc.get("hits") or ()), default=now)
            return False, max(1.0, (oldest + window - now).total_seconds())
        return True, 0.0

    def clear(self) -> None:
        """Forget every attempt of this limit (tests)."""
        _coll().delete_many({"_id": {"$regex": f"^{self.name}:"}})


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
