"""Hooks of flows/teacher.yaml: login, choosing batches and subject, opening and running a session."""
from __future__ import annotations

import datetime as dt
import logging
import math
import re
from typing import Any

from engine import HookContext, HookRegistry, HookResult
from integrations.attendance.reports import build_report
from integrations.foundation import names
from integrations.foundation.blocking import run_blocking
from integrations.foundation.errors import BAD_CREDENTIALS, OTP_IN_USE, PHONE_MISMATCH, REJECTED, RosterError
from integrations.foundation.text import clean_text
from integrations.foundation.timefmt import clock
from integrations.hooks.common import as_contact, services_of, unavailable
from integrations.presence import geofence, otp
from integrations.roster.service import check_own_contact
from integrations.storage.documents import Session, utcnow

log = logging.getLogger(__name__)

SESSION_KEYS = ("otp", "expires_at", "subject")


def register(registry: HookRegistry) -> HookRegistry:
    registry.register("find_teacher", find_teacher, outcomes=("known", "new"), provides=("teacher_name",))
    registry.register("teacher_contact", teacher_contact, outcomes=("ok", "not_own"), provides=("teacher_phone",))
    registry.register("teacher_login", teacher_login,
                      outcomes=("ok", "bad_credentials", "slow_down", "unavailable"),
                      provides=("teacher_name", "wait_min"))
    registry.register("session_defaults", session_defaults, outcomes=("ok", "session_open", "unavailable"),
                      provides=("default_radius", *SESSION_KEYS))
    registry.register("teacher_batches", teacher_batches, kind="options")
    registry.register("batches_share_a_subject", batches_share_a_subject, kind="validate")
    registry.register("teacher_subjects", teacher_subjects, kind="options")
    registry.register("open_session", open_session,
                      outcomes=("ok", "no_students", "unavailable", "bad_location", "refused"),
                      provides=("session_id", "student_count", "batch_list", *SESSION_KEYS))
    registry.register("session_status", session_status, outcomes=("ok", "closed"),
                      provides=("present_count", "absent_count", "failed_count", "locked_count", *SESSION_KEYS))
    registry.register("extend_session", extend_session, outcomes=("ok", "invalid", "closed"),
                      provides=("extended_min", "expires_at"))
    registry.register("close_session", close_session, outcomes=("ok", "closed"), provides=("buffer_s",))
    registry.register("manual_mark", manual_mark, outcomes=("ok", "already", "invalid", "unknown", "closed"),
                      provides=("marked_id", "marked_name"))
    registry.register("last_report", last_report, outcomes=("ok", "none", "not_logged_in"),
                      provides=names.REPORT_KEYS)
    registry.register("teacher_logout", teacher_logout)
    return registry


# ------------------------------------------------------------------------------------- login
async def find_teacher(ctx: HookContext) -> HookResult:
    """A returning teacher is recognised by their Telegram id: no contact or password again."""
    teacher = await services_of(ctx).roster.find_teacher(ctx.update.user_id)
    if teacher is None:
        return HookResult("new")
    return HookResult("known", {"teacher_name": teacher.name or teacher.email})


def teacher_contact(ctx: HookContext) -> HookResult:
    try:
        phone = check_own_contact(as_contact(ctx.answer), ctx.update.user_id)
    except RosterError:
        return HookResult("not_own")
    return HookResult("ok", {"teacher_phone": phone})


