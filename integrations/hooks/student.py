"""Hooks of flows/student.yaml: who you are, the code, where you are, and your face.

A student is marked present only when all three checks pass: they know the session's code
(check_code), they are where the class is (check_location) and their face matches their
reference photo (submit_video → the verification queue → an event back into their chat).
"""
from __future__ import annotations

import functools
import logging
import math
from typing import Any

from pymongo import ReturnDocument

from engine.hooks import HookContext, HookRegistry, HookResult
from engine.types import VideoNote

from ..api.errors import RosterError
from ..models import Session, utcnow
from ..presence import geofence, otp
from ..presence.attempts import SlidingWindow
from ..presence.verify_queue import VerifyJob, VerifyOutcome
from ..presence.video import validate_video_note
from ..roster import records
from ..roster.service import check_own_contact
from ..services import Services
from ..timefmt import as_utc, clock
from .common import as_contact, blocking, services_of, session_of, unavailable

log = logging.getLogger(__name__)

STUDENT_BOT = "student"
MB = 1024 * 1024


def register(registry: HookRegistry) -> HookRegistry:
    registry.register("identify_student", identify_student, outcomes=("ok", "not_own", "unknown"),
                      provides=("student_id", "student_name", "student_batch"))
    registry.register("check_code", check_code,
                      outcomes=("ok", "malformed", "wrong", "locked", "no_session", "expired",
                                "not_on_roster", "already_marked", "slow_down"),
                      provides=("session_id", "subject", "teacher_name", "attempts_left", "marked_time",
                                "wait_min"))
    registry.register("check_location", check_location, outcomes=("ok", "too_far", "inaccurate", "invalid", "expired"),
                      provides=("distance_m", "radius_m", "accuracy_m"))
    registry.register("submit_video", submit_video,
                      outcomes=("queued", "busy", "too_large", "too_long", "empty", "expired", "already_marked"),
                      provides=("size_mb", "max_mb", "duration_s", "max_s"))
    return registry


def _is_open(session: Session | None) -> bool:
    return bool(session and session.status == "open" and as_utc(session.expires_at) > utcnow())


# ------------------------------------------------------------------------------------ identity
async def identify_student(ctx: HookContext) -> HookResult:
    """Own contact only; then the phone must be on a roster (local, or an open session's)."""
    try:
        phone = check_own_contact(as_contact(ctx.answer), ctx.update.user_id)
    except RosterError:
        return HookResult("not_own")
    student = await services_of(ctx).roster.identify_student(phone, ctx.update.user_id)
    if student is None:
        return HookResult("unknown")
    return HookResult("ok", {"student_id": student.student_id, "student_name": student.name or student.student_id,
                             "student_batch": student.batch})


# ---------------------------------------------------------------------------------------- code
def _open_sessions_of(student_id: str) -> list[Session]:
    query = Session.objects(status="open", expires_at__gt=utcnow(), students__student_id=student_id)
    return list(records.for_student(query, student_id))


async def check_code(ctx: HookContext) -> HookResult:
    """Constant-time code check; wrong codes count against every open session of the student."""
    services = services_of(ctx)
    student_id = str(ctx.data.get("student_id") or "")
    code = otp.normalize(ctx.answer)
    if code is None:
        return HookResult("malformed")
    policy = otp.OtpPolicy(services.settings.otp_max_attempts)
    guesses = _guess_limiter(services)
    if guesses.blocked(ctx.update.user_id):
        return HookResult("slow_down", {"wait_min": max(1, math.ceil(guesses.retry_after(ctx.update.user_id) / 60))})
    session = await services.roster.session_by_otp(code, student_id)
    on_roster = session is not None and session.student(student_id) is not None
    if session is not None and on_roster and otp.codes_equal(code, session.otp):
        data: dict[str, Any] = {"session_id": str(session.id), "subject": session.subject,
                                "teacher_name": session.teacher.name or session.teacher.email}
        if session.is_locked_out(student_id):
            return HookResult("locked", data)
        if not _is_open(session):
            return HookResult("expired", data)
        record = await services.roster.attendance_of(str(session.id), student_id)
        if record is not None and record.status == "present":
            data["marked_time"] = clock(record.time, services.settings.timezone)
            return HookResult("already_marked", data)
        return HookResult("ok", data)
    # A wrong code (or one of a class the student is not in): count it, lock out at the limit.
    guesses.hit(ctx.update.user_id)
    mine = await blocking(_open_sessions_of, student_id)
    counts = [await blocking(_count_wrong_code, s.id, student_id, policy.max_attempts,
                             services.settings.otp_session_max_wrong) for s in mine]
    if any(locked for _, locked in counts):
        return HookResult("locked")
    left = policy.max_attempts - max((count for count, _ in counts), default=0)
    if session is not None and _is_open(session) and not on_roster:
        return HookResult("not_on_roster", {"attempts_left": left})
    if not mine:
        return HookResult("no_session")
    return HookResult("wrong", {"attempts_left": left})


