"""What the hooks may use, typed: the app assembly fills it once, nothing is assigned later."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from integrations.attendance.audit import AuditLog
from integrations.attendance.reports import ReportScheduler
from integrations.attendance.student_bots import StudentBots
from integrations.attendance.verification import VerificationWorkflow
from integrations.presence.verify_queue import VerifyQueue
from integrations.roster.service import RosterService
from integrations.settings import Settings
from integrations.storage.throttle import Backoff, WindowLimit


@dataclass(frozen=True)
class Services:
    """The attendance services one app instance runs with (see integrations.app.assembly)."""

    settings: Settings
    roster: RosterService
    verify_queue: VerifyQueue
    reports: ReportScheduler
    verification: VerificationWorkflow
    code_guesses: WindowLimit  # code attempts per Telegram user (MongoDB: survives restarts)
    logins: Backoff  # failed teacher logins, per Telegram user and per account (MongoDB)
    student_bots: StudentBots = field(default_factory=StudentBots)  # usernames set once the bots run
    audit: Optional[AuditLog] = None  # the audit trail (integrations/attendance/audit.py)
