"""Small helpers shared by the teacher and student hooks."""
from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any, Optional

from engine import HookContext
from integrations.attendance.services import Services
from integrations.foundation.errors import REJECTED, UNAVAILABLE_KEYS, RosterError
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


def unavailable(exc: RosterError) -> bool:
    """The service is not answering. A refusal (``rejected``: the API said no) is not an outage:
    saying "not answering, try again" would make the teacher retry the same refusal forever."""
    if exc.message_key in UNAVAILABLE_KEYS and exc.message_key != REJECTED:
        log.warning("roster backend unavailable: %s", exc.message_key)
        return True
    return False