def _guess_limiter(services: Services) -> SlidingWindow:
    """Wrong codes per Telegram user in 10 minutes, across all sessions and student accounts."""
    limiter = services.extra.get("otp_guesses")
    if limiter is None:
        limiter = services.extra["otp_guesses"] = SlidingWindow(services.settings.otp_user_wrong_per_10min, 600)
    return limiter


def _count_wrong_code(session_id: Any, student_id: str, max_attempts: int, session_cap: int) -> tuple[int, bool]:
    """One wrong code against a session: per student (lockout at the limit) and in total.

    Once a session has drawn `session_cap` wrong codes from everyone together (many accounts
    guessing), every further miss locks that student out at once, so guessing across accounts
    buys at most `session_cap` + one try per student.
    """
    total = Session._get_collection().find_one_and_update(
        {"_id": session_id}, {"$inc": {"failed_otp_total": 1}},
        projection={"failed_otp_total": True}, return_document=ReturnDocument.AFTER,
    )
    count, locked = Session.record_failed_otp(session_id, student_id, max_attempts)
    if not locked and total is not None and total["failed_otp_total"] > session_cap:
        Session.objects(id=session_id).update_one(add_to_set__locked_out=student_id)
        return count, True
    return count, locked


# ------------------------------------------------------------------------------------ location
async def check_location(ctx: HookContext) -> HookResult:
    session = await session_of(ctx)
    if not _is_open(session):
        return HookResult("expired")
    assert session is not None
    where = ctx.answer or {}
    result = geofence.check_location(
        (where.get("latitude"), where.get("longitude")), (session.latitude, session.longitude),
        radius_m=session.radius_m, horizontal_accuracy=where.get("horizontal_accuracy"),
        forwarded=ctx.update.forwarded,
    )
    params = result.params()
    data = {"distance_m": params.get("distance_m"), "radius_m": params.get("radius_m"),
            "accuracy_m": params.get("accuracy_m")}
    if result.ok:
        return HookResult("ok", data)
    if result.reason == "too_far":
        return HookResult("too_far", data)
    if result.reason == "inaccurate":
        return HookResult("inaccurate", data)
    return HookResult("invalid", data)  # a location that makes no sense (NaN, out of range)


