"""The outbox's documents and repository: attendance and face checks waiting out an outage.

Two kinds of entry, one per (session, student): the idempotency key is ``session_id:student_id``.
``attendance``: the face matched but the external attendance API did not take the record (the
local record exists with ``synced=False``). ``verification``: the face service was down; the frame
picked from the video note is kept, encrypted under SECRET_KEY like every other secret at rest
(:func:`frame_of` reads it), until it is checked, and then deleted.

Every transition is one conditional update, so a claim is won by one worker only; what the
worker does with an entry lives in :mod:`integrations.attendance.outbox_worker`. Guarantees and
their tests: docs/reliability.md.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Optional

from bson import ObjectId
from bson.errors import InvalidId
from mongoengine import (
    BinaryField,
    BooleanField,
    DateTimeField,
    DictField,
    Document,
    IntField,
    NotUniqueError,
    StringField,
)
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from integrations.foundation.crypto import DecryptError, get_secret_box
from integrations.foundation.errors import API_UNAVAILABLE
from integrations.foundation.names import SERVICE_ERROR, STUDENT_BOT
from integrations.foundation.timefmt import as_utc
from integrations.storage.documents import AttendanceRecord, utcnow

log = logging.getLogger(__name__)

ATTENDANCE = "attendance"
VERIFICATION = "verification"
KINDS = (ATTENDANCE, VERIFICATION)
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
STATUSES = (PENDING, DELIVERED, FAILED)

LEASE_SECONDS = 300.0  # a claim older than this belongs to a dead worker and may be taken over
MAX_FRAME_BYTES = 2 * 1024 * 1024
# A Fernet token of a MAX_FRAME_BYTES frame: base64 of version, time, IV, padded ciphertext and HMAC.
FRAME_TOKEN_MAX_BYTES = 4 * ((1 + 8 + 16 + MAX_FRAME_BYTES + 16 + 32 + 2) // 3)
DELIVERED_TTL_SECONDS = 30 * 24 * 3600  # delivered entries are kept a month, then expire



def idempotency_key(session_id: str, student_id: str) -> str:
    return f"{session_id}:{student_id}"


# ------------------------------------------------------------------------------------- documents
class OutboxCounter(Document):
    """The outbox's order: one atomic ``$inc`` per enqueue."""

    name = StringField(primary_key=True)
    value = IntField(default=0)

    meta = {"collection": "outbox_counters"}


class OutboxEntry(Document):
    """One (session, student) waiting for a service that was down."""

    key = StringField(required=True)  # idempotency key: "session_id:student_id"
    kind = StringField(choices=KINDS, required=True)
    session_id = StringField(required=True)
    student_id = StringField(required=True)
    seq = IntField(required=True)  # creation order = delivery order
    payload = DictField()  # status, method, similarity, distance_m, batch
    frame = BinaryField(max_bytes=FRAME_TOKEN_MAX_BYTES)  # verification: the JPEG to check, Fernet-encrypted
    # (frame_of decrypts it); dropped when done
    bot = StringField(default=STUDENT_BOT)
    chat_id = IntField()
    user_id = IntField()
    subject = StringField(default="")
    status = StringField(choices=STATUSES, default=PENDING)
    attempts = IntField(default=0)  # delivery attempts (claims)
    last_error = StringField()  # an error key (api_unavailable, throttled...), never a secret
    result = StringField()  # how it ended: synced, already_synced, match, mismatch, ...
    created_at = DateTimeField(default=utcnow)  # first accepted (the student's video time)
    updated_at = DateTimeField(default=utcnow)
    delivered_at = DateTimeField()
    claimed_by = StringField()
    claimed_until = DateTimeField()
    notice = DictField()  # {"event": name, "data": {...}} for the student's chat
    notice_pending = BooleanField(default=False)

    meta = {
        "collection": "outbox",
        "indexes": [
            {"fields": ["key"], "unique": True},
            ("status", "kind", "seq"),  # the head of each lane
            ("session_id", "status"),  # per-session counts for reports
            ("notice_pending", "seq"),
            {"fields": ["delivered_at"], "expireAfterSeconds": DELIVERED_TTL_SECONDS},
        ],
    }

    def __repr__(self) -> str:  # no frame bytes in logs
        return f"<OutboxEntry #{self.seq} {self.kind} {self.key} {self.status}>"


