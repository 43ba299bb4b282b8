"""Helpers for the reliability tests: app instances that come and go over one database and store.

A :class:`Deployment` is what outlives a process: the MongoDB database (one database on the run's
server, connected once),
the conversation store (the same :class:`MemoryStore` object, or a new
:class:`MongoConversationStore` over the same database each time) and the user's screen (one
:class:`Simulator` inbox that every instance delivers to). An *instance* is everything a process
builds at start-up: roster service, verification queue, report scheduler, hook registry, compiled
flows and engine (through ``build_app``). :meth:`Deployment.restart` stops one instance (gracefully
or as a crash) and boots the next, optionally letting time pass while nothing runs.

Face checks: notes that carry a ``FAKE-NOTE:`` marker are judged by :class:`FakeFaceVerifier`
without decoding; any other bytes go through the real pipeline (frame extraction, then the real
local verifier when one is given, else the fake one). Every verdict is logged, and so is every
hook call, so tests can tell which checks a student really passed.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from engine.hooks import HookContext, HookRegistry, HookResult
from engine.simulator import Simulator, SimUser
from engine.store import MemoryStore
from engine.types import Outgoing, Update
from integrations.app import App, build_app
from integrations.attendance.services import Services
from integrations.foundation.names import REPORT_EVENT
from integrations.hooks.registry import build_registry
from integrations.presence.faces.base import FaceResult, FaceVerifier
from integrations.presence.media_reader import read_video_note
from integrations.presence.verify_queue import VerifyJob, VideoNoteProcessor
from integrations.roster.csv_import import import_roster
from integrations.roster.local import LocalRoster
from integrations.roster.service import RosterService
from integrations.settings import Settings, load_settings
from integrations.storage.connection import connect_db, disconnect_db
from integrations.storage.conversations import ConversationDoc, MongoConversationStore
from integrations.storage.documents import AttendanceRecord, Session
from integrations.storage.indexes import ensure_indexes
from tests.conftest import fresh_db_uri
from tests.fakes.faces import (
    FAKE_MATCH,
    FAKE_MISMATCH,
    FAKE_NOFACE,
    MISMATCHED,
    FakeFaceVerifier,
)
from tests.fakes.notes import is_fake

REPO = Path(__file__).resolve().parents[2]
FLOWS = [str(REPO / "flows" / "teacher.yaml"), str(REPO / "flows" / "student.yaml")]
ROSTER_CSV = REPO / "flows" / "scripts" / "fixtures" / "roster.csv"

CLASS = (17.385, 78.4867)

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ face checks
@dataclass(frozen=True)
class Verdict:
    session_id: str
    student_id: str
    matched: bool
    reason: str
    real: bool


class Processor:
    """The verification queue's blocking work, logging every verdict (thread-safe append)."""

    def __init__(self, fake: FaceVerifier, real: Optional[FaceVerifier] = None, max_seconds: int = 60) -> None:
        self.fake = fake
        self.pipeline = VideoNoteProcessor(real or fake, max_seconds=max_seconds)
        self.verdicts: list[Verdict] = []

    def __call__(self, job: VerifyJob) -> FaceResult:
        fake = is_fake(job.data)
        result = self.fake.verify(job.data, job.batch, job.student_id) if fake else self.pipeline(job)
        self.verdicts.append(Verdict(job.session_id, job.student_id, result.matched, result.reason, not fake))
        return result

    def matched(self, session_id: str, student_id: str) -> bool:
        return any(v.matched and v.session_id == session_id and v.student_id == student_id for v in self.verdicts)


# ------------------------------------------------------------------------------ hook spying
@dataclass(frozen=True)
class HookCall:
    hook: str
    bot: str
    chat_id: int
    outcome: str
    student_id: str  # from the conversation data when the hook ran
    session_id: str  # the hook's result if it provides one, else the conversation's
    marked_id: str = ""  # manual_mark: the student the teacher marked


def spy_registry(calls: list[HookCall]) -> HookRegistry:
    """The app's registry, with every call's outcome appended to ``calls``."""
    registry = build_registry()
    original = registry.call

    async def call(name: str, ctx: HookContext) -> HookResult:
        result = await original(name, ctx)
        session_id = result.data.get("session_id") or ctx.data.get("session_id") or ""
        calls.append(HookCall(name, ctx.update.bot, ctx.update.chat_id, result.outcome,
                              str(ctx.data.get("student_id") or ""), str(session_id),
                              str(result.data.get("marked_id") or "")))
        return result

    registry.call = call  # type: ignore[method-assign]
    return registry


