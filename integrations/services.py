"""Everything hooks need at run time, built once per process from the settings."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from .settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    roster: Any  # integrations.roster.service.RosterService
    verifier: Any = None  # integrations.presence.faces.base.FaceVerifier
    verify_queue: Any = None  # integrations.presence.verify_queue.VerifyQueue
    reports: Any = None  # integrations.reports.ReportScheduler
    engine: Any = None  # engine.runtime.Engine, set once the engine exists
    outbox: Any = None  # integrations.outbox.OutboxWorker, made by start() unless given
    extra: dict[str, Any] = field(default_factory=dict)

    async def start(self) -> None:
        if self.reports is not None:
            self.reports.start()
            rearmed = await self.reports.rearm()
            log.info("report scheduler started; %d pending report(s) re-armed", rearmed)
        if self.verify_queue is not None:
            self.verify_queue.start()
        if self.roster is not None:  # delivers what an API or face-service outage left behind
            from .outbox import OutboxWorker

            self.outbox = self.outbox or OutboxWorker.for_services(self)
            self.outbox.start()

    async def drain(self) -> None:
        """Finish accepted verifications (each ends with an event into its chat)."""
        if self.verify_queue is not None:
            await self.verify_queue.drain()

    async def stop(self) -> None:
        await self.drain()
        if self.verify_queue is not None:
            await self.verify_queue.close()
        if self.outbox is not None:
            await self.outbox.stop()
        if self.reports is not None:
            self.reports.shutdown()
        if self.roster is not None:
            self.roster.close()


def build_services(settings: Settings, *, verifier: Any = None, roster: Any = None) -> Services:
    """Connect the database and build the roster, face verifier, queue and report scheduler."""
    from . import crypto
    from .db import connect_db, ensure_indexes
    from .presence.faces import make_verifier
    from .presence.note_pool import NotePool
    from .presence.verify_queue import VerifyQueue, VideoNoteProcessor
    from .reports import ReportScheduler
    from .roster import make_roster
    from .roster.service import RosterService

    connect_db(settings.mongodb_uri)
    ensure_indexes()
    crypto.init_secret_box(settings)
    roster = roster or RosterService(make_roster(settings))
    verifier = verifier or make_verifier(settings)
    pool = NotePool(settings.verify_processes) if settings.verify_processes > 0 else None
    processor = VideoNoteProcessor(verifier, max_seconds=settings.video_max_seconds, liveness=settings.liveness, pool=pool)
    queue = VerifyQueue.from_settings(processor, settings)
    services = Services(settings, roster, verifier, queue)
    services.reports = ReportScheduler(services)
    return services
