"""What the hooks may use, typed: the app assembly fills it once, nothing is assigned later."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from integrations.attendance.audit import AuditLog
from integrations.attendance.reports import ReportScheduler
from integrations.attendance.student_bots import StudentBots
from integrations.attendance.verification import VerificationWorkflow
from integrations.presence.attempts import SlidingWindow
from integrations.presence.verify_queue import VerifyQueue
from integrations.roster.service import RosterService
from integrations.settings import Settings


@dataclass(frozen=True)
class Services:
    """The attendance services one app instance runs with (see integrations.app.assembly)."""

    settings: Settings
    roster: RosterService
    verify_queue: VerifyQueue
    reports: ReportScheduler
    verification: VerificationWorkflow
    code_guesses: SlidingWindow  # wrong codes per Telegram user (in memory; per process)
    student_bots: StudentBots = field(default_factory=StudentBots)  # usernames set once the bots run
    audit: Optional[AuditLog] = None  # the audit trail (integrations/attendance/audit.py)