async def teacher_login(ctx: HookContext) -> HookResult:
    """Waits first, then the phone binding, then the password; one answer for every failure.

    Failed logins are counted per Telegram user and per account (MongoDB): after
    LOGIN_FREE_ATTEMPTS of them the next try waits 1 min, doubling to 1 h; a success clears both.
    A wrong password, an unknown email and a phone that is not the account's all answer
    ``bad_credentials``, so no answer confirms a password."""
    services = services_of(ctx)
    email = clean_text(ctx.data.get("email", "")).lower()  # no invisible characters (NFKC)
    keys = (f"user:{ctx.update.user_id}", f"account:{email}")
    wait_s = max([await run_blocking(services.logins.wait, key) for key in keys])
    if wait_s > 0:
        return HookResult("slow_down", {"wait_min": max(1, math.ceil(wait_s / 60))})
    try:
        teacher = await services.roster.login_teacher(
            ctx.update.user_id, ctx.data.get("teacher_phone", ""), email, ctx.data.get("_password", ""),
        )
    except RosterError as exc:
        if exc.message_key in (BAD_CREDENTIALS, PHONE_MISMATCH):
            log.info("teacher login refused for telegram user %s (%s)", ctx.update.user_id, exc.message_key)
            for key in keys:
                await run_blocking(services.logins.fail, key)
            return HookResult("bad_credentials")
        if unavailable(exc):
            return HookResult("unavailable")
        raise
    for key in keys:
        await run_blocking(services.logins.reset, key)
    return HookResult("ok", {"teacher_name": teacher.name or teacher.email})


async def teacher_logout(ctx: HookContext) -> str:
    await services_of(ctx).roster.logout_teacher(ctx.update.user_id)
    ctx.data.clear()
    return "ok"


# ----------------------------------------------------------------------------- opening a session
def _session_fields(session: Session, zone: str) -> dict[str, Any]:
    return {"otp": session.otp, "expires_at": clock(session.expires_at, zone, seconds=True),
            "subject": session.subject, "session_id": str(session.id)}


async def session_defaults(ctx: HookContext) -> HookResult:
    services = services_of(ctx)
    try:
        current = await services.roster.teacher_open_session(ctx.update.user_id)
    except RosterError as exc:
        if unavailable(exc):
            return HookResult("unavailable")
        raise
    if current is not None:
        return HookResult("session_open", _session_fields(current, services.settings.timezone))
    radius = services.settings.location_distance_limit_meters
    return HookResult("ok", {"default_radius": int(radius) if float(radius).is_integer() else radius,
                             "batches": []})


async def teacher_batches(ctx: HookContext) -> list[tuple[str, str]]:
    batches = await services_of(ctx).roster.list_batches(ctx.update.user_id)
    return [(b, b) for b in batches]


async def batches_share_a_subject(ctx: HookContext) -> HookResult:
    """The ticked batches have at least one subject the teacher teaches to all of them."""
    subjects = await services_of(ctx).roster.list_subjects(ctx.update.user_id, list(ctx.answer or []))
    return HookResult("ok" if subjects else "invalid")


async def teacher_subjects(ctx: HookContext) -> list[tuple[str, str]]:
    subjects = await services_of(ctx).roster.list_subjects(ctx.update.user_id, ctx.data.get("batches") or None)
    return [(s, s) for s in subjects]


async def open_session(ctx: HookContext) -> HookResult:
    """Load the students of every chosen batch (concurrently), draw a code, open, schedule the report."""
    services = services_of(ctx)
    roster, settings = services.roster, services.settings
    batches = list(ctx.data.get("batches") or [])
    subject = str(ctx.data.get("subject") or "")
    where = ctx.answer or {}
    data: dict[str, Any] = {"batch_list": ", ".join(batches), "subject": subject}
    if geofence.point(where) is None:  # NaN, infinite or out of range: no student could ever be near
        return HookResult("bad_location", data)
    try:
        current = await roster.teacher_open_session(ctx.update.user_id)
        if current is not None:
            # This step already opened it and the process died before the conversation was saved
            # (or another chat of the teacher did): never a second session with a second code.
            data.update(_session_fields(current, settings.timezone), batch_list=", ".join(current.batches),
                        student_count=len(current.students))
            return HookResult("ok", data)
        students = await roster.load_students(ctx.update.user_id, batches, subject)
    except RosterError as exc:
        if exc.message_key == REJECTED:  # e.g. a subject not taught to one of the batches
            return HookResult("refused", data)
        if unavailable(exc):
            return HookResult("unavailable")
        raise
    if not students:
        return HookResult("no_students", data)
    minutes = float(ctx.data.get("duration_min") or settings.session_duration_seconds / 60)
    expires_at = utcnow() + dt.timedelta(minutes=minutes)
    radius = float(ctx.data.get("radius_m") or settings.location_distance_limit_meters)
    for _ in range(10):  # a code clash with another open session is retried with a new code
        code = otp.new_code()
        try:
            session = await roster.open_session(
                ctx.update.user_id, code, batches, subject, where["latitude"], where["longitude"],
                radius, expires_at, students,
            )
            break
        except RosterError as exc:
            if exc.message_key != OTP_IN_USE:
                raise
    else:
        raise RuntimeError("no free one-time code after 10 draws")
    services.reports.schedule(str(session.id), session.expires_at)
    log.info("session %s opened: %d students, %s min", session.id, len(students), minutes)
    data.update(_session_fields(session, settings.timezone), student_count=len(students))
    return HookResult("ok", data)


