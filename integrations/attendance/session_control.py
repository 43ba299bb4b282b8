"""Extending and closing an open session: one set of steps for the teacher bot and the web panel.

Each moves the session's report with it (when this process runs the report scheduler: the panel
alone, ``run.py web``, has none, and the bots' scheduler then finds the new end itself) and is an
audit event naming who did it.
"""
from __future__ import annotations

import datetime as dt
from typing import Optional

from integrations.attendance import audit as events
from integrations.attendance.audit import AuditLog
from integrations.attendance.reports import ReportScheduler
from integrations.roster.service import RosterService
from integrations.storage.documents import utcnow


async def extend(roster: RosterService, reports: Optional[ReportScheduler], audit: Optional[AuditLog],
                 session_id: str, minutes: int, *, actor: str, user_id: Optional[int] = None
                 ) -> Optional[dt.datetime]:
    """The session ends ``minutes`` later; its new end, or None if it is closed already."""
    new_expiry = await roster.extend_session(session_id, minutes * 60)
    if new_expiry is None:
        return None
    if reports is not None:
        reports.schedule(session_id, new_expiry)
    if audit is not None:
        await audit.record(events.SESSION_EXTENDED, session_id=session_id, user_id=user_id, actor=actor,
                           minutes=minutes, expires_at=new_expiry)
    return new_expiry


async def close(roster: RosterService, reports: Optional[ReportScheduler], audit: Optional[AuditLog],
                session_id: str, buffer_s: float, *, actor: str, user_id: Optional[int] = None
                ) -> Optional[dt.datetime]:
    """Stop taking codes now; the report follows after ``buffer_s`` for checks still running.
    The closing time, or None if it was not open (its report is then scheduled already)."""
    closed_at = await roster.close_session_now(session_id)
    if reports is not None:
        reports.schedule(session_id, closed_at or utcnow(), buffer_s)
    if closed_at is not None and audit is not None:
        await audit.record(events.SESSION_CLOSED, session_id=session_id, user_id=user_id, actor=actor)
    return closed_at
