"""Outbox: attendance accepted during an outage, kept in MongoDB and delivered when it is back.

Two kinds of entry, one per (session, student): the idempotency key is ``session_id:student_id``.

* ``attendance``: the face matched but the external attendance API did not take the record.
  The local :class:`~integrations.models.AttendanceRecord` exists (``synced=False``, so the
  teacher's report counts it as not yet synced); delivering the entry sends that record through
  the roster backend, exactly as a live submission would.
* ``verification``: the face service (Rekognition) was throttled or failing after its own
  retries. The frame picked from the video note (a small JPEG) is kept; delivering the entry
  verifies it. A match records attendance locally, turns the entry into an ``attendance`` entry
  (same key, same place in the order) and tells the student; a mismatch tells them to see the
  teacher.

Guarantees (the tests in ``tests/outbox`` prove each; see docs/reliability.md):

* One entry per key: enqueueing the same (session, student) again changes nothing while it is
  pending (``attendance`` supersedes a pending ``verification``; a new failure after delivery
  re-arms the entry at the end of the queue).
* In order: each lane (``verification``, ``attendance``) is worked strictly by ``seq`` (an atomic
  counter taken at enqueue). Only the head of a lane is ever claimed, and a pass stops at the
  first "service is down" failure, so nothing overtakes an older entry. An error that concerns
  one session only (e.g. its teacher is logged out) holds back that session's entries alone.
* At most once per claim: an entry is claimed by one conditional update (``status=pending`` and
  no live lease) that only one worker can win; it is then finished only by its claimer. A lease
  (``LEASE_SECONDS``) frees the entries of a worker that died. Delivery is idempotent anyway: an
  entry whose record is already synced is delivered as a no-op, and the API treats a repeated
  POST/PUT of the same student as one record.
* Students hear the result: messages are stored on the entry (``notice``) and posted by the bot
  process's worker (also after a restart, or when ``run.py outbox --retry`` did the delivery).

The worker (:class:`OutboxWorker`) is an asyncio task started by ``Services.start`` and stopped by
``Services.stop``; ``python run.py outbox [--retry]`` is :func:`outbox_command`.
"""
from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import os
import socket
import sys
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Optional, TextIO

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

from .api.errors import API_UNAVAILABLE, UNKNOWN_SESSION, UNKNOWN_STUDENT, RosterError
from .models import AttendanceRecord, Session, utcnow
from .presence.faces.base import SERVICE_ERROR, STUDENT_FAULTS, THROTTLED, FaceResult, FaceVerifier
from .timefmt import as_utc, clock

log = logging.getLogger(__name__)

ATTENDANCE = "attendance"
VERIFICATION = "verification"
KINDS = (ATTENDANCE, VERIFICATION)
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
STATUSES = (PENDING, DELIVERED, FAILED)

FACE_SERVICE_DOWN = frozenset({THROTTLED, SERVICE_ERROR})  # the face service, not the student
PERMANENT_KEYS = frozenset({UNKNOWN_SESSION, UNKNOWN_STUDENT})  # retrying can never succeed

LEASE_SECONDS = 300.0  # a claim older than this belongs to a dead worker and may be taken over
INTERVAL_SECONDS = 15.0  # between passes while all is well
MAX_INTERVAL_SECONDS = 300.0  # backoff cap while a service stays down
MAX_FRAME_BYTES = 2 * 1024 * 1024
DELIVERED_TTL_SECONDS = 30 * 24 * 3600  # delivered entries are kept a month, then expire

STUDENT_BOT = "student"
EVENT_VERIFIED_LATER = "verified_later"
EVENT_NOT_VERIFIED_LATER = "not_verified_later"

# mongomock (tests, demo) does not make "filter + update" atomic across threads; a MongoDB server
# does. Holding this lock around the conditional updates makes the in-process case as strict.
_ATOMIC = threading.Lock()


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
    frame = BinaryField(max_bytes=MAX_FRAME_BYTES)  # verification: the JPEG to check (dropped when done)
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


def ensure_indexes() -> None:
    for document in DOCUMENTS:
        document.ensure_indexes()


