"""What the panel runs with: passed in once by the app (``run``, ``web``, ``demo --web``)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from engine import HookRegistry
from integrations.attendance.audit import AuditLog
from integrations.attendance.reports import ReportScheduler
from integrations.storage.throttle import Backoff
from integrations.presence.faces.base import FaceVerifier
from integrations.roster.service import RosterService
from integrations.settings import Settings
from integrations.web import constants as C


@dataclass
class WebContext:
    """The panel's services. ``reports`` is None when the bots run in another process (``run.py
    web``): their scheduler then picks up extended or closed sessions itself."""

    settings: Settings
    roster: RosterService
    verifier: FaceVerifier
    reports: Optional[ReportScheduler] = None
    flows_dir: Optional[Path] = None
    registry: Optional[HookRegistry] = None  # the hooks' registry, to load and check the flows (from the app)
    audit: Optional[AuditLog] = None  # the app's audit trail; one over ``roster`` if not given
    stopping: asyncio.Event = field(default_factory=asyncio.Event)  # set: live streams end now
    # Failed sign-ins per email and per client address, kept in MongoDB (a restart resets nothing).
    email_failures: Backoff = field(
        default_factory=lambda: Backoff("web-email", C.LOGIN_FAILURES_PER_EMAIL, C.LOGIN_WAIT_S, C.LOGIN_WAIT_CAP_S))
    client_failures: Backoff = field(
        default_factory=lambda: Backoff("web-client", C.LOGIN_FAILURES_PER_CLIENT, C.LOGIN_WAIT_S, C.LOGIN_WAIT_CAP_S))

    def __post_init__(self) -> None:
        if self.audit is None:
            self.audit = AuditLog(self.roster)

    @property
    def flows_path(self) -> Path:
        return Path(self.flows_dir or self.settings.flows_dir)
