"""Face checks a dead process accepted but never answered.

A video note is acknowledged at once and checked in memory; if the process is killed in between
(kill -9, power loss), the student's conversation is saved in the flow's waiting state and
nothing will ever answer it. At start-up, before any new update, each such conversation is told
that the check was interrupted, so the student records again instead of waiting for the state's
timeout. (A graceful stop finishes every accepted check first, so it leaves none behind.)
"""
from __future__ import annotations

import logging

from engine import ConversationStore
from integrations.attendance.notify import Notifier
from integrations.foundation.blocking import run_blocking
from integrations.foundation.errors import RosterError
from integrations.foundation.names import (
    CHECK_INTERRUPTED,
    STUDENT_BOT,
    VERIFYING_STATE,
)
from integrations.roster.records import session_oid
from integrations.storage.documents import Session

log = logging.getLogger(__name__)


async def _release_claim(data: dict) -> None:
    """The dead check's claim on its session (one check in flight per student) is given back, so
    the student's new note is not told that a check is still running."""
    session_id, student_id = data.get("session_id"), data.get("student_id")
    if not session_id or not student_id:
        return
    try:
        await run_blocking(Session.release_face_check, session_oid(session_id), str(student_id), None)
    except RosterError:  # not a session id: nothing was claimed
        pass


async def resume_interrupted_checks(store: ConversationStore, notify: Notifier, *, started_at: float) -> int:
    """Post ``check_interrupted`` to every student left waiting by an earlier process; how many."""
    stuck = [c for c in await store.with_deadlines()  # an overdue one is left to its timeout
             if c.bot == STUDENT_BOT and c.state == VERIFYING_STATE and c.updated_at < started_at
             and (c.deadline or 0) > started_at]
    for conversation in stuck:
        await _release_claim(conversation.data)
        await notify(STUDENT_BOT, conversation.chat_id, CHECK_INTERRUPTED, {}, conversation.user_id)
    if stuck:
        log.warning("%d face check(s) were interrupted by the last stop; asked for new notes", len(stuck))
    return len(stuck)
