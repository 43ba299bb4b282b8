"""Small helpers shared by the teacher and student hooks."""
from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any, Callable, Optional, TypeVar

from engine.hooks import HookContext

from ..api.errors import RosterError
from ..models import Session
from ..roster import records
from ..services import Services

log = logging.getLogger(__name__)
T = TypeVar("T")

# RosterError keys that mean "the service is not answering" rather than "you did it wrong".
UNAVAILABLE_KEYS = frozenset({"api_unavailable", "bad_response", "session_conflict", "session_expired",
                              "not_logged_in", "rejected"})


def services_of(ctx: HookContext) -> Services:
    services = ctx.services
    if not isinstance(services, Services):
        raise RuntimeError("the hooks of this flow need the app's Services")
    return services


def as_contact(value: Any) -> SimpleNamespace:
    """The saved contact (a dict in conversation data) as an object with attributes."""
    value = value or {}
    return SimpleNamespace(phone=value.get("phone", ""), user_id=value.get("user_id"))


async def blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking (database) call off the event loop."""
    return await asyncio.to_thread(fn, *args)


async def session_of(ctx: HookContext) -> Optional[Session]:
    """The conversation's session, with only the student's own roster entry when known."""
    session_id = ctx.data.get("session_id")
    if not session_id:
        return None
    student_id = ctx.data.get("student_id")
    query = Session.objects(id=session_id)
    if student_id:
        query = records.for_student(query, str(student_id))
    return await blocking(query.first)


def unavailable(exc: RosterError) -> bool:
    if exc.message_key in UNAVAILABLE_KEYS:
        log.warning("roster backend unavailable: %s", exc.message_key)
        return True
    return False
