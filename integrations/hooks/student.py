"""Hooks of flows/student.yaml: who you are, the code, where you are, and your face.

A student is marked present only when all three checks pass: they know the session's code
(check_code), they are where the class is (check_location) and their face matches their
reference photo (submit_video → the verification queue → an event back into their chat).
"""
from __future__ import annotations

import functools
import logging
import math
import uuid
from typing import Any

from engine import HookContext, HookRegistry, HookResult, VideoNote
from integrations.attendance import audit as events
from integrations.attendance.verification import FACE_CHECK_LEASE_S, CheckIn
from integrations.foundation import names
from integrations.foundation.blocking import run_blocking
from integrations.foundation.errors import RosterError
from integrations.foundation.timefmt import clock
from integrations.hooks.common import as_contact, audit, normalise_student_id, services_of, session_of
from integrations.roster import records
from integrations.presence import geofence, otp
from integrations.presence.verify_queue import VerifyJob
from integrations.presence.video import validate_video_note
from integrations.presence.video_probe import probe as probe_video
from integrations.roster.service import check_own_contact

log = logging.getLogger(__name__)

MB = 1024 * 1024


STUDENT_KEYS = ("student_id", "student_name", "student_batch")
RECORD_ANSWERS = "record_answers"  # flow data: which saved answers are kept with the attendance record


def register(registry: HookRegistry) -> HookRegistry:
    registry.register("identity_mode", identity_mode, outcomes=(names.BY_CONTACT, names.BY_STUDENT_ID))
    registry.register("identify_student", identify_student, outcomes=("ok", "not_own", "unknown", "not_open"),
                      provides=STUDENT_KEYS)
    registry.register("identify_by_student_id", identify_by_student_id,
                      outcomes=("ok", "unknown", "not_open", "taken", "other_student"),
                      provides=(*STUDENT_KEYS, "bound_student_id"))
    registry.register("check_code", audited_code(check_code),
                      outcomes=("ok", "malformed", "wrong", "locked", "no_session", "expired",
                                "already_marked", "slow_down"),
                      provides=("session_id", "subject", "teacher_name", "attempts_left", "marked_time",
                                "wait_min"), reads=("student_id",))
    registry.register("check_location", check_location, outcomes=("ok", "too_far", "inaccurate", "invalid", "expired"),
                      provides=("distance_m", "radius_m", "accuracy_m"), reads=("session_id", "student_id"))
    registry.register("submit_video", submit_video,
                      outcomes=("queued", "busy", "too_large", "too_long", "empty", "expired", "already_marked",
                                "unsupported", "too_big_frame", "checking", "exhausted"),
                      provides=("size_mb", "max_mb", "duration_s", "max_s", "width_px", "height_px", "max_px",
                                "max_attempts"),
                      reads=("session_id", "student_id", "student_batch", "distance_m", RECORD_ANSWERS))
    return registry


# ------------------------------------------------------------------------------------ identity
def identity_mode(ctx: HookContext) -> str:
    """How students say who they are: `contact` or `student_id` (STUDENT_IDENTITY; `auto` is
    contact on the local roster, which has phones, and student_id on the http backend)."""
    return services_of(ctx).settings.identity_mode()


def _student_data(student: Any) -> dict[str, Any]:
    return {"student_id": student.student_id, "student_name": student.name or student.student_id,
            "student_batch": student.batch}


async def identify_student(ctx: HookContext) -> HookResult:
    """Own contact only; then the phone must be on a roster (local, or a session's snapshot).

    `unknown` when the local roster does not have it; `not_open` on the http backend, which only
    knows the students of sessions opened so far (ask again once the teacher opens the session).
    A contact proves who the sender is, so it (re)binds the account to the student."""
    try:
        phone = check_own_contact(as_contact(ctx.answer), ctx.update.user_id)
    except RosterError:
        return HookResult("not_own")
    roster = services_of(ctx).roster
    student = await roster.identify_student(phone, ctx.update.user_id)
    if student is None:
        return HookResult("unknown" if roster.has_local_roster else "not_open")
    result, replaced = await roster.bind_student(student.student_id, ctx.update.user_id, via=names.BY_CONTACT)
    if result == records.BOUND:
        await audit(ctx, events.STUDENT_BOUND, student_id=student.student_id, via=names.BY_CONTACT,
                    replaced=replaced)
    return HookResult("ok", _student_data(student))