DOCUMENTS = (OutboxCounter, OutboxEntry)


def _next_seq() -> int:
    """The next creation number. Concurrent upserts of one counter may fail or (SecantusDB) answer
    nothing, so the counter is created once apart, and every number is a plain ``$inc``."""
    coll = OutboxCounter._get_collection()

    def bump() -> Optional[dict[str, Any]]:
        return coll.find_one_and_update({"_id": "outbox"}, {"$inc": {"value": 1}},
                                        return_document=ReturnDocument.AFTER)

    doc = bump()
    if doc is None:  # the first entry ever
        try:
            coll.insert_one({"_id": "outbox", "value": 0})
        except DuplicateKeyError:  # another enqueue created it first
            pass
        doc = bump()
    return int(doc["value"])


# --------------------------------------------------------------------------------------- enqueue
@dataclass(frozen=True)
class Enqueued:
    entry: OutboxEntry
    outcome: str  # queued | duplicate | rearmed | upgraded


def _enqueue(kind: str, session_id: str, student_id: str, *, payload: dict[str, Any],
             frame: Optional[bytes], chat_id: Optional[int], user_id: Optional[int], subject: str,
             error: str, bot: str = STUDENT_BOT) -> Enqueued:
    session_id, student_id = str(session_id), str(student_id)
    key = idempotency_key(session_id, student_id)
    now = utcnow()
    fields: dict[str, Any] = {
        "kind": kind, "payload": payload, "bot": bot, "chat_id": chat_id, "user_id": user_id,
        "subject": subject or "", "last_error": error or None, "updated_at": now,
    }
    if frame is not None:
        fields["frame"] = get_secret_box().encrypt_bytes(frame)  # a face is personal data: never in clear
    existing = OutboxEntry.objects(key=key).first()
    if existing is None:
        try:
            entry = OutboxEntry(key=key, session_id=session_id, student_id=student_id, seq=_next_seq(),
                                status=PENDING, created_at=now, **fields)
            entry.save(force_insert=True)
            log.info("outbox: queued %s #%d for %s (%s)", kind, entry.seq, key, error or "-")
            return Enqueued(entry, "queued")
        except NotUniqueError:  # a concurrent enqueue of the same key won
            existing = OutboxEntry.objects(key=key).first()
            if existing is None:  # pragma: no cover - it was removed in between
                raise
    unset = {"unset__frame": True} if frame is None else {}
    if existing.status != PENDING:
        # Delivered (or given up) before; a new failure means there is something new to deliver.
        rearmed = OutboxEntry.objects(id=existing.id, status=existing.status).update_one(
            set__status=PENDING, set__seq=_next_seq(), set__attempts=0, set__created_at=now,
            unset__result=True, unset__delivered_at=True, unset__claimed_by=True, unset__claimed_until=True,
            **{f"set__{k}": v for k, v in fields.items() if v is not None}, **unset,
        )
        if rearmed:
            log.info("outbox: re-armed %s for %s", kind, key)
            return Enqueued(OutboxEntry.objects(id=existing.id).first(), "rearmed")
    elif kind == ATTENDANCE and existing.kind == VERIFICATION:
        # The student was matched live meanwhile: send that instead of checking the old frame.
        upgraded = OutboxEntry.objects(id=existing.id, status=PENDING, kind=VERIFICATION).update_one(
            set__kind=ATTENDANCE, set__payload=payload, set__updated_at=now, unset__frame=True,
            unset__claimed_by=True, unset__claimed_until=True,  # a worker checking the frame loses it
        )
        if upgraded:
            log.info("outbox: %s now waits for the attendance API, not the face service", key)
            return Enqueued(OutboxEntry.objects(id=existing.id).first(), "upgraded")
    return Enqueued(OutboxEntry.objects(id=existing.id).first() or existing, "duplicate")


