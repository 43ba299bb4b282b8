"""Hooks of flows/teacher.yaml: login, choosing batches and subject, opening and running a session."""
from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections import Counter
from typing import Any, Iterable, Optional, Sequence

from engine import HookContext, HookRegistry, HookResult
from integrations.attendance import audit as events
from integrations.attendance import marks, session_control
from integrations.attendance.exports import report_xlsx
from integrations.attendance.reports import build_report, report_filename
from integrations.attendance.services import Services
from integrations.foundation import names, timing
from integrations.foundation.blocking import run_blocking
from integrations.foundation.errors import BAD_CREDENTIALS, OTP_IN_USE, PHONE_MISMATCH, REJECTED, RELOGIN_KEYS, RosterError
from integrations.foundation.text import clean_text
from integrations.foundation.timefmt import clock
from integrations.hooks.common import (
    as_contact,
    audit,
    normalise_student_id,
    relogin,
    services_of,
    unavailable,
)
from integrations.presence import geofence, otp
from integrations.roster.service import check_own_contact
from integrations.storage.documents import Session, utcnow

log = logging.getLogger(__name__)

SESSION_KEYS = ("otp", "expires_at", "subject")


ASSIGNMENTS = "teacher_assignments"  # [[batch, subject], ...] read once per new session (prepare_session)


def register(registry: HookRegistry) -> HookRegistry:
    registry.register("find_teacher", find_teacher, outcomes=("known", "new"), provides=("teacher_name",))
    registry.register("teacher_contact", teacher_contact, outcomes=("ok", "not_own"), provides=("teacher_phone",))
    registry.register("teacher_login", teacher_login,
                      outcomes=("ok", "bad_credentials", "slow_down", "unavailable"),
                      provides=("teacher_name", "wait_min"), reads=("teacher_phone", "email", "_password"))
    registry.register("session_defaults", session_defaults,
                      outcomes=("ok", "session_open", "unavailable", "relogin"),
                      provides=("default_radius", "default_duration", ASSIGNMENTS, *SESSION_KEYS))
    registry.register("teacher_batches", teacher_batches, kind="options", reads=(ASSIGNMENTS,))
    registry.register("batches_share_a_subject", batches_share_a_subject, kind="validate", reads=(ASSIGNMENTS,))
    registry.register("teacher_subjects", teacher_subjects, kind="options", reads=(ASSIGNMENTS, "batches"))
    registry.register("valid_duration", valid_duration, kind="validate", provides=("duration_s",))
    registry.register("open_session", open_session,
                      outcomes=("ok", "no_students", "unavailable", "bad_location", "relogin", "refused"),
                      provides=("session_id", "student_count", "batch_list", "student_bots", *SESSION_KEYS),
                      reads=("batches", "subject", "duration_s", "duration_min", "radius_m"))
    registry.register("session_status", session_status, outcomes=("ok", "closed"),
                      provides=("present_count", "absent_count", "failed_count", "locked_count", *SESSION_KEYS))
    registry.register("extend_session", extend_session, outcomes=("ok", "invalid", "closed"),
                      provides=("extended_min", "expires_at"), reads=("command_args",))
    registry.register("close_session", close_session, outcomes=("ok", "closed"), provides=("buffer_s",))
    registry.register("manual_mark", manual_mark,
                      outcomes=("ok", "queued", "relogin", "already", "invalid", "unknown", "closed"),
                      provides=("marked_id", "marked_name"), reads=("command_args",))
    registry.register("unbind_student", unbind_student, outcomes=("ok", "not_bound", "invalid", "unknown"),
                      provides=("unbound_id", "unbound_name"), reads=("command_args",))
    registry.register("teacher_home", teacher_home, outcomes=("session_open", "menu", "not_logged_in"),
                      provides=SESSION_KEYS)
    registry.register("last_report", last_report, outcomes=("ok", "none", "not_logged_in"),
                      provides=names.REPORT_KEYS)
    registry.register("last_report_xlsx", last_report_xlsx, outcomes=("ok", "none", "not_logged_in"),
                      provides=("report_subject", "report_xlsx_filename", "_report_xlsx"))
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
    """The shared contact must be the teacher's own; its phone is checked at login."""
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
    """Forget the binding and the stored login; the conversation data is cleared."""
    await services_of(ctx).roster.logout_teacher(ctx.update.user_id)
    ctx.data.clear()
    return "ok"