async def identify_by_student_id(ctx: HookContext) -> HookResult:
    """Look the typed student ID up (local roster, or sessions' snapshots on the http backend)
    and bind this Telegram account to it: the first account to use an ID keeps it, a second one
    is refused (`taken`) until a teacher (/unbind) or an admin removes the binding; an account
    already bound to another student is refused too (`other_student`)."""
    roster = services_of(ctx).roster
    typed = normalise_student_id(ctx.answer)
    mine = await roster.binding_of_user(ctx.update.user_id)
    if mine is not None and typed.upper() != mine.student_id.upper():
        # Answered before any lookup: a bound account learns nothing about other students' IDs.
        await audit(ctx, events.BINDING_REFUSED, student_id=typed or None, reason="other_student",
                    bound_student_id=mine.student_id)
        return HookResult("other_student", {"bound_student_id": mine.student_id})
    student = await roster.find_student_by_id(typed) if typed else None
    if student is None:
        return HookResult("unknown" if roster.has_local_roster else "not_open")
    result, other = await roster.bind_student(student.student_id, ctx.update.user_id, via=names.BY_STUDENT_ID)
    if result == records.TAKEN:
        await audit(ctx, events.BINDING_REFUSED, student_id=student.student_id, reason="taken")
        return HookResult("taken")
    if result == records.OTHER_STUDENT:
        await audit(ctx, events.BINDING_REFUSED, student_id=student.student_id, reason="other_student",
                    bound_student_id=other)
        return HookResult("other_student", {"bound_student_id": other})
    if result == records.BOUND:
        await audit(ctx, events.STUDENT_BOUND, student_id=student.student_id, via=names.BY_STUDENT_ID)
    return HookResult("ok", _student_data(student))


# ---------------------------------------------------------------------------------------- code
async def check_code(ctx: HookContext) -> HookResult:
    """Limits and lockouts first, then a constant-time compare: the answer (and what is counted)
    is the same whatever the code, until it is the right code of a session the student may use.

    1. A malformed code (not 6 digits) compares nothing and counts nothing.
    2. Every code attempt takes one from the Telegram user's window (in MongoDB), right or wrong,
       before anything is compared; an empty window answers "wait" for any code.
    3. A student locked out of every open session they are on is told "locked" for any code.
    4. Only then is the code compared. The code of a session the student is not on, or is locked
       out of, is a wrong code like any other.
    5. A wrong code counts against each open session of the student they are not locked out of
       (locked students' misses never count toward a session's brake).
    """
    services = services_of(ctx)
    settings = services.settings
    student_id = str(ctx.data.get("student_id") or "")
    code = otp.normalize(ctx.answer)
    if code is None:
        return HookResult("malformed")
    allowed, wait_s = await run_blocking(services.code_guesses.take, ctx.update.user_id)
    if not allowed:
        return HookResult("slow_down", {"wait_min": max(1, math.ceil(wait_s / 60))})
    mine = await services.roster.open_sessions_of(student_id)
    usable = [s for s in mine if not s.is_locked_out(student_id, ctx.update.user_id)]
    if mine and not usable:
        return HookResult("locked")
    session = await services.roster.session_by_otp(code, student_id)
    if (session is not None and session.student(student_id) is not None
            and not session.is_locked_out(student_id, ctx.update.user_id) and otp.codes_equal(code, session.otp)):
        data: dict[str, Any] = {"session_id": str(session.id), "subject": session.subject,
                                "teacher_name": session.teacher.name or session.teacher.email}
        if not session.is_open():
            return HookResult("expired", data)
        record = await services.roster.attendance_of(str(session.id), student_id)
        if record is not None and record.status == names.PRESENT:
            data["marked_time"] = clock(record.time, settings.timezone, language=ctx.language)
            return HookResult("already_marked", data)
        return HookResult("ok", data)
    if not mine:
        return HookResult("no_session")
    policy = otp.OtpPolicy(settings.otp_max_attempts)
    counts = [await services.roster.record_wrong_code(
        str(s.id), student_id, policy.max_attempts, records.wrong_code_cap(s, settings.otp_session_max_wrong),
        ctx.update.user_id)
        for s in usable]
    if any(locked for _, locked in counts):
        return HookResult("locked")
    left = policy.max_attempts - max((count for count, _ in counts), default=0)
    return HookResult("wrong", {"attempts_left": left})


_CODE_EVENTS = {"ok": events.CODE_ACCEPTED, "wrong": events.CODE_WRONG,
                "locked": events.CODE_LOCKED, "slow_down": events.CODE_SLOW_DOWN}


def audited_code(check: Any) -> Any:
    """`check_code` with its decisions on the audit trail (never the code typed): accepted, wrong
    (against each open session of the student, as the count is), locked out, slowed down."""
    @functools.wraps(check)
    async def wrapper(ctx: HookContext) -> HookResult:
        result = await check(ctx)
        kind = _CODE_EVENTS.get(result.outcome)
        if kind is None:
            return result
        student_id = str(ctx.data.get("student_id") or "") or None
        session_id = result.data.get("session_id")
        sessions: list[Any] = [session_id]
        if not session_id and student_id and kind in (events.CODE_WRONG, events.CODE_LOCKED):
            sessions = [str(s.id) for s in await services_of(ctx).roster.open_sessions_of(student_id)] or [None]
        for sid in sessions:
            await audit(ctx, kind, session_id=sid, student_id=student_id, outcome=result.outcome,
                        attempts_left=result.data.get("attempts_left"))
        return result

    return wrapper


