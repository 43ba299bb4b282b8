"""Many writes in a few round trips (the roster import writes 100,000 rows this way).

One ``update_one`` per row costs one round trip per row; ``bulk_write`` and ``insert_many`` send
``BATCH_SIZE`` of them at once. Documents known to be new are inserted rather than upserted: an
insert skips the upsert's lookup, and on the SecantusDB test server it costs half as much.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping, Optional, Sequence, TypeVar

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

BATCH_SIZE = 1000
"""Operations per bulk write (read at call time, so tests can shrink it)."""

DUPLICATE_KEY = 11000
T = TypeVar("T")
Upsert = tuple[Mapping[str, Any], Mapping[str, Any]]
"""(filter, update document) of one upsert."""


def chunks(items: Sequence[T], size: Optional[int] = None) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` (default BATCH_SIZE) items."""
    size = size or BATCH_SIZE
    for start in range(0, len(items), size):
        yield items[start:start + size]


def upsert_all(collection: Any, upserts: Sequence[Upsert], batch_size: Optional[int] = None) -> int:
    """Apply every upsert, in order, in bulk writes of ``batch_size``; returns how many inserted.

    Ordered: a failure (say, a duplicate key from a racing writer) stops at that operation and
    raises, as a loop of ``update_one`` would; the batches before it stay written.
    """
    inserted = 0
    for chunk in chunks(upserts, batch_size):
        ops = [UpdateOne(dict(query), dict(update), upsert=True) for query, update in chunk]
        inserted += collection.bulk_write(ops, ordered=True).upserted_count
    return inserted


def insert_or_upsert(collection: Any, docs: Sequence[Mapping[str, Any]], key: str,
                     batch_size: Optional[int] = None) -> int:
    """Insert documents believed new, in ordered batches; returns how many were inserted.

    If one exists after all (a concurrent writer inserted the same ``key`` since the caller
    looked), it and the rest of its batch are upserted by ``key`` instead, so the outcome is the
    same as upserting everything. Any other write error is raised.
    """
    inserted = 0
    for chunk in chunks(docs, batch_size):
        batch = [dict(doc) for doc in chunk]  # insert_many adds an _id to what it is given
        try:
            inserted += len(collection.insert_many(batch, ordered=True).inserted_ids)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if not errors or any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            done = int(exc.details.get("nInserted", 0))
            inserted += done
            rest = [({key: doc[key]}, {"$set": {k: v for k, v in doc.items() if k not in ("_id", key)}})
                    for doc in batch[done:]]
            inserted += upsert_all(collection, rest, batch_size)
    return inserted