# ----------------------------------------------------------------------------- opening a session
def _session_fields(session: Session, zone: str, language: str) -> dict[str, Any]:
    return {"otp": session.otp, "expires_at": clock(session.expires_at, zone, seconds=True, language=language),
            "subject": session.subject, "session_id": str(session.id)}


def _api_trouble(exc: RosterError) -> Optional[HookResult]:
    """The outcome for an API failure the teacher can act on: log in again, or try later."""
    if relogin(exc):
        return HookResult("relogin")
    if unavailable(exc):
        return HookResult("unavailable")
    return None


MIN_DURATION_S, MAX_DURATION_S = 30, 180 * 60
# Unit words a session length may be written with, in every shipped language: a tapped duration
# button sends its label back, so a translated label must read back as the same length.
_UNITS = {
    "s": ("s", "sec", "secs", "second", "seconds", "से", "सेकंड", "सेकेंड", "సె", "సెకను", "సెకన్లు", "సెకండ్లు"),
    "m": ("m", "min", "mins", "minute", "minutes", "मि", "मिनट", "ని", "నిమి", "నిమిషం", "నిమిషాలు"),
    "h": ("h", "hr", "hour", "hours", "घं", "घंटा", "घंटे", "గం", "గంట", "గంటలు"),
}
_UNIT_OF = {word: unit for unit, words in _UNITS.items() for word in words}
_SHOWN = {"en": ("s", "min"), "hi": ("सेकंड", "मिनट"), "te": ("సెకన్లు", "నిమి")}  # how lengths are offered
_DURATION = re.compile(r"(\d{1,4}(?:[.,]\d{1,2})?)\s*(" + "|".join(sorted(map(re.escape, _UNIT_OF), key=len,
                                                                           reverse=True)) + r")?\.?",
                       re.IGNORECASE)


def parse_duration(text: Any) -> Optional[int]:
    """Seconds from '90 s', '90s', '1.5', '5', '5 min', '1 h', '5 मिनट', '90 సెకన్లు' (a bare number
    is minutes; digits of any script); None if not a duration between 30 seconds and 180 minutes."""
    match = _DURATION.fullmatch(str(text or "").strip())
    if not match:
        return None
    number = float(match.group(1).replace(",", "."))  # float() reads Devanagari and Telugu digits too
    unit = _UNIT_OF.get((match.group(2) or "m").lower(), "m")
    seconds = number * (1 if unit == "s" else 3600 if unit == "h" else 60)
    return int(round(seconds)) if MIN_DURATION_S <= seconds <= MAX_DURATION_S else None


def format_duration(seconds: int, language: Optional[str] = None) -> str:
    """How a length is offered and shown: '5 min', '90 s' (or in the conversation's language)."""
    secs, mins = _SHOWN.get(language or "en", _SHOWN["en"])
    return f"{seconds // 60} {mins}" if seconds % 60 == 0 else f"{seconds} {secs}"


def valid_duration(ctx: HookContext) -> HookResult:
    """A session length: minutes, or seconds with 's' (90 s, the original system's session)."""
    seconds = parse_duration(ctx.answer)
    return HookResult("invalid") if seconds is None else HookResult("ok", {"duration_s": seconds})


