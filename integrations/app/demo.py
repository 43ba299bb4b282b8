"""The offline demo: one teacher and a class of 30 through the real engine, flows and hooks.

No network, no credentials: local roster (a private in-memory database server), local face verifier (dlib) on the
sample photos and video notes, the in-process simulator as Telegram. Most students succeed;
some are far away, type wrong codes, are impostors, send a note without a face, or come after
the session closed. It prints each student's conversation in brief and the teacher's report.
"""
from __future__ import annotations

import asyncio
import os
import random
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from engine import Simulator, SimUser
from integrations.app.assembly import App, build_app
from integrations.app.panel import context_for_app, wait_for_signal
from integrations.app.simulation import faces_source
from integrations.foundation.crypto import hash_password
from integrations.presence.media_reader import read_video_note
from integrations.roster import records
from integrations.roster.csv_import import import_roster
from integrations.settings import get_settings
from integrations.storage.documents import AttendanceRecord
from integrations.web.server import Panel

REPO = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO / "demo_data"
CLASS = (17.385, 78.4867)  # the classroom
NEAR = "/location 17.38508 78.48676 6"  # about 10 m away
FAR = "/location 17.38770 78.4867 15"  # about 300 m away
FIRST = ["Ravi", "Sita", "Arjun", "Meena", "Kiran", "Lata", "Farah", "Rahul", "Divya", "Anil",
         "Pooja", "Vijay", "Neha", "Suresh", "Kavya", "Manoj", "Sneha", "Ajay", "Priya", "Rohit",
         "Asha", "Deepak", "Geeta", "Harish", "Isha", "Jatin", "Komal", "Mohan", "Nisha", "Om"]
LAST = ["Kumar", "Devi", "Reddy", "Iyer", "Patel", "Singh", "Khan", "Verma", "Nair", "Rao"]

# (scenario, how many): the rest of the 30 are honest.
SCENARIOS = [("far away", 2), ("wrong code", 2), ("impostor", 2), ("no face", 1), ("too late", 1)]
CLASS_SIZE = 30


@dataclass
class Student:
    user: SimUser
    student_id: str
    name: str
    batch: str
    phone: str
    scenario: str = "honest"
    steps: list[str] = field(default_factory=list)


def _roster(students: list[Student]) -> str:
    lines = ["role,id,name,phone,email,password,batch,subject",
             "teacher,,Asha Rao,+91 98480 00001,asha.rao@example.edu,demo-pass-1,PFS-101;PFS-102,Python"]
    lines += [f"student,{s.student_id},{s.name},{s.phone},,,{s.batch}," for s in students]
    return "\n".join(lines) + "\n"


def _class() -> list[Student]:
    students = []
    for i in range(CLASS_SIZE):
        batch = "PFS-101" if i < CLASS_SIZE // 2 else "PFS-102"
        sid = f"22{batch[:3]}{batch[-1]}{i + 1:02d}"
        name = f"{FIRST[i]} {LAST[i % len(LAST)]}"
        user = SimUser(FIRST[i].lower(), 7000 + i, "student", FIRST[i])
        students.append(Student(user, sid, name, batch, f"+91 90000 3{i:04d}"))
    order = list(range(CLASS_SIZE))
    random.Random(7).shuffle(order)
    picked = iter(order)
    for scenario, count in SCENARIOS:
        for _ in range(count):
            students[next(picked)].scenario = scenario
    return students


def prepare(faces_source: Path, students: list[Student]) -> Path:
    """Copy the sample media into demo_data/ and give every student a reference photo."""
    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR)
    faces = DEMO_DIR / "faces"
    media = DEMO_DIR / "notes"
    media.mkdir(parents=True)
    for note in ("note_obama_2.mp4", "note_biden_1.mp4", "note_noface.mp4"):
        shutil.copyfile(faces_source / note, media / note)
    for s in students:  # the sample set has one person, so the whole class shares his photo
        target = faces / s.batch / f"{s.student_id}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(faces_source / "obama_1.jpg", target)
    (DEMO_DIR / "roster.csv").write_text(_roster(students), encoding="utf-8")
    return media


async def _step(sim: Simulator, s: Student, line: str, success: str, within: float = 0) -> bool:
    """Send a line; note the bot's answer; True if it contains `success`."""
    before = len(sim.received(s.user))
    await sim.send(s.user, line)
    if within:  # a video note: wait for the verdict that follows "Video received"
        await sim.wait_for(s.user, ["Video received", "\n"], before, within)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and len(sim.texts(s.user, before)) < 2:
            await asyncio.sleep(0.05)
    texts = [t.split("  [")[0] for t in sim.texts(s.user, before) if t]
    answer = next((t for t in texts if "Video received" not in t), texts[-1] if texts else "")
    s.steps.append(answer)
    return success in answer


