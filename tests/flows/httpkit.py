"""The whole app (teacher and student flows) on the http roster backend, against the fake API."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.simulator import Simulator, SimUser
from engine.store import MemoryStore
from integrations.api.roster import HttpRoster
from integrations.app import App, build_app
from integrations.foundation import crypto
from integrations.presence.media_reader import read_video_note
from integrations.roster.service import RosterService
from integrations.settings import load_settings
from tests.fakes.faces import FakeFaceVerifier
from tests.fakes.fake_attendance_api import FakeAttendanceApi
from tests.integrations.conftest import PASSWORD, make_client

REPO = Path(__file__).resolve().parents[2]
TEACHER = SimUser("asha", 7001, "teacher", "Asha")
EMAIL = "asha@example.edu"
CLASS = "17.385 78.4867"
NEAR = "/location 17.38510 78.48670 5"
NOTE = "/video flows/scripts/media/hello.mp4"


def http_app(api: FakeAttendanceApi, **overrides: Any) -> tuple[App, Simulator, FakeFaceVerifier]:
    """The real app (database already connected by the `db` fixture) on ROSTER_BACKEND=http."""
    options: dict[str, Any] = dict(_env_file=None, app_env="test", roster_backend="http", base_url=api.base_url,
                                   secret_key=crypto.generate_key(), report_buffer_seconds=0, timezone="UTC",
                                   verify_workers=1)
    options.update(overrides)
    settings = load_settings(**options)
    verifier = FakeFaceVerifier()
    app = build_app(settings, flows=REPO / "flows", roster=RosterService(HttpRoster(make_client(api))),
                    verifier=verifier, store=MemoryStore(), connect=False, outbox_interval=3600,
                    processor=lambda job: verifier.verify(b"", job.batch, job.student_id))
    app.owns_roster = True
    return app, Simulator(app.engine, media_reader=read_video_note), verifier


async def login(sim: Simulator) -> list[str]:
    out = []
    for line in ("/start", "/contact +919848000001", EMAIL, PASSWORD):
        out += await sim.send(TEACHER, line)
    return out


async def open_session(sim: Simulator, batch: str = "B1", subject: str = "Python", duration: str = "10 min") -> str:
    """Log in (if needed) and open a session; returns the code."""
    if not any("Logged in" in t or "Welcome back" in t for t in sim.texts(TEACHER)):
        await login(sim)
    for line in ("/tap 📝 Take attendance", f"/tap {batch}", "/tap Done ✔", f"/tap {subject}", f"/tap {duration}",
                 "/tap 50"):
        await sim.send(TEACHER, line)
    replies = await sim.send(TEACHER, f"/location {CLASS} 5")
    opened = next(r for r in replies if "Code:" in r)
    return opened.split("Code: ")[1][:6]