async def session_defaults(ctx: HookContext) -> HookResult:
    """Before a new session: none may be open; the teacher's batches and subjects are read once
    here, so an API failure gets the flow's words (not the generic error) and the next two
    questions need no API call."""
    services = services_of(ctx)
    try:
        current = await services.roster.teacher_open_session(ctx.update.user_id)
        if current is None:
            assignments = await services.roster.list_assignments(ctx.update.user_id)
    except RosterError as exc:
        trouble = _api_trouble(exc)
        if trouble is None:
            raise
        return trouble
    if current is not None:
        return HookResult("session_open", _session_fields(current, services.settings.timezone, ctx.language))
    radius = services.settings.location_distance_limit_meters
    return HookResult("ok", {"default_radius": int(radius) if float(radius).is_integer() else radius,
                             "default_duration": format_duration(services.settings.session_duration_seconds,
                                                                 ctx.language),
                             ASSIGNMENTS: [[a.batch, a.subject] for a in assignments], "batches": []})


async def _assignments(ctx: HookContext) -> list[tuple[str, str]]:
    stored = ctx.data.get(ASSIGNMENTS)
    if isinstance(stored, list):
        return [(str(b), str(s)) for b, s in stored]
    # A conversation from before assignments were kept: ask the roster (prepare_session handles errors).
    return [(a.batch, a.subject) for a in await services_of(ctx).roster.list_assignments(ctx.update.user_id)]


async def teacher_batches(ctx: HookContext) -> list[tuple[str, str]]:
    """The teacher's batches (read by `session_defaults`)."""
    batches = sorted({b for b, _ in await _assignments(ctx)})
    return [(b, b) for b in batches]


async def _shared_subjects(ctx: HookContext, batches: Iterable[str]) -> list[str]:
    """The subjects the teacher teaches to *every* one of ``batches`` (a session has one subject
    for all its batches); every subject of the teacher when none is chosen."""
    pairs = await _assignments(ctx)
    per_batch = [{s for b, s in pairs if b == batch} for batch in set(batches)]
    return sorted(set.intersection(*per_batch) if per_batch else {s for _, s in pairs})


async def batches_share_a_subject(ctx: HookContext) -> HookResult:
    """The ticked batches have at least one subject the teacher teaches to all of them."""
    return HookResult("ok" if await _shared_subjects(ctx, list(ctx.answer or [])) else "invalid")


async def teacher_subjects(ctx: HookContext) -> list[tuple[str, str]]:
    """The subjects the teacher teaches to all the chosen batches."""
    return [(s, s) for s in await _shared_subjects(ctx, ctx.data.get("batches") or [])]


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
    loading = f"open:{ctx.update.user_id}"  # API timings of loading the class, until the session has an id
    try:
        current = await roster.teacher_open_session(ctx.update.user_id)
        if current is not None:
            # This step already opened it and the process died before the conversation was saved
            # (or another chat of the teacher did): never a second session with a second code.
            data.update(_session_fields(current, settings.timezone, ctx.language), batch_list=", ".join(current.batches),
                        student_count=len(current.students),
                        student_bots=_student_bots(services, current.batches, current.students))
            return HookResult("ok", data)
        with timing.scope(loading):
            students = await roster.load_students(ctx.update.user_id, batches, subject)
    except RosterError as exc:
        timing.take(loading)
        if exc.message_key == REJECTED:  # e.g. a subject not taught to one of the batches
            return HookResult("refused", data)
        trouble = _api_trouble(exc)
        if trouble is None:
            raise
        return trouble
    if not students:
        timing.take(loading)
        return HookResult("no_students", data)
    seconds = session_seconds(ctx.data, settings.session_duration_seconds)
    minutes = seconds / 60
    expires_at = utcnow() + dt.timedelta(seconds=seconds)
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
    timing.merge(loading, str(session.id))
    log.info("session %s opened: %d students, %s min", session.id, len(students), minutes)
    await audit(ctx, events.SESSION_OPENED, session_id=str(session.id), actor=await _actor(ctx),
                students=len(students), batches=batches, subject=subject, duration_s=seconds, radius_m=radius,
                expires_at=session.expires_at)
    data.update(_session_fields(session, settings.timezone, ctx.language), student_count=len(students),
                student_bots=_student_bots(services, batches, students))
    return HookResult("ok", data)