def enqueue_attendance(session_id: str, student_id: str, status: str = "present", method: str = "face", *,
                       similarity: Optional[float] = None, distance_m: Optional[float] = None,
                       chat_id: Optional[int] = None, user_id: Optional[int] = None, subject: str = "",
                       error: str = API_UNAVAILABLE) -> Enqueued:
    """Queue the sync of a (locally recorded) attendance mark; idempotent per session+student."""
    payload = {"status": status, "method": method, "similarity": similarity, "distance_m": distance_m}
    return _enqueue(ATTENDANCE, session_id, student_id, payload=payload, frame=None, chat_id=chat_id,
                    user_id=user_id, subject=subject, error=error)


def enqueue_verification(session_id: str, student_id: str, batch: str, frame_jpeg: bytes, *,
                         distance_m: Optional[float] = None, chat_id: Optional[int] = None,
                         user_id: Optional[int] = None, subject: str = "", error: str = SERVICE_ERROR,
                         answers: Optional[dict] = None) -> Enqueued:
    """Keep a frame to verify when the face service is back; idempotent per session+student."""
    if not frame_jpeg:
        raise ValueError("no frame to keep")
    payload = {"batch": batch, "distance_m": distance_m}
    if answers:
        payload["answers"] = dict(answers)
    return _enqueue(VERIFICATION, session_id, student_id, payload=payload, frame=frame_jpeg, chat_id=chat_id,
                    user_id=user_id, subject=subject, error=error)


def frame_of(entry: OutboxEntry) -> bytes:
    """The kept frame in clear; DecryptError when SECRET_KEY cannot read it (the key changed). A
    frame kept in clear by a version before encryption (a JPEG) is read as it is."""
    stored = bytes(entry.frame or b"")
    if not stored:
        return b""
    try:
        return get_secret_box().decrypt_bytes(stored)
    except DecryptError:
        if stored[:3] == b"\xff\xd8\xff":
            return stored
        raise


# ------------------------------------------------------------------------ claims and transitions
def _live_claim(entry: OutboxEntry, now: dt.datetime) -> bool:
    return bool(entry.claimed_until and as_utc(entry.claimed_until) > now)


def claim_head(kind: str, worker: str, *, skip_sessions: frozenset[str] | set[str] = frozenset(),
               lease_s: float = LEASE_SECONDS) -> tuple[Optional[OutboxEntry], bool]:
    """Claim the oldest pending entry of a lane: (entry, busy).

    ``busy`` is True when the head is claimed by another live worker: the caller must stop, or
    it would overtake it. The claim is one conditional update (pending, no live lease), so of two
    workers at most one gets an entry.
    """
    now = utcnow()
    query = OutboxEntry.objects(status=PENDING, kind=kind)
    if skip_sessions:
        query = query.filter(session_id__nin=sorted(skip_sessions))
    head = query.order_by("seq", "id").exclude("frame").first()
    if head is None:
        return None, False
    if _live_claim(head, now) and head.claimed_by != worker:
        return None, True
    won = OutboxEntry._get_collection().update_one(
        {"_id": head.id, "status": PENDING,
         "$or": [{"claimed_until": None}, {"claimed_until": {"$lte": now}}, {"claimed_by": worker}]},
        {"$set": {"claimed_by": worker, "claimed_until": now + dt.timedelta(seconds=lease_s),
                  "updated_at": now},
         "$inc": {"attempts": 1}},
    ).modified_count
    if not won:
        return None, True
    return OutboxEntry.objects(id=head.id).first(), False


def _mine(entry: OutboxEntry, worker: str, **extra: Any) -> Any:
    return OutboxEntry.objects(id=entry.id, status=PENDING, claimed_by=worker, **extra)