def passed(calls: list[HookCall], hook: str, session_id: str, student_id: str) -> bool:
    return any(c.hook == hook and c.outcome == "ok" and c.session_id == session_id and c.student_id == student_id
               for c in calls)


# ------------------------------------------------------------------------------ the database
def make_settings(faces_dir: Path, **overrides: Any) -> Settings:
    options: dict[str, Any] = dict(
        _env_file=None, app_env="test", store="memory",
        faces_dir=faces_dir, report_buffer_seconds=1, verify_workers=2, verify_queue_capacity=100,
        face_max_attempts=3, otp_max_attempts=5, location_distance_limit_meters=50.0, timezone="UTC",
        session_duration_seconds=300, video_max_seconds=60, video_max_bytes=8 * 1024 * 1024,
    )
    options.update(overrides)
    return load_settings(**options)


def connect_fresh_db() -> str:
    """A new, empty database with the roster of the simulation scripts."""
    name = f"reliability_{uuid.uuid4().hex[:8]}"
    connect_db(fresh_db_uri(name))
    ensure_indexes()
    import_roster(ROSTER_CSV)
    return name


def place_faces(faces_dir: Path, source: Path, photos: dict[str, str]) -> None:
    for target, photo in photos.items():
        destination = faces_dir / f"{target}.jpg"
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / photo, destination)


def records_of(session_id: Any) -> list[AttendanceRecord]:
    return list(AttendanceRecord.objects(session=session_id))


def kill_engine(engine: Any) -> None:
    """From now on the engine takes nothing at all (user input, timers, answers): it is dead."""

    async def refuse(update: Any) -> list:
        return []

    engine._accepting = False
    engine.submit = refuse


# ------------------------------------------------------------------------------ deployments
@dataclass
class Instance:
    number: int
    app: App
    reports_sent_before: int = 0

    @property
    def engine(self) -> Any:
        return self.app.engine

    @property
    def services(self) -> Services:
        return self.app.services


@dataclass
class PostedEvent:
    instance: int
    bot: str
    chat_id: int
    name: str