def _student_bots(services: Services, batches: Sequence[str], students: Iterable[Any]) -> str:
    """Which student bot each batch uses, when there are several ("" with one: the flow says nothing)."""
    sizes = Counter(s.batch for s in students)
    return services.student_bots.describe(list(batches), sizes)


def session_seconds(data: dict[str, Any], default: int) -> int:
    """The chosen length: `duration_s` (valid_duration), `duration_min` (older conversations)."""
    if data.get("duration_s"):
        return int(data["duration_s"])
    if data.get("duration_min"):
        return int(float(data["duration_min"]) * 60)
    return int(default)


async def _actor(ctx: HookContext) -> str:
    """How a teacher appears on the audit trail and in a mark's history: 'teacher:Asha Rao'."""
    teacher = await services_of(ctx).roster.find_teacher(ctx.update.user_id)
    who = (teacher.name or teacher.email) if teacher is not None else f"telegram {ctx.update.user_id}"
    return f"teacher:{who}"


# ------------------------------------------------------------------------ while a session is open
async def _open_session(ctx: HookContext) -> Session | None:
    return await services_of(ctx).roster.teacher_open_session(ctx.update.user_id)


async def session_status(ctx: HookContext) -> HookResult:
    """`/status`: counts of the open session so far."""
    services = services_of(ctx)
    session = await _open_session(ctx)
    if session is None:
        return HookResult("closed")
    stats = await services.roster.session_stats(str(session.id))
    data = _session_fields(session, services.settings.timezone, ctx.language)
    data.update(present_count=stats["present"], absent_count=stats["absent"],
                failed_count=stats["failed"], locked_count=stats["locked"])
    return HookResult("ok", data)


async def extend_session(ctx: HookContext) -> HookResult:
    """`/extend MINUTES` (1 to 60): the code stays valid longer; the report moves with it."""
    services = services_of(ctx)
    args = str(ctx.data.get("command_args") or "").strip()
    if not re.fullmatch(r"\d{1,2}", args) or not 1 <= int(args) <= 60:
        return HookResult("invalid")
    session = await _open_session(ctx)
    if session is None:
        return HookResult("closed")
    new_expiry = await session_control.extend(services.roster, services.reports, services.audit, str(session.id),
                                              int(args), actor=await _actor(ctx), user_id=ctx.update.user_id)
    if new_expiry is None:
        return HookResult("closed")
    return HookResult("ok", {"extended_min": int(args),
                             "expires_at": clock(new_expiry, services.settings.timezone, seconds=True,
                                                         language=ctx.language)})


async def close_session(ctx: HookContext) -> HookResult:
    """Stop accepting codes now; the report follows after the usual buffer for late checks."""
    services = services_of(ctx)
    session = await _open_session(ctx)
    if session is None:
        return HookResult("closed")
    buffer_s = services.settings.report_buffer_seconds
    await session_control.close(services.roster, services.reports, services.audit, str(session.id), buffer_s,
                                actor=await _actor(ctx), user_id=ctx.update.user_id)
    return HookResult("ok", {"buffer_s": buffer_s})