def release(entry: OutboxEntry, worker: str, error: str) -> bool:
    """Give the claim back after a failure (the entry stays pending, first in its lane)."""
    return bool(_mine(entry, worker).update_one(
        set__last_error=error, set__updated_at=utcnow(), unset__claimed_by=True, unset__claimed_until=True))


def finish(entry: OutboxEntry, worker: str, result: str, notice: Optional[dict[str, Any]] = None) -> bool:
    """Mark delivered (only by its claimer); drops the frame, stores the student's message."""
    now = utcnow()
    fields: dict[str, Any] = {"set__status": DELIVERED, "set__result": result, "set__delivered_at": now,
                              "set__updated_at": now, "unset__frame": True, "unset__claimed_by": True,
                              "unset__claimed_until": True}
    if notice:
        fields.update(set__notice=notice, set__notice_pending=True)
    return bool(_mine(entry, worker, kind=entry.kind).update_one(**fields))


def give_up(entry: OutboxEntry, worker: str, error: str) -> bool:
    """A permanent error (the session or the student is gone): stop retrying, keep it visible."""
    return bool(_mine(entry, worker).update_one(
        set__status=FAILED, set__last_error=error, set__updated_at=utcnow(), unset__frame=True,
        unset__claimed_by=True, unset__claimed_until=True))


def to_attendance(entry: OutboxEntry, worker: str, payload: dict[str, Any], result: str,
                  notice: Optional[dict[str, Any]]) -> bool:
    """A verification that ended with a local record: now only the API delivery is left."""
    fields: dict[str, Any] = {"set__kind": ATTENDANCE, "set__payload": payload, "set__result": result,
                              "set__updated_at": utcnow(), "unset__frame": True, "unset__claimed_by": True,
                              "unset__claimed_until": True, "unset__last_error": True}
    if notice:
        fields.update(set__notice=notice, set__notice_pending=True)
    return bool(_mine(entry, worker, kind=VERIFICATION).update_one(**fields))


# ---------------------------------------------------------------------------------------- reads
def pending_count(kind: Optional[str] = None, session_id: Optional[str] = None) -> int:
    query = OutboxEntry.objects(status=PENDING)
    if kind:
        query = query.filter(kind=kind)
    if session_id:
        query = query.filter(session_id=str(session_id))
    return query.count()


def open_entries() -> list[OutboxEntry]:
    """Pending and failed entries, oldest first (without frame bytes)."""
    return list(OutboxEntry.objects(status__in=[PENDING, FAILED]).exclude("frame").order_by("seq", "id"))


def record_of(entry: OutboxEntry) -> Optional[AttendanceRecord]:
    """The local attendance record an entry is about (None if the session id is not one)."""
    try:
        oid = ObjectId(entry.session_id)
    except (InvalidId, TypeError):
        return None
    return AttendanceRecord.objects(session=oid, student_id=entry.student_id).first()


def set_record_time(record: AttendanceRecord, moment: dt.datetime) -> AttendanceRecord:
    """Date a late-checked record from when its video arrived, not when the service came back."""
    AttendanceRecord.objects(id=record.id, rev=record.rev).update_one(set__time=moment)
    return AttendanceRecord.objects(id=record.id).first() or record


# ------------------------------------------------------------------------------ students' messages
def notices_waiting() -> list[OutboxEntry]:
    return list(OutboxEntry.objects(notice_pending=True).exclude("frame").order_by("seq"))


def notices_count() -> int:
    return OutboxEntry.objects(notice_pending=True).count()


def claim_notice(entry: OutboxEntry) -> bool:
    """Take the entry's message to post (one worker wins)."""
    return bool(OutboxEntry.objects(id=entry.id, notice_pending=True).update_one(set__notice_pending=False))


def restore_notice(entry: OutboxEntry) -> None:
    """The message could not be posted: leave it for the next pass."""
    OutboxEntry.objects(id=entry.id).update_one(set__notice_pending=True)