async def _student(sim: Simulator, s: Student, code: str, media: Path, delay: float) -> None:
    await asyncio.sleep(delay)
    await sim.send(s.user, "/start")
    if not await _step(sim, s, f"/contact {s.phone.replace(' ', '')}", "Hello"):
        return
    if s.scenario == "wrong code":
        for guess in range(5):
            await _step(sim, s, f"{(int(code) + 1 + guess) % 1000000:06d}", "accepted")
        return
    if not await _step(sim, s, code, "Code accepted"):
        return
    if not await _step(sim, s, FAR if s.scenario == "far away" else NEAR, "You are in class"):
        return
    note = {"impostor": "note_biden_1.mp4", "no face": "note_noface.mp4"}.get(s.scenario, "note_obama_2.mp4")
    for _ in range(3 if s.scenario == "impostor" else 1):
        if await _step(sim, s, f"/video {media / note}", "Marked present", within=120):
            return


DEMO_ADMIN = "admin@example.edu"


async def keep_panel_open(app: App, host: str, port: int) -> None:
    """`demo --web`: serve the admin panel on the demo's data until Ctrl-C (a newcomer looks around)."""
    password = secrets.token_urlsafe(9)
    records.create_admin(DEMO_ADMIN, hash_password(password))
    panel = await Panel(context_for_app(app), host, port).start()
    print(f"\nWeb panel on the demo's data: http://{host}:{panel.port}/\n"
          f"  admin:   {DEMO_ADMIN} / {password}   (made for this demo only)\n"
          "  teacher: asha.rao@example.edu / demo-pass-1\nCtrl-C stops.", flush=True)
    try:
        await wait_for_signal()
    finally:
        await panel.stop()


async def run_demo(echo: bool = True, web: Optional[tuple[str, int]] = None) -> int:
    started = time.monotonic()
    students = _class()
    media = prepare(faces_source(), students)
    os.environ.update({"FACES_DIR": str(DEMO_DIR / "faces"), "REPORT_BUFFER_SECONDS": "2",
                       "VERIFY_WORKERS": os.environ.get("VERIFY_WORKERS", "4")})
    get_settings.cache_clear()
    app = build_app(get_settings(), flows=REPO / "flows", ephemeral_db=True)
    app.open_storage()
    import_roster(DEMO_DIR / "roster.csv")
    await app.start()
    sim = Simulator(app.engine, media_reader=read_video_note)
    teacher = SimUser("asha", 5001, "teacher", "Asha")
    print(f"Demo class: {CLASS_SIZE} students in PFS-101 and PFS-102; teacher Asha Rao.\n")
    try:
        for line in ("/start", "/contact +919848000001", "asha.rao@example.edu", "demo-pass-1",
                     "/tap 📝 Take attendance", "/tap PFS-101", "/tap PFS-102", "/tap Done ✔", "/tap Python",
                     "/tap 5 min", "/tap 50"):
            await sim.send(teacher, line)
        replies = await sim.send(teacher, f"/location {CLASS[0]} {CLASS[1]} 5")
        opened = next(r for r in replies if "Code:" in r)
        code = opened.split("Code: ")[1][:6]
        print("Teacher:", opened.replace("\n\n", " | ").replace("\n", " "), "\n")
        on_time = [s for s in students if s.scenario != "too late"]
        await asyncio.gather(*(_student(sim, s, code, media, 0.02 * i) for i, s in enumerate(on_time)))
        await app.verify_queue.drain()
        status = await sim.send(teacher, "/status")
        print("Teacher /status:", status[-1], "\n")
        before = len(sim.received(teacher))
        await sim.send(teacher, "/close")
        for s in students:
            if s.scenario == "too late":
                await _student(sim, s, code, media, 0)
        missing = await sim.wait_for(teacher, ["📋 Attendance report"], before, within=30)
        for s in sorted(students, key=lambda s: s.student_id):
            final = s.steps[-1] if s.steps else ""
            print(f"{s.student_id} {s.name:<16} [{s.scenario:<10}] {final}")
        print()
        report = [t for t in sim.texts(teacher, before) if t]
        print("\n".join(report) if not missing else "no report arrived")
        honest = sum(s.scenario == "honest" for s in students)
        present = AttendanceRecord.objects(status="present").count()
        verdict = "as expected" if present == honest else f"EXPECTED {honest}"
        print(f"\n{present} of {CLASS_SIZE} marked present ({verdict}); demo finished in "
              f"{time.monotonic() - started:.1f} s.")
        if web is not None:
            await keep_panel_open(app, *web)
        return 1 if missing or present != honest else 0
    finally:
        await app.stop()