async def manual_mark(ctx: HookContext) -> HookResult:
    """`/mark STUDENT_ID REASON`: the teacher vouches for a student (integrations/attendance/marks.py).

    A student already present stays as they are (`already`: nothing stored, nothing sent); a
    change is stored as method=manual with its history and sent to the attendance API (`queued`
    when the API is down: it waits in the outbox; `relogin` when the API no longer accepts the
    teacher's stored login: it waits until they log in again)."""
    services = services_of(ctx)
    student_id, _, reason = str(ctx.data.get("command_args") or "").strip().partition(" ")
    if not marks.valid_request(student_id, reason):
        return HookResult("invalid", {"marked_id": student_id[:marks.MAX_STUDENT_ID], "marked_name": ""})
    session = await _open_session(ctx)
    if session is None:
        return HookResult("closed")
    entry = session.student(student_id) or session.student(student_id.upper())
    data = {"marked_id": entry.student_id if entry else student_id, "marked_name": entry.name if entry else ""}
    if entry is None:
        return HookResult("unknown", data)
    result = await marks.mark_by_hand(services.roster, services.audit, str(session.id), entry.student_id,
                                      names.PRESENT, by=await _actor(ctx), reason=reason,
                                      user_id=ctx.update.user_id, subject=session.subject)
    outcome = {marks.MARKED: "ok", marks.QUEUED: "queued", marks.UNCHANGED: "already"}.get(result.outcome, "unknown")
    if outcome == "queued" and result.error in RELOGIN_KEYS:
        outcome = "relogin"  # kept and queued; it is sent once the teacher has logged in again
    return HookResult(outcome, data)


async def unbind_student(ctx: HookContext) -> HookResult:
    """`/unbind STUDENT_ID`: free a student's ID from the Telegram account it is bound to (a
    classmate claimed it, or the student has a new phone). Only for students the teacher teaches."""
    services = services_of(ctx)
    typed = normalise_student_id(ctx.data.get("command_args"))
    if not typed:
        return HookResult("invalid", {"unbound_id": str(ctx.data.get("command_args") or "")[:32], "unbound_name": ""})
    student = await services.roster.teacher_knows_student(ctx.update.user_id, typed)
    if student is None:
        return HookResult("unknown", {"unbound_id": typed, "unbound_name": ""})
    data = {"unbound_id": student.student_id, "unbound_name": student.name or student.student_id}
    previous = await services.roster.unbind_student(student.student_id)
    if previous is None:
        return HookResult("not_bound", data)
    await audit(ctx, events.STUDENT_UNBOUND, student_id=student.student_id, actor=await _actor(ctx),
                previous_user=previous)
    return HookResult("ok", data)


async def teacher_home(ctx: HookContext) -> HookResult:
    """Where a teacher returns after a command: their open session, or the menu."""
    services = services_of(ctx)
    if await services.roster.find_teacher(ctx.update.user_id) is None:
        return HookResult("not_logged_in")
    session = await _open_session(ctx)
    if session is None:
        return HookResult("menu")
    return HookResult("session_open", _session_fields(session, services.settings.timezone, ctx.language))


async def _latest_session(ctx: HookContext) -> tuple[Optional[Session], Optional[HookResult]]:
    """The teacher's latest session, or the outcome that says why there is none."""
    services = services_of(ctx)
    if await services.roster.find_teacher(ctx.update.user_id) is None:
        return None, HookResult("not_logged_in")
    session = await services.roster.latest_session(ctx.update.user_id)
    return session, (HookResult("none") if session is None else None)


async def last_report(ctx: HookContext) -> HookResult:
    """The report of the teacher's latest session, read fresh (text and CSV)."""
    session, missing = await _latest_session(ctx)
    if session is None:
        return missing or HookResult("none")
    services = services_of(ctx)
    return HookResult("ok", await build_report(services.roster, session, services.settings.timezone, ctx.language))


async def last_report_xlsx(ctx: HookContext) -> HookResult:
    """The last session's report as an Excel workbook (the CSV's columns, coloured statuses)."""
    session, missing = await _latest_session(ctx)
    if session is None:
        return missing or HookResult("none")
    services = services_of(ctx)
    report = await services.roster.report(str(session.id))
    data = await run_blocking(report_xlsx, report, services.settings.timezone)
    return HookResult("ok", {"report_subject": report.subject or session.subject,
                             "report_xlsx_filename": report_filename(report, session, "xlsx"), "_report_xlsx": data})

