"""What the hooks may use, typed: the app assembly fills it once, nothing is assigned later."""
from __future__ import annotations

from dataclasses import dataclass

from integrations.attendance.reports import ReportScheduler
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
