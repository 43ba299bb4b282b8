"""Many upserts in a few round trips (the roster import writes 100,000 rows this way).

One ``update_one`` per row costs one round trip per row; ``bulk_write`` sends ``BATCH_SIZE`` of
them at once. mongomock 4.3 (tests, demo) cannot run pymongo 4.20's ``UpdateOne`` (it passes a
``sort`` argument mongomock's bulk builder does not take), so for a mongomock collection the same
upserts go through mongomock's own ordered bulk builder: same batches, same counts.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence, TypeVar

from pymongo import UpdateOne

BATCH_SIZE = 1000
"""Operations per bulk write."""

T = TypeVar("T")
Upsert = tuple[Mapping[str, Any], Mapping[str, Any]]
"""(filter, update document) of one upsert."""


def chunks(items: Sequence[T], size: int = BATCH_SIZE) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _is_mongomock(collection: Any) -> bool:
    return type(collection).__module__.startswith("mongomock")


def upsert_all(collection: Any, upserts: Sequence[Upsert], batch_size: int = BATCH_SIZE) -> int:
    """Apply every upsert, in order, as bulk writes of ``batch_size``; returns how many inserted.

    Ordered: a failure (say, a duplicate key from a racing writer) stops at that operation and
    raises, as a loop of ``update_one`` would; the batches before it stay written.
    """
    inserted = 0
    for chunk in chunks(upserts, batch_size):
        if _is_mongomock(collection):
            bulk = collection.initialize_ordered_bulk_op()
            for query, update in chunk:
                bulk.add_update(dict(query), dict(update), False, True)
            inserted += int(bulk.execute()["nUpserted"])
        else:
            ops = [UpdateOne(dict(query), dict(update), upsert=True) for query, update in chunk]
            inserted += collection.bulk_write(ops, ordered=True).upserted_count
    return inserted