@dataclass
class Deployment:
    """One database + one conversation store + one screen; app instances come and go."""

    tmp_path: Path
    store_kind: str = "memory"  # or "mongo"
    real_verifier: Optional[FaceVerifier] = None
    settings_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.faces_dir = self.tmp_path / "faces"
        self.faces_dir.mkdir(parents=True, exist_ok=True)
        self.settings = make_settings(self.faces_dir, store=self.store_kind, **self.settings_overrides)
        self.db_name = connect_fresh_db()
        self.memory_store = MemoryStore()
        self.processor = Processor(FakeFaceVerifier(default=MISMATCHED), self.real_verifier,
                                   self.settings.video_max_seconds)
        self.hook_calls: list[HookCall] = []
        self.events: list[PostedEvent] = []
        self.deliveries: list[tuple[int, Outgoing]] = []
        self.instances: list[Instance] = []
        self.current: Optional[Instance] = None
        self.restarts = 0
        self.errors = 0  # engine.stats["errors"] summed over stopped instances
        self.reports_sent = 0  # ReportScheduler.sent summed over stopped instances
        self.sim: Optional[Simulator] = None

    # -- building one instance (what a process does at start-up)
    def new_store(self) -> Any:
        if self.store_kind == "mongo":
            return MongoConversationStore()
        return self.memory_store

    def build(self) -> Instance:
        number = len(self.instances) + 1
        app = build_app(self.settings, flows=FLOWS, roster=RosterService(LocalRoster(), max_workers=4),
                        verifier=self.processor.fake, processor=self.processor,
                        registry=spy_registry(self.hook_calls), store=self.new_store(), connect=False)
        engine = app.engine
        original_submit = engine.submit

        async def submit(update: Update) -> Any:  # every internal event, whoever posts it
            if update.kind == "event":
                self.events.append(PostedEvent(number, update.bot, update.chat_id, update.payload.name))
            return await original_submit(update)

        engine.submit = submit  # type: ignore[method-assign]
        instance = Instance(number, app)
        self.instances.append(instance)
        return instance

    async def boot(self) -> Instance:
        instance = self.build()
        number = instance.number
        if self.sim is None:
            self.sim = Simulator(instance.engine, media_reader=read_video_note)
            receive = self.sim._receive
            instance.engine._sinks.clear()
        else:
            self.sim.engine = instance.engine
            receive = self.sim._receive

        async def sink(out: Outgoing) -> None:
            self.deliveries.append((number, out))
            await receive(out)

        instance.engine.add_sink(sink)
        await instance.app.start()
        self.current = instance
        return instance

    # -- ending one
    def _retire(self, instance: Instance) -> None:
        self.errors += instance.engine.stats["errors"]
        self.reports_sent += instance.services.reports.sent

    async def stop(self) -> None:
        """Graceful: finish accepted verifications (and their answers), then stop."""
        instance = self.current
        if instance is None:
            return
        await instance.app.stop()
        self._retire(instance)
        self.current = None

    async def crash(self) -> None:
        """The process dies: nothing more is delivered or fired, accepted jobs are lost."""
        instance = self.current
        if instance is None:
            return
        engine, services = instance.engine, instance.services
        kill_engine(engine)
        if engine.timers is not None:
            engine.timers.shutdown()
        services.reports.shutdown()
        await instance.app.outbox.stop()  # its loop dies with the process (stop() only cancels it)
        queue = services.verify_queue
        queue._closed = True
        tasks = list(queue._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        queue._executor.shutdown(wait=True)
        services.roster.close()
        self._retire(instance)
        self.current = None

    async def restart(self, *, crash: bool = False, advance: float = 0.0) -> Instance:
        """Drop the running instance and boot a new one; ``advance`` seconds pass meanwhile."""
        await (self.crash() if crash else self.stop())
        if advance:
            await self.warp(advance)
        self.restarts += 1
        return await self.boot()

    async def close(self) -> None:
        await self.stop()
        disconnect_db()

    # -- time passing while nothing runs
    async def warp(self, seconds: float) -> None:
        """Every stored moment moves ``seconds`` into the past (as if that much time went by)."""
        if self.store_kind == "memory":
            for conv in self.memory_store._items.values():
                if conv.deadline is not None:
                    conv.deadline -= seconds
        else:
            ConversationDoc._get_collection().update_many(
                {"deadline": {"$ne": None}}, {"$inc": {"deadline": -float(seconds)}})
        delta = dt.timedelta(seconds=seconds)
        for session in Session.objects:
            Session.objects(id=session.id).update_one(
                set__expires_at=session.expires_at - delta, set__opened_at=session.opened_at - delta)

    # -- counting
    def total_errors(self) -> int:
        return self.errors + (self.current.engine.stats["errors"] if self.current else 0)

    def total_reports_sent(self) -> int:
        return self.reports_sent + (self.current.services.reports.sent if self.current else 0)

    def posted(self, name: str, chat_id: Optional[int] = None) -> list[PostedEvent]:
        return [e for e in self.events if e.name == name and (chat_id is None or e.chat_id == chat_id)]

    def report_events(self, chat_id: int) -> list[PostedEvent]:
        return self.posted(REPORT_EVENT, chat_id)


# ------------------------------------------------------------------------------ driving users
def user(name: str, user_id: int, bot: str, first_name: str = "") -> SimUser:
    return SimUser(name, user_id, bot, first_name or name.title())


def count_texts(sim: Simulator, who: SimUser, needle: str) -> int:
    return sum(needle in t for t in sim.texts(who))


__all__ = [
    "CLASS", "FAKE_MATCH", "FAKE_MISMATCH", "FAKE_NOFACE", "FLOWS", "Deployment", "FakeFaceVerifier",
    "HookCall", "Processor", "Verdict", "connect_fresh_db", "count_texts", "make_settings", "passed",
    "place_faces", "records_of", "spy_registry", "user",
]


# ------------------------------------------------------------------------------ conversations
async def snapshot(dep: Deployment) -> dict[tuple[str, int], tuple]:
    """Every stored conversation as comparable values (to check a restart changed none)."""
    if dep.store_kind == "memory":
        convs = list(dep.memory_store._items.values())
    else:
        from integrations.storage.conversations import (
            ConversationDoc,
            MongoConversationStore,
        )

        convs = [MongoConversationStore._to_conversation(raw)
                 for raw in ConversationDoc._get_collection().find({})]
    return {c.key: (c.flow, c.state, c.data, c.version, c.retries, c.epoch, c.deadline) for c in convs}