# ------------------------------------------------------------------------------------ location
async def check_location(ctx: HookContext) -> HookResult:
    """Geodesic distance from the class within the session's radius; imprecise or forwarded fixes are refused."""
    session = await session_of(ctx)
    if session is None or not session.is_open():
        return HookResult("expired")
    where = ctx.answer or {}
    result = geofence.check_location(
        (where.get("latitude"), where.get("longitude")), (session.latitude, session.longitude),
        radius_m=session.radius_m, horizontal_accuracy=where.get("horizontal_accuracy"),
        forwarded=ctx.update.forwarded,
    )
    params = result.params()
    data = {"distance_m": params.get("distance_m"), "radius_m": params.get("radius_m"),
            "accuracy_m": params.get("accuracy_m")}
    kind = events.LOCATION_OK if result.ok else {"too_far": events.LOCATION_TOO_FAR,
                                                 "inaccurate": events.LOCATION_INACCURATE}.get(result.reason)
    if kind is not None:
        await audit(ctx, kind, session_id=str(session.id), student_id=str(ctx.data.get("student_id") or "") or None,
                    **data)
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
    # Container, codec and frame size from the headers, before any decoder sees it (decode bombs).
    probed = await run_blocking(probe_video, video.data, settings.video_max_side_px)
    if not probed.ok:
        log.info("video note refused before decoding: %s %s %dx%d", probed.reason, probed.codec,
                 probed.width, probed.height)
        return HookResult("too_big_frame" if probed.reason == "too_big_frame" else "unsupported",
                          {**limits, **probed.params()})
    session = await session_of(ctx)
    if session is None or not session.is_open():
        return HookResult("expired")
    student_id = str(ctx.data["student_id"])
    record = await services.roster.attendance_of(str(session.id), student_id)
    if record is not None and record.status == names.PRESENT:
        return HookResult("already_marked")
    # One check in flight per student and session, and none past the limit (one atomic claim).
    token = uuid.uuid4().hex
    claim = await services.roster.begin_face_check(str(session.id), student_id, token, settings.face_max_attempts,
                                                   FACE_CHECK_LEASE_S, ctx.update.user_id)
    if claim == "busy":
        return HookResult("checking")
    if claim != "ok":
        return HookResult("exhausted", {"max_attempts": settings.face_max_attempts})
    entry = session.student(student_id)
    check = CheckIn(chat_id=ctx.update.chat_id, user_id=ctx.update.user_id, session_id=str(session.id),
                    student_id=student_id, subject=session.subject, distance_m=ctx.data.get("distance_m"),
                    answers=kept_answers(ctx.data) or None, token=token)
    job = VerifyJob(
        session_id=str(session.id), student_id=student_id,
        batch=entry.batch if entry else str(ctx.data.get("student_batch") or ""),
        data=bytes(video.data),
        on_done=functools.partial(services.verification.on_outcome, check),
        meta={"request_id": ctx.request_id},
        prior_failures=session.face_failure_count(student_id, ctx.update.user_id),
        user_id=ctx.update.user_id,
    )
    if not services.verify_queue.submit(job):
        await services.roster.release_face_check(str(session.id), student_id, token)
        return HookResult("busy")
    return HookResult("queued")


ANSWER_MAX = 200


def kept_answers(data: dict[str, Any]) -> dict[str, str]:
    """The answers a flow keeps with the attendance record, by its `record_answers` data:

        data:
          record_answers: [seat]                # the saved answers `seat`...
          record_answers: {seat: Seat number}   # ... or with the title the report and CSV show

    Only saved, non-transient answers; values as text (at most 200 characters)."""
    wanted = data.get(RECORD_ANSWERS) or ()
    titles = dict(wanted) if isinstance(wanted, dict) else {str(k): str(k) for k in wanted}
    kept = {}
    for key, title in titles.items():
        if key.startswith("_") or data.get(key) in (None, ""):
            continue
        value = data[key]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        kept[str(title)] = str(value)[:ANSWER_MAX]
    return kept


def record_answers_problems(spec: Any) -> list[str]:
    """`run.py check`: each name in a flow's `record_answers` must be a key a state saves
    (and not a transient `_key`, which is never stored)."""
    wanted = (spec.data or {}).get(RECORD_ANSWERS)
    if not wanted:
        return []
    line = spec.at(f"data.{RECORD_ANSWERS}", "data")
    if not isinstance(wanted, (list, dict)):
        return [f"{spec.path}:{line}: data.{RECORD_ANSWERS}: must be a list of saved keys, or a map key: title"]
    saved = {state.save for state in spec.states.values() if state.save}
    problems = []
    for key in wanted:
        if str(key).startswith("_"):
            problems.append(f"{spec.path}:{line}: data.{RECORD_ANSWERS}: '{key}' is transient (starts with _) "
                            "and never stored")
        elif key not in saved:
            problems.append(f"{spec.path}:{line}: data.{RECORD_ANSWERS}: no state saves '{key}'")
    return problems
