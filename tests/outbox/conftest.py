"""Outage harness: the student flow on the real engine, the http roster against the fake API over
loopback HTTP (with an on/off switch for its attendance writes), and a scripted face verifier.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from engine.simulator import Simulator, SimUser
from engine.store import MemoryStore
from integrations.api.roster import HttpRoster
from integrations.app import App, build_app
from integrations.attendance.outbox_worker import OutboxWorker
from integrations.foundation import crypto
from integrations.presence.media_reader import read_video_note
from integrations.roster.service import RosterService, snapshot
from integrations.settings import load_settings
from integrations.storage.documents import Session, StudentSnapshot, Teacher
from tests.fakes.faces import FakeFaceVerifier
from tests.fakes.fake_attendance_api import FakeAttendanceApi, Reply
from tests.integrations.conftest import PASSWORD, api, db, make_client, utc  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[2]
TG = 7001
EMAIL = "asha@example.edu"
PHONE = "919848000001"
OTP = "424242"
LAT, LON = 17.4, 78.5
KEY = crypto.generate_key()

# B1-S1 .. B2-S2 and their phones in the fake API's roster (tests/integrations/conftest.py).
PHONES = {"B1-S1": "+919000001100", "B1-S2": "+919000002100", "B2-S1": "+919000001200",
          "B2-S2": "+919000002200"}


class ApiSwitch:
    """Turns the fake API's attendance writes (POST/PUT /attendance) into 503s while ``down``.

    ``down_for`` fails only the writes that carry one of these student ids.
    """

    def __init__(self, fake: FakeAttendanceApi):
        self.fake = fake
        self.down = False
        self.down_for: set[str] = set()
        self._answer: Callable[[Any], Reply] = fake.answer
        fake.answer = self._maybe_down  # type: ignore[method-assign]

    def _maybe_down(self, seen: Any) -> Reply:
        if seen.path == "/attendance" and seen.method in ("POST", "PUT"):
            students = {s.get("student_id") for s in (seen.body or {}).get("students", [])}
            if self.down or students & self.down_for:
                return Reply(503, {"detail": "maintenance"})
        return self._answer(seen)

    def mark(self) -> int:
        return len(self.fake.calls())


def writes_between(fake: FakeAttendanceApi, since: int, until: Optional[int] = None) -> list[tuple[str, str]]:
    """(method, student) of every attendance write the fake received in calls[since:until]."""
    out = []
    for call in fake.calls()[since:until]:
        if call.path == "/attendance" and call.method in ("POST", "PUT"):
            for rec in (call.body or {}).get("students", []):
                out.append((call.method, rec["student_id"]))
    return out


@pytest.fixture
def box():
    box = crypto.SecretBox([KEY])
    crypto.set_secret_box(box)
    yield box
    crypto.set_secret_box(None)


@pytest.fixture
def settings(api):  # noqa: F811
    return load_settings(_env_file=None, app_env="test", roster_backend="http", student_identity="contact",
                         base_url=api.base_url,
                         secret_key=KEY, timezone="UTC", verify_workers=1, face_max_attempts=3)


@pytest.fixture
def switch(api):  # noqa: F811
    return ApiSwitch(api)


@pytest.fixture
def roster(db, box, api):  # noqa: F811
    service = RosterService(HttpRoster(make_client(api)))
    service.backend.login(TG, PHONE, EMAIL, PASSWORD)
    yield service
    service.close()


def open_session(roster: RosterService, batches=("B1", "B2"), otp: str = OTP, teacher: Optional[Teacher] = None) -> Session:
    teacher = teacher or Teacher.objects(telegram_id=TG).get()
    students = [s for b in batches for s in roster.backend.students(TG, b, "Python")]
    return Session(otp=otp, teacher=teacher, batches=list(batches), subject="Python", latitude=LAT,
                   longitude=LON, radius_m=50.0, expires_at=utc(minutes=10),
                   students=[StudentSnapshot(**d) for d in snapshot(students)]).save()


@dataclass
class Harness:
    app: App
    sim: Simulator
    verifier: FakeFaceVerifier
    session: Session
    api: FakeAttendanceApi
    switch: ApiSwitch
    users: dict[str, SimUser] = field(default_factory=dict)

    @property
    def outbox(self) -> OutboxWorker:
        return self.app.outbox

    @property
    def services(self):  # type: ignore[no-untyped-def]
        return self.app.services

    @property
    def session_id(self) -> str:
        return str(self.session.id)

    def user(self, student_id: str) -> SimUser:
        if student_id not in self.users:
            uid = 8000 + len(self.users) + 1
            self.users[student_id] = SimUser(student_id, uid, "student", f"Student{uid}")
        return self.users[student_id]

    async def check_in(self, student_id: str, video: Path, expect: list[str], within: float = 60) -> list[str]:
        """Contact, code, location and video note; waits for ``expect`` after the video."""
        user = self.user(student_id)
        sim = self.sim
        await sim.send(user, "/start")
        assert any("Hello" in t for t in await sim.send(user, f"/contact {PHONES[student_id]}")), sim.texts(user)
        assert any("Code accepted" in t for t in await sim.send(user, OTP)), sim.texts(user)
        assert any("in class" in t for t in await sim.send(user, f"/location {LAT} {LON} 5")), sim.texts(user)
        since = len(sim.texts(user))
        await sim.send(user, f"/video {video}")
        missing = await sim.wait_for(user, expect, since, within)
        assert not missing, f"missing {missing} in {sim.texts(user, since)}"
        await self.services.verify_queue.drain()
        return sim.texts(user, since)

    def texts(self, student_id: str, since: int = 0) -> list[str]:
        return self.sim.texts(self.user(student_id), since)


@pytest.fixture
def video(faces_dir: Path) -> Path:
    return faces_dir / "note_obama_2.mp4"


@pytest.fixture
async def harness(db, box, api, settings, switch, roster):  # noqa: F811
    verifier = FakeFaceVerifier()
    app = build_app(settings, flows=[str(REPO / "flows" / "student.yaml")], roster=roster, verifier=verifier,
                    store=MemoryStore(), connect=False, outbox_interval=3600)  # passes run by the tests
    sim = Simulator(app.engine, media_reader=read_video_note)
    await app.start()
    session = open_session(roster)
    h = Harness(app, sim, verifier, session, api, switch)
    await app.outbox.run_once()  # the start-up pass has run; nothing was pending
    try:
        yield h
    finally:
        await app.stop()