# ------------------------------------------------------------------------ while a session is open
async def _open_session(ctx: HookContext) -> Session | None:
    return await services_of(ctx).roster.teacher_open_session(ctx.update.user_id)


async def session_status(ctx: HookContext) -> HookResult:
    services = services_of(ctx)
    session = await _open_session(ctx)
    if session is None:
        return HookResult("closed")
    stats = await services.roster.session_stats(str(session.id))
    data = _session_fields(session, services.settings.timezone)
    data.update(present_count=stats["present"], absent_count=stats["absent"],
                failed_count=stats["failed"], locked_count=stats["locked"])
    return HookResult("ok", data)


async def extend_session(ctx: HookContext) -> HookResult:
    services = services_of(ctx)
    args = str(ctx.data.get("command_args") or "").strip()
    if not re.fullmatch(r"\d{1,2}", args) or not 1 <= int(args) <= 60:
        return HookResult("invalid")
    session = await _open_session(ctx)
    if session is None:
        return HookResult("closed")
    new_expiry = await services.roster.extend_session(str(session.id), int(args) * 60)
    if new_expiry is None:
        return HookResult("closed")
    services.reports.schedule(str(session.id), new_expiry)
    return HookResult("ok", {"extended_min": int(args),
                             "expires_at": clock(new_expiry, services.settings.timezone, seconds=True)})


async def close_session(ctx: HookContext) -> HookResult:
    """Stop accepting codes now; the report follows after the usual buffer for late checks."""
    services = services_of(ctx)
    session = await _open_session(ctx)
    if session is None:
        return HookResult("closed")
    closed_at = await services.roster.close_session_now(str(session.id))
    buffer_s = services.settings.report_buffer_seconds
    services.reports.schedule(str(session.id), closed_at or utcnow(), buffer_s)
    return HookResult("ok", {"buffer_s": buffer_s})


async def manual_mark(ctx: HookContext) -> HookResult:
    """`/mark STUDENT_ID REASON`: the teacher vouches for a student; stored as method=manual."""
    services = services_of(ctx)
    student_id, _, reason = str(ctx.data.get("command_args") or "").strip().partition(" ")
    if not student_id or not reason.strip() or len(student_id) > 64:
        return HookResult("invalid", {"marked_id": student_id[:64], "marked_name": ""})
    session = await _open_session(ctx)
    if session is None:
        return HookResult("closed")
    entry = session.student(student_id)
    data = {"marked_id": student_id, "marked_name": entry.name if entry else ""}
    if entry is None:
        return HookResult("unknown", data)
    result = await services.roster.submit_attendance(str(session.id), student_id, names.PRESENT, names.BY_HAND)
    await services.roster.set_note(str(session.id), student_id, f"manual by teacher: {reason.strip()[:200]}")
    log.info("manual mark of %s in session %s", student_id, session.id)
    return HookResult("ok" if result.changed else "already", data)


async def last_report(ctx: HookContext) -> HookResult:
    services = services_of(ctx)
    if await services.roster.find_teacher(ctx.update.user_id) is None:
        return HookResult("not_logged_in")
    session = await services.roster.latest_session(ctx.update.user_id)
    if session is None:
        return HookResult("none")
    return HookResult("ok", await build_report(services.roster, session, services.settings.timezone))

