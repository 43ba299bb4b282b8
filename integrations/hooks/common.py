"""Small helpers shared by the teacher and student hooks."""
from __future__ import annotations

import logging
import unicodedata
from types import SimpleNamespace
from typing import Any, Optional

from engine import HookContext
from integrations.attendance.services import Services
from integrations.foundation.errors import REJECTED, RELOGIN_KEYS, UNAVAILABLE_KEYS, RosterError
from integrations.storage.documents import Session

log = logging.getLogger(__name__)


def services_of(ctx: HookContext) -> Services:
    services = ctx.services
    if not isinstance(services, Services):
        raise RuntimeError("the hooks of this flow need the app's Services")
    return services


def as_contact(value: Any) -> SimpleNamespace:
    """The saved contact (a dict in conversation data) as an object with attributes."""
    value = value or {}
    return SimpleNamespace(phone=value.get("phone", ""), user_id=value.get("user_id"))


async def session_of(ctx: HookContext) -> Optional[Session]:
    """The conversation's session, with only the student's own roster entry when known."""
    session_id = ctx.data.get("session_id")
    if not session_id:
        return None
    student_id = ctx.data.get("student_id")
    return await services_of(ctx).roster.find_session(str(session_id), str(student_id) if student_id else None)


STUDENT_ID_MAX = 32


def normalise_student_id(value: Any) -> str:
    """A typed student id: NFKC (full-width digits), no spaces; letters, digits, '-' and '_' only
    ('' if it is not one)."""
    text = unicodedata.normalize("NFKC", str(value or "")).strip().replace(" ", "")
    if not text or len(text) > STUDENT_ID_MAX or not all(c.isascii() and (c.isalnum() or c in "-_") for c in text):
        return ""
    return text


def unavailable(exc: RosterError) -> bool:
    """The service is not answering. A refusal (``rejected``: the API said no) is not an outage:
    saying "not answering, try again" would make the teacher retry the same refusal forever."""
    if exc.message_key in UNAVAILABLE_KEYS and exc.message_key != REJECTED:
        log.warning("roster backend unavailable: %s", exc.message_key)
        return True
    return False


def relogin(exc: RosterError) -> bool:
    """The teacher's stored login no longer works (password changed, logged out elsewhere)."""
    if exc.message_key in RELOGIN_KEYS:
        log.warning("teacher must log in again: %s", exc.message_key)
        return True
    return False


async def audit(ctx: HookContext, kind: str, *, session_id: Optional[str] = None, student_id: Optional[str] = None,
                actor: str = "student", **data: Any) -> None:
    """Record an audit event for this update's user (no-op when the app runs without an audit log)."""
    services = services_of(ctx)
    if services.audit is None:
        return
    await services.audit.record(kind, session_id=session_id, student_id=student_id, user_id=ctx.update.user_id,
                                actor=actor, **data)
