"""Assemble the app in one place: settings → roster, verifier, queue, workflows → hooks → engine.

:func:`build_app` does no I/O (no database connection, no network), so tests, scripts and the
demo build exactly what production runs, swapping only what they pass in (a roster, a face
verifier, a conversation store, a clock). :meth:`App.start` opens storage and starts the
workers; the App is an async context manager.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Optional, Sequence, Union

from engine import (
    ConversationStore,
    Engine,
    HookRegistry,
    MemoryStore,
    ReplyAction,
    Sink,
    Update,
    load_flows,
)
from integrations.api.client import AttendanceApiClient
from integrations.api.roster import HttpRoster
from integrations.attendance.audit import AuditLog
from integrations.attendance.frames import FrameKeeper
from integrations.attendance.notify import Notifier
from integrations.attendance.outbox_worker import OutboxWorker
from integrations.attendance.recovery import resume_interrupted_checks
from integrations.attendance.reports import ReportScheduler
from integrations.attendance.services import Services
from integrations.attendance.student_bots import StudentBots
from integrations.attendance.verification import VerificationWorkflow
from integrations.foundation import crypto
from integrations.hooks.registry import build_registry
from integrations.presence.faces import make_verifier
from integrations.presence.faces.base import FaceVerifier
from integrations.presence.note_pool import NotePool
from integrations.presence.verify_queue import (
    Processor,
    VerifyQueue,
    VideoNoteProcessor,
)
from integrations.roster.base import RosterBackend
from integrations.roster.local import LocalRoster
from integrations.roster.service import RosterService
from integrations.settings import Settings, get_settings
from integrations.storage.connection import Database, open_database
from integrations.storage.conversations import MongoConversationStore
from integrations.storage.indexes import ensure_indexes
from integrations.storage.throttle import Backoff, WindowLimit

log = logging.getLogger(__name__)

FlowPaths = Union[Path, str, Sequence[Union[Path, str]]]
CODE_GUESS_WINDOW_S = 600.0  # OTP_USER_WRONG_PER_10MIN counts code attempts in this window
LOGIN_WAIT_S, LOGIN_WAIT_CAP_S = 60.0, 3600.0  # after LOGIN_FREE_ATTEMPTS failures: 1 min, doubling to 1 h


def make_roster_backend(settings: Settings, **client_options: Any) -> RosterBackend:
    """The backend chosen by ROSTER_BACKEND: ``local`` (default) or ``http`` (the external API)."""
    if settings.roster_backend == "http":
        return HttpRoster(AttendanceApiClient.from_settings(settings, **client_options))
    return LocalRoster()


def make_store(settings: Settings) -> ConversationStore:
    """Where conversations live: MongoDB (STORE=mongo) or memory."""
    return MongoConversationStore() if settings.store == "mongo" else MemoryStore()


@dataclass
class App:
    """One running instance: the engine, the attendance services and their workers."""

    settings: Settings
    engine: Engine
    services: Services
    outbox: OutboxWorker
    verifier: FaceVerifier
    notify: Notifier
    note_pool: Optional[NotePool] = None
    connect: bool = True  # False: the caller connected the database already (tests)
    ephemeral_db: bool = False  # without MONGODB_URI: a private in-memory database (simulations, demo)
    owns_roster: bool = True  # closed by stop() only when build_app made it
    owns_verifier: bool = True
    database: Optional[Database] = field(default=None, repr=False)
    _storage_open: bool = field(default=False, repr=False)

    # -- convenience for transports and tests
    @property
    def verify_queue(self) -> VerifyQueue:
        return self.services.verify_queue

    @property
    def reports(self) -> ReportScheduler:
        return self.services.reports

    def add_sink(self, sink: Sink) -> None:
        self.engine.add_sink(sink)

    async def submit(self, update: Update) -> list[ReplyAction]:
        return await self.engine.submit(update)

    # -- lifecycle
    def open_storage(self) -> None:
        """Connect the database, create indexes and install the secret key (idempotent)."""
        if self._storage_open:
            return
        if self.connect:
            self.database = open_database(self.settings.mongodb_uri, self.settings.data_dir,
                                          ephemeral=self.ephemeral_db)
            log.info("database: %s", self.database.description)
        ensure_indexes()
        crypto.init_secret_box(self.settings)
        self._storage_open = True

    async def start(self) -> None:
        self.open_storage()
        reports = self.services.reports
        reports.start()
        rearmed = await reports.rearm()
        log.info("report scheduler started; %d pending report(s) re-armed", rearmed)
        self.services.verify_queue.start()
        self.outbox.start()  # delivers what an API or face-service outage left behind
        started_at = time.time()
        rearmed = await self.engine.start()
        log.info("engine started; %d conversation timeout(s) re-armed", rearmed)
        await resume_interrupted_checks(self.engine.store, self.notify, started_at=started_at)

    async def drain(self) -> None:
        """Stop taking updates, finish in-flight steps and verifications (their answers too)."""
        await self.engine.close_input()  # no user input; steps in flight finish (and may queue a face check)
        await self.services.verify_queue.drain()  # face checks finish; their answers are internal events
        await self.engine.drain()

    async def stop(self) -> None:
        await self.drain()
        await self.engine.stop()
        await self.services.verify_queue.close()
        if self.note_pool is not None:
            self.note_pool.close()
        await self.outbox.stop()
        self.services.reports.shutdown()
        if self.owns_roster:
            self.services.roster.close()
        if self.owns_verifier:
            self.verifier.close()
        if self.database is not None:  # stops the embedded server if this process started it
            self.database.close()
            self.database = None
            self._storage_open = False

    async def __aenter__(self) -> "App":
        await self.start()
        return self

    async def __aexit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        await self.stop()


def build_app(
    settings: Optional[Settings] = None,
    *,
    flows: Optional[FlowPaths] = None,
    roster: Optional[Union[RosterService, RosterBackend]] = None,
    verifier: Optional[FaceVerifier] = None,
    processor: Optional[Processor] = None,
    store: Optional[ConversationStore] = None,
    registry: Optional[HookRegistry] = None,
    clock: Callable[[], float] = time.time,
    connect: bool = True,
    ephemeral_db: bool = False,
    outbox_interval: Optional[float] = None,
) -> App:
    """Everything one instance runs with; pass a part to replace the configured one. No I/O.

    ``processor`` replaces the blocking work of one face check (decode the note, pick a frame,
    ask the verifier): tests that are not about videos skip decoding with it.
    """
    settings = settings or get_settings()
    owns_roster, owns_verifier = not isinstance(roster, RosterService), verifier is None
    if roster is None:
        roster = make_roster_backend(settings)
    service = roster if isinstance(roster, RosterService) else RosterService(roster)
    verifier = verifier or make_verifier(settings)
    frames = FrameKeeper(verifier)  # keeps frames the face service could not check, for the outbox
    # Decoding (and the local verifier) in worker processes, so notes never hold the loop's GIL.
    pool = NotePool(settings.verify_processes) if settings.verify_processes > 0 and processor is None else None
    processor = processor or VideoNoteProcessor(frames, max_seconds=settings.video_max_seconds,
                                                liveness=settings.liveness, pool=pool)
    queue = VerifyQueue.from_settings(processor, settings)
    notify = Notifier()
    audit = AuditLog(service)
    reports = ReportScheduler(service, notify, buffer_s=settings.report_buffer_seconds, timezone=settings.timezone,
                              on_sent=queue.forget_session, audit=audit)
    services = Services(
        settings=settings, roster=service, verify_queue=queue, reports=reports,
        verification=VerificationWorkflow(service, notify, frames, timezone=settings.timezone, audit=audit,
                                          max_attempts=settings.face_max_attempts, reports=reports),
        code_guesses=WindowLimit("otp-user", settings.otp_user_wrong_per_10min, CODE_GUESS_WINDOW_S),
        logins=Backoff("login", settings.login_free_attempts, LOGIN_WAIT_S, LOGIN_WAIT_CAP_S),
        student_bots=StudentBots.from_settings(settings),
        audit=audit,
    )
    registry = registry or build_registry()
    compiled = load_flows(flows if flows is not None else settings.flows_dir, registry)
    engine = Engine(compiled, registry, store or make_store(settings), services, clock=clock)
    notify.bind(engine.post_event)
    worker = OutboxWorker(service, verifier, notify, timezone=settings.timezone,
                          interval=outbox_interval or settings.outbox_interval_seconds)
    return App(settings, engine, services, worker, verifier, notify, pool, connect=connect, ephemeral_db=ephemeral_db,
               owns_roster=owns_roster,
               owns_verifier=owns_verifier)