def _next_seq() -> int:
    with _ATOMIC:
        doc = OutboxCounter._get_collection().find_one_and_update(
            {"_id": "outbox"}, {"$inc": {"value": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
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
        fields["frame"] = bytes(frame)
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
                         user_id: Optional[int] = None, subject: str = "", error: str = SERVICE_ERROR) -> Enqueued:
    """Keep a frame to verify when the face service is back; idempotent per session+student."""
    if not frame_jpeg:
        raise ValueError("no frame to keep")
    payload = {"batch": batch, "distance_m": distance_m}
    return _enqueue(VERIFICATION, session_id, student_id, payload=payload, frame=frame_jpeg, chat_id=chat_id,
                    user_id=user_id, subject=subject, error=error)


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
    with _ATOMIC:
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


# ------------------------------------------------------------------------------- keeping frames
class FrameKeeper(FaceVerifier):
    """Wraps the queue's verifier and remembers the last frame it could not check (service down).

    The verification queue hands ``on_done`` the result only; the hook takes the frame from here
    (by student id) to put it in the outbox. Bounded: at most ``keep`` frames are held.
    """

    def __init__(self, inner: FaceVerifier, keep: int = 256):
        self.inner = inner
        self.name = inner.name
        self.keep = keep
        self._frames: "collections.OrderedDict[str, tuple[str, bytes]]" = collections.OrderedDict()
        self._lock = threading.Lock()

    def verify(self, frame_jpeg: bytes, batch: str, student_id: str) -> FaceResult:
        result = self.inner.verify(frame_jpeg, batch, student_id)
        if result.reason in FACE_SERVICE_DOWN and frame_jpeg and len(frame_jpeg) <= MAX_FRAME_BYTES:
            with self._lock:
                self._frames[str(student_id)] = (str(batch), bytes(frame_jpeg))
                self._frames.move_to_end(str(student_id))
                while len(self._frames) > self.keep:
                    self._frames.popitem(last=False)
        return result

    def take(self, student_id: str) -> Optional[tuple[str, bytes]]:
        """(batch, frame) kept for this student, once."""
        with self._lock:
            return self._frames.pop(str(student_id), None)

    def store_reference(self, batch: str, student_id: str, photo_jpeg: bytes) -> FaceResult:
        return self.inner.store_reference(batch, student_id, photo_jpeg)

    def has_reference(self, batch: str, student_id: str) -> bool:
        return self.inner.has_reference(batch, student_id)

    def close(self) -> None:
        self.inner.close()


def install_frame_keeper(services: Any) -> Optional[FrameKeeper]:
    """Wrap the verification queue's verifier so frames of failed checks can be kept."""
    queue = getattr(services, "verify_queue", None)
    process = getattr(queue, "process", None)
    inner = getattr(process, "verifier", None)
    if inner is None:
        return None
    if isinstance(inner, FrameKeeper):
        return inner
    keeper = FrameKeeper(inner)
    process.verifier = keeper
    return keeper


# ------------------------------------------------------------------------ hooks' entry points
async def queue_attendance(session_id: str, student_id: str, status: str = "present", method: str = "face", *,
                           similarity: Optional[float] = None, distance_m: Optional[float] = None,
                           chat_id: Optional[int] = None, user_id: Optional[int] = None, subject: str = "",
                           error: str = API_UNAVAILABLE) -> Enqueued:
    """Async :func:`enqueue_attendance` for hooks (the record itself is already stored locally)."""
    return await asyncio.to_thread(
        lambda: enqueue_attendance(session_id, student_id, status, method, similarity=similarity,
                                   distance_m=distance_m, chat_id=chat_id, user_id=user_id, subject=subject,
                                   error=error))


async def queue_verification(services: Any, session_id: str, student_id: str, *, chat_id: Optional[int],
                             user_id: Optional[int], subject: str, distance_m: Optional[float],
                             error: str) -> bool:
    """Keep the frame the face service could not check; False if there is none to keep."""
    worker = getattr(services, "outbox", None)
    keeper = getattr(worker, "frames", None)
    kept = keeper.take(student_id) if keeper is not None else None
    if kept is None:
        return False
    batch, frame = kept
    await asyncio.to_thread(
        lambda: enqueue_verification(session_id, student_id, batch, frame, distance_m=distance_m, chat_id=chat_id,
                                     user_id=user_id, subject=subject, error=error))
    return True


# ---------------------------------------------------------------------------------------- worker
@dataclass
class PassResult:
    """What one delivery pass did."""

    delivered: int = 0  # attendance entries now in the API (or found already synced)
    verified: int = 0  # verifications that got an answer from the face service
    failed: int = 0  # entries given up (permanent errors)
    notices: int = 0  # messages posted to students
    stopped: str = ""  # the failures that stopped lanes ("api_unavailable", "throttled", both)
    held: int = 0  # sessions held back by a session-only error this pass
    busy: bool = False  # another worker held the head of a lane
    remaining: int = 0  # pending entries after the pass

    def stop(self, reason: str) -> None:
        if reason not in self.stopped.split(", "):
            self.stopped = f"{self.stopped}, {reason}" if self.stopped else reason

    @property
    def ok(self) -> bool:
        return not self.stopped and not self.held

    def summary(self) -> str:
        text = (f"delivered {self.delivered}, verified {self.verified}, failed {self.failed}, "
                f"notified {self.notices}; {self.remaining} still pending")
        if self.stopped:
            text += f"; stopped: {self.stopped}"
        if self.held:
            text += f"; {self.held} session(s) held back"
        if self.busy:
            text += "; another worker is delivering"
        return text


class OutboxWorker:
    """Delivers the outbox: verification lane, then attendance lane, then students' messages.

    ``roster`` is the :class:`~integrations.roster.service.RosterService`; ``verifier`` checks
    kept frames (None: verification entries wait); ``engine`` posts messages (None: they wait for
    a worker that has one).
    """

    def __init__(self, roster: Any, verifier: Optional[FaceVerifier] = None, engine: Any = None, *,
                 timezone: str = "UTC", interval: float = INTERVAL_SECONDS,
                 max_interval: float = MAX_INTERVAL_SECONDS, lease_s: float = LEASE_SECONDS,
                 worker_id: Optional[str] = None) -> None:
        self.roster = roster
        self.verifier = verifier
        self.engine = engine
        self.timezone = timezone
        self.interval = float(interval)
        self.max_interval = max(float(max_interval), self.interval)
        self.lease_s = float(lease_s)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.frames: Optional[FrameKeeper] = None
        self.passes = 0
        self.last: Optional[PassResult] = None
        self.delays: collections.deque[float] = collections.deque(maxlen=20)  # recent waits between passes
        self._task: Optional[asyncio.Task[None]] = None
        self._pass_lock: Optional[asyncio.Lock] = None
        self._services: Any = None

    @classmethod
    def for_services(cls, services: Any, **options: Any) -> "OutboxWorker":
        """The worker of a running app; the engine is read from ``services`` at each pass."""
        settings = services.settings
        options.setdefault("timezone", getattr(settings, "timezone", "UTC"))
        options.setdefault("interval", getattr(settings, "outbox_interval_seconds", INTERVAL_SECONDS))
        worker = cls(services.roster, services.verifier, None, **options)
        worker._services = services
        worker.frames = install_frame_keeper(services)
        return worker

    def _engine(self) -> Any:
        return self.engine if self.engine is not None else getattr(self._services, "engine", None)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background task (idempotent; needs a running loop)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="outbox")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _loop(self) -> None:
        delay = self.interval
        while True:
            try:
                result = await self.run_once()
                delay = self.interval if result.ok else min(self.max_interval, max(delay, self.interval) * 2)
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup must not end the worker
                log.exception("outbox pass failed")
                delay = min(self.max_interval, max(delay, self.interval) * 2)
            self.delays.append(delay)
            await asyncio.sleep(delay)

    # -- one pass ----------------------------------------------------------------------------
    async def run_once(self) -> PassResult:
        """One delivery pass over every lane; never two at once in this worker."""
        if self._pass_lock is None:
            self._pass_lock = asyncio.Lock()
        async with self._pass_lock:
            result = PassResult()
            await self._verification_lane(result)
            await self._attendance_lane(result)
            await self._notify(result)
            result.remaining = await asyncio.to_thread(pending_count)
            self.passes += 1
            self.last = result
            if result.delivered or result.verified or result.failed or result.stopped:
                log.info("outbox pass: %s", result.summary())
            return result

    async def _claim(self, kind: str, skip: set[str], result: PassResult) -> Optional[OutboxEntry]:
        entry, busy = await asyncio.to_thread(
            lambda: claim_head(kind, self.worker_id, skip_sessions=set(skip), lease_s=self.lease_s))
        result.busy = result.busy or busy
        return entry

    async def _attendance_lane(self, result: PassResult) -> None:
        held: set[str] = set()
        while True:
            entry = await self._claim(ATTENDANCE, held, result)
            if entry is None:
                break
            outcome = await self._deliver(entry)
            if outcome == "stop":
                result.stop(API_UNAVAILABLE)
                break
            if outcome == "held":
                held.add(entry.session_id)
            elif outcome == "failed":
                result.failed += 1
            else:
                result.delivered += 1
        result.held = len(held)

    async def _deliver(self, entry: OutboxEntry) -> str:
        record = await asyncio.to_thread(_record_of, entry)
        if record is not None and record.synced:
            await asyncio.to_thread(finish, entry, self.worker_id, "already_synced")
            return "delivered"
        payload = entry.payload or {}
        status = record.status if record is not None else payload.get("status", "present")
        method = record.method if record is not None else payload.get("method", "face")
        try:
            await self.roster.submit_attendance(
                entry.session_id, entry.student_id, status, method,
                similarity=payload.get("similarity"), distance_m=payload.get("distance_m"))
        except RosterError as exc:
            key = exc.message_key
            if key == API_UNAVAILABLE:  # the API is down: nothing behind this entry may overtake it
                await asyncio.to_thread(release, entry, self.worker_id, key)
                return "stop"
            if key in PERMANENT_KEYS:
                log.warning("outbox: %s can never be delivered (%s)", entry.key, key)
                await asyncio.to_thread(give_up, entry, self.worker_id, key)
                return "failed"
            log.warning("outbox: %s held back (%s)", entry.key, key)  # e.g. the teacher logged out
            await asyncio.to_thread(release, entry, self.worker_id, key)
            return "held"
        except Exception as exc:  # a bug or a database error: keep the entry, hold its session
            log.exception("outbox: delivering %s failed", entry.key)
            await asyncio.to_thread(release, entry, self.worker_id, type(exc).__name__)
            return "held"
        await asyncio.to_thread(finish, entry, self.worker_id, "synced")
        return "delivered"

    async def _verification_lane(self, result: PassResult) -> None:
        if self.verifier is None:
            return
        while True:
            entry = await self._claim(VERIFICATION, set(), result)
            if entry is None:
                return
            frame = bytes(entry.frame or b"")
            batch = str((entry.payload or {}).get("batch") or "")
            record = await asyncio.to_thread(_record_of, entry)
            if record is not None and record.status == "present":  # marked meanwhile (retry, teacher)
                await asyncio.to_thread(finish, entry, self.worker_id, "already_present")
                result.verified += 1
                continue
            try:
                face = await asyncio.to_thread(self.verifier.verify, frame, batch, entry.student_id)
            except Exception as exc:  # verifiers should not raise; treat it as the service failing
                log.exception("outbox: verifier failed")
                face = FaceResult(False, SERVICE_ERROR, detail=type(exc).__name__)
            if face.reason in FACE_SERVICE_DOWN:
                await asyncio.to_thread(release, entry, self.worker_id, face.reason)
                result.stop(face.reason)
                return
            try:
                await asyncio.to_thread(self._settle_verification, entry, face)
            except RosterError as exc:
                if exc.message_key not in PERMANENT_KEYS:
                    raise
                await asyncio.to_thread(give_up, entry, self.worker_id, exc.message_key)
                result.failed += 1
                continue
            except Exception as exc:  # a database error: keep the entry (and its frame) for later
                log.exception("outbox: recording the late check of %s failed", entry.key)
                await asyncio.to_thread(release, entry, self.worker_id, type(exc).__name__)
                result.stop(type(exc).__name__)
                return
            result.verified += 1

    def _settle_verification(self, entry: OutboxEntry, face: FaceResult) -> None:
        """Record the answer of a late face check locally; the attendance lane sends it on."""
        from .roster import records

        payload = dict(entry.payload or {})
        if not (face.matched or face.reason in STUDENT_FAULTS):  # no reference photo, unusable frame
            finish(entry, self.worker_id, face.reason, self._notice(entry, EVENT_NOT_VERIFIED_LATER, None))
            return
        session = records.get_session(entry.session_id, entry.student_id)
        records.require_snapshot_student(session, entry.student_id)
        status = "present" if face.matched else "failed"
        if not face.matched:
            Session.record_face_failure(session.id, entry.student_id)
        record, changed = AttendanceRecord.mark(session.id, entry.student_id, status, "face",
                                                similarity=face.similarity, distance_m=payload.get("distance_m"))
        if changed and record.rev == 1 and entry.created_at:
            # Present since the video arrived, not since the service came back.
            AttendanceRecord.objects(id=record.id, rev=record.rev).update_one(set__time=entry.created_at)
            record = AttendanceRecord.objects(id=record.id).first() or record
        payload.update(status=status, method="face", similarity=face.similarity)
        event = EVENT_VERIFIED_LATER if face.matched else EVENT_NOT_VERIFIED_LATER
        to_attendance(entry, self.worker_id, payload, face.reason, self._notice(entry, event, record))

    def _notice(self, entry: OutboxEntry, event: str, record: Optional[AttendanceRecord]) -> Optional[dict]:
        if entry.chat_id is None:
            return None
        moment = record.time if record is not None else entry.created_at
        return {"event": event, "data": {"_later_subject": entry.subject or "", "_later_time": clock(moment, self.timezone)}}

    async def _notify(self, result: PassResult) -> None:
        engine = self._engine()
        if engine is None:
            return
        waiting = await asyncio.to_thread(
            lambda: list(OutboxEntry.objects(notice_pending=True).exclude("frame").order_by("seq")))
        for entry in waiting:
            claimed = await asyncio.to_thread(
                lambda: OutboxEntry.objects(id=entry.id, notice_pending=True).update_one(set__notice_pending=False))
            if not claimed:  # another worker posts it
                continue
            notice = entry.notice or {}
            try:
                # Our events always answer; no answer means the engine refused it (stopping).
                said = await engine.post_event(entry.bot or STUDENT_BOT, int(entry.chat_id),
                                               str(notice.get("event")), dict(notice.get("data") or {}),
                                               entry.user_id)
            except Exception:
                log.exception("outbox: telling %s failed; will try again", entry.key)
                said = None
            if not said:
                await asyncio.to_thread(
                    lambda: OutboxEntry.objects(id=entry.id).update_one(set__notice_pending=True))
                continue
            result.notices += 1


def _record_of(entry: OutboxEntry) -> Optional[AttendanceRecord]:
    from bson import ObjectId
    from bson.errors import InvalidId

    try:
        oid = ObjectId(entry.session_id)
    except (InvalidId, TypeError):
        return None
    return AttendanceRecord.objects(session=oid, student_id=entry.student_id).first()


# ------------------------------------------------------------------------------------------ CLI
def _age(moment: Optional[dt.datetime]) -> str:
    if moment is None:
        return "-"
    seconds = int((utcnow() - as_utc(moment)).total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def print_entries(out: TextIO = sys.stdout) -> int:
    """Print pending and failed entries (ids, kinds, errors: never frames or secrets)."""
    entries = open_entries()
    pending = [e for e in entries if e.status == PENDING]
    failed = [e for e in entries if e.status == FAILED]
    notices = OutboxEntry.objects(notice_pending=True).count()
    print(f"outbox: {len(pending)} pending "
          f"({sum(e.kind == ATTENDANCE for e in pending)} attendance, "
          f"{sum(e.kind == VERIFICATION for e in pending)} verification), {len(failed)} failed, "
          f"{notices} message(s) to students waiting for the bot", file=out)
    if entries:
        print(f"{'seq':>5}  {'kind':<12} {'status':<8} {'session':<24} {'student':<16} {'tries':>5}  "
              f"{'age':>5}  last error", file=out)
    for e in entries:
        print(f"{e.seq:>5}  {e.kind:<12} {e.status:<8} {e.session_id:<24} {e.student_id:<16} "
              f"{e.attempts:>5}  {_age(e.created_at):>5}  {e.last_error or '-'}", file=out)
    return len(pending)


async def _retry(settings: Any) -> PassResult:
    from . import crypto
    from .roster import make_roster
    from .roster.service import RosterService

    crypto.init_secret_box(settings)
    roster = RosterService(make_roster(settings))
    verifier = None
    if await asyncio.to_thread(pending_count, VERIFICATION):
        from .presence.faces import make_verifier

        verifier = make_verifier(settings)
    try:
        worker = OutboxWorker(roster, verifier, None, timezone=settings.timezone)
        return await worker.run_once()
    finally:
        roster.close()
        if verifier is not None:
            verifier.close()


def outbox_command(settings: Any, retry: bool = False, *, out: TextIO = sys.stdout, connect: bool = True) -> int:
    """``python run.py outbox [--retry]``: list pending/failed entries; --retry runs one pass.

    Exit status: 0, or 1 when --retry left entries pending because a service is still down.
    Messages to students are not sent from here (no bot): the running bot's worker posts them.
    ``connect=False`` uses the already connected database (tests).
    """
    if connect:
        from .db import connect_db
        from .db import ensure_indexes as ensure_all_indexes

        if str(getattr(settings, "mongodb_uri", "")).startswith("mongomock://"):
            print("note: MONGODB_URI is in-memory (mongomock); this command sees only this process's data.",
                  file=sys.stderr)
        connect_db(settings.mongodb_uri)
        ensure_all_indexes()
    print_entries(out)
    if not retry:
        return 0
    result = asyncio.run(_retry(settings))
    print(f"retry: {result.summary()}", file=out)
    print_entries(out)
    return 1 if result.remaining and not result.ok else 0