# --------------------------------------------------------------------------------------- video
async def submit_video(ctx: HookContext) -> HookResult:
    """Check what can be checked at once, then queue the face check and answer right away."""
    services = services_of(ctx)
    settings = services.settings
    video = ctx.answer
    if not isinstance(video, VideoNote):
        return HookResult("empty")
    check = validate_video_note(
        video.data, forwarded=ctx.update.forwarded, duration=video.duration, file_size=video.file_size,
        max_bytes=settings.video_max_bytes, max_seconds=settings.video_max_seconds,
    )
    limits = {"size_mb": round(check.size_bytes / MB, 1), "max_mb": round(settings.video_max_bytes / MB, 1),
              "duration_s": check.duration_s, "max_s": settings.video_max_seconds}
    if not check.ok:
        return HookResult(check.reason if check.reason in ("too_large", "too_long") else "empty", limits)
    session = await session_of(ctx)
    if not _is_open(session):
        return HookResult("expired")
    assert session is not None
    student_id = str(ctx.data["student_id"])
    record = await services.roster.attendance_of(str(session.id), student_id)
    if record is not None and record.status == "present":
        return HookResult("already_marked")
    entry = session.student(student_id)
    job = VerifyJob(
        session_id=str(session.id), student_id=student_id,
        batch=entry.batch if entry else str(ctx.data.get("student_batch") or ""),
        data=bytes(video.data),
        on_done=functools.partial(_verified, services, ctx.update.chat_id, ctx.update.user_id,
                                  str(session.id), student_id, session.subject, ctx.data.get("distance_m")),
        meta={"request_id": ctx.request_id},
        prior_failures=session.face_failure_count(student_id),
    )
    if not services.verify_queue.submit(job):
        return HookResult("busy")
    return HookResult("queued")


# Face reasons the student can fix by recording again, and what the flow calls them.
_RETRYABLE = {"mismatch": "mismatch", "no_face": "no_face", "not_live": "not_live"}
# The face service is down (after botocore's retries): the frame goes to the outbox and is
# checked when it is back ("queued_offline"); "retry_later" only if no frame could be kept.
_SERVICE = {"throttled", "service_error"}


async def _verified(services: Services, chat_id: int, user_id: int, session_id: str, student_id: str,
                    subject: str, distance_m: Any, outcome: VerifyOutcome) -> None:
    """The queue's answer: record attendance on a match, then tell the student's conversation.

    Outages go to the outbox (integrations/outbox.py): attendance the API did not take, and the
    frame of a check the face service could not do; the student is told it will be done later.
    """
    from .. import outbox

    async def tell(event: str, data: dict[str, Any] | None = None) -> None:
        await services.engine.post_event(STUDENT_BOT, chat_id, event, data or {}, user_id)

    async def submit(status: str, similarity: Any = None) -> bool:
        """Record attendance; False if the API is down (the record waits in the outbox)."""
        try:
            await services.roster.submit_attendance(session_id, student_id, status, "face",
                                                    similarity=similarity, distance_m=distance_m)
            return True
        except RosterError as exc:
            if not unavailable(exc):
                raise
            # Kept locally (unsynced); the outbox worker sends it when the API is back.
            await outbox.queue_attendance(session_id, student_id, status, "face", similarity=similarity,
                                          distance_m=distance_m, chat_id=chat_id, user_id=user_id,
                                          subject=subject, error=exc.message_key)
            return False

    face = outcome.face
    params = outcome.params()
    if outcome.ok:
        data = {"subject": subject, "marked_time": clock(utcnow(), services.settings.timezone)}
        synced = await submit("present", face.similarity if face else None)
        await tell("verified" if synced else "recorded_offline", data)
        return
    reason = outcome.reason
    if reason in _RETRYABLE:
        await blocking(Session.record_face_failure, _oid(session_id), student_id)
        await tell(_RETRYABLE[reason], params)
    elif reason == "attempts_exhausted":
        if outcome.cause in _RETRYABLE:
            await blocking(Session.record_face_failure, _oid(session_id), student_id)
        await submit("failed")
        await tell("attempts_exhausted", params)
    elif reason == "no_reference":
        await tell("no_reference", params)
    elif reason == "too_short":  # a still picture or a one-frame video sent as a note
        await tell("too_short", params)
    elif reason in _SERVICE:
        kept = await outbox.queue_verification(services, session_id, student_id, chat_id=chat_id, user_id=user_id,
                                               subject=subject, distance_m=distance_m, error=reason)
        await tell("queued_offline" if kept else "retry_later", params)
    else:  # corrupt video, undecodable frame, unusable id
        log.info("video of %s not usable: %s", student_id, reason)
        await tell("bad_video", params)


def _oid(session_id: str) -> Any:
    from bson import ObjectId

    return ObjectId(session_id)
