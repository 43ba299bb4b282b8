"""An in-process app over the script fixtures' roster, for tests that need more than a script."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.simulator import Simulator, SimUser
from integrations.app import App, build_app
from integrations.presence.media_reader import read_video_note
from integrations.roster.csv_import import import_roster
from integrations.settings import load_settings
from integrations.storage.connection import connect_db
from tests.conftest import fresh_db_uri
from tests.fakes.faces import FakeFaceVerifier

REPO = Path(__file__).resolve().parents[2]
CLASS = "17.385 78.4867"
NEAR = "/location 17.38510 78.48670 5"
ASHA = SimUser("asha", 5001, "teacher", "Asha")
VIKRAM = SimUser("vikram", 5002, "teacher", "Vikram")
STUDENTS = {  # fixture roster: name -> (user, phone)
    "ravi": (SimUser("ravi", 6001, "student", "Ravi"), "+919000010001"),
    "sita": (SimUser("sita", 6002, "student", "Sita"), "+919000010002"),
    "arjun": (SimUser("arjun", 6003, "student", "Arjun"), "+919000010003"),
    "lata": (SimUser("lata", 6004, "student", "Lata"), "+919000010004"),
    "meena": (SimUser("meena", 6101, "student", "Meena"), "+919000010101"),
}


def make_app(processor: Any = None, **overrides: Any) -> tuple[App, Simulator]:
    """The real app on a fresh database; faces always match and notes are not decoded (these
    tests are not about faces), unless a ``processor`` says otherwise."""
    settings = load_settings(app_env="test", report_buffer_seconds=0, **overrides)
    connect_db(fresh_db_uri("appkit"))
    verifier = FakeFaceVerifier()
    app = build_app(settings, flows=REPO / "flows", verifier=verifier, connect=False,
                    processor=processor or (lambda job: verifier.verify(b"", job.batch, job.student_id)))
    app.open_storage()
    import_roster(REPO / "flows" / "scripts" / "fixtures" / "roster.csv")
    return app, Simulator(app.engine, media_reader=read_video_note)


async def open_session(sim: Simulator, teacher: SimUser = ASHA, phone: str = "+919848000001",
                       email: str = "asha.rao@example.edu", password: str = "demo-pass-1",
                       batch: str = "PFS-101", subject: str = "Python") -> str:
    """Log the teacher in and open a session; returns the code."""
    for line in ("/start", f"/contact {phone}", email, password, "/tap 📝 Take attendance",
                 f"/tap {batch}", "/tap Done ✔", f"/tap {subject}", "/tap 10 min", "/tap 50"):
        await sim.send(teacher, line)
    replies = await sim.send(teacher, f"/location {CLASS} 5")
    opened = next(r for r in replies if "Code:" in r)
    return opened.split("Code: ")[1][:6]


async def student_at_code(sim: Simulator, name: str) -> SimUser:
    user, phone = STUDENTS[name]
    await sim.send(user, "/start")
    await sim.send(user, f"/contact {phone}")
    return user
