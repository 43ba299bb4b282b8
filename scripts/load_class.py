#!/usr/bin/env python3
"""Load test of a whole class (issue 7): one teacher, N students, the real pipeline.

Run on demand (a small version runs in CI: tests/load/test_load_small.py):

    .venv/bin/python scripts/load_class.py                                   # 1000 students, 90 s window
    .venv/bin/python scripts/load_class.py --students 100 --time-scale 0.1   # quick: 9 s window, 0.05 s API, 0.1 s face
    .venv/bin/python scripts/load_class.py --store mongo --workers 64 --json /tmp/load.json
    .venv/bin/python scripts/load_class.py --roster slow-local               # no HTTP: LocalRoster + sleeps
    .venv/bin/python scripts/load_class.py --telegram [--bots 3]             # issue 13: the class on Telegram's
                                                                             # limits (scripts/load_telegram.py)

What runs, all in this process:

* the real engine, flows/teacher.yaml and flows/student.yaml with their real hooks, the
  conversation store (``--store memory`` or ``mongo`` = MongoConversationStore on the database server), the
  report scheduler and the verification queue (``--workers`` threads);
* the roster: a CSV (1 teacher, N students in ``--batches`` batches) generated into a temporary
  folder and imported with ``integrations.roster.csv_import``;
* the external attendance API: ``--roster http`` (default) is ROSTER_BACKEND=http against
  ``tests/fakes/fake_attendance_api.FakeAttendanceApi`` on loopback HTTP, loaded from the same CSV,
  every answer delayed by ``--api-latency`` (0.5 s); ``--roster slow-local`` is
  :class:`SlowLocalRoster`, the local backend with the same delay slept in every call that would
  go to the API (login, assignments, students, submit, report);
* Rekognition: :class:`SimulatedRekognitionVerifier` sleeps ``--face-latency`` (1.0 s) and
  matches. Frame extraction stays real (OpenCV + dlib's detector) on
  ``note_obama_2.mp4`` from ``integrations.app.simulation.faces_source()``.

The teacher logs in and opens a session through the teacher flow with the same inputs as
flows/scripts/attendance_paths.yaml. Students then arrive spread uniformly at random over
``--window`` seconds; each sends /start, its own contact, the code, its location and a video
note (``--think`` seconds on average between two of its messages) and waits for the verdict.
When every student has its verdict the teacher sends /status and /close and waits for the report.

Measured:

* update → reply: the time around ``engine.submit`` (the reply is delivered to the sink before
  it returns), per update, raw and *excluding* the time the step spent awaiting roster calls that
  go to the simulated external API (``login_teacher``, ``list_assignments``, ``load_students``,
  ``submit_attendance``, ``report``, ``logout_teacher``: timed per step through a contextvar).
  No student step awaits the API or the face service (verification is queued), so for students
  raw and excluding only differ if a hook starts calling the API;
* video note → verdict: from sending the note to the "✅ Marked present" reply;
* verification queue: peak depth (sampled every 50 ms and the queue's own peak), rejections;
* process RSS (sampled; peak and end), event-loop lag, CPU time;
* checks: every student recorded exactly once (AttendanceRecord count == N, unique, present),
  exactly one verdict per student, /status and the report say present N/N, the fake API holds N
  (http), no engine errors. Exit status 1 if any check fails.
"""
from __future__ import annotations

import argparse
import asyncio
import contextvars
import cProfile
import csv
import io
import json
import logging
import math
import os
import platform
import pstats
import random
import re
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.types import (  # noqa: E402
    Command,
    Contact,
    Location,
    Outgoing,
    SendDocument,
    SendText,
    Update,
    VideoNote,
)
from integrations.presence.faces.base import MATCH, STORED, FaceResult, FaceVerifier  # noqa: E402
from integrations.roster.local import LocalRoster  # noqa: E402

log = logging.getLogger("load_class")

TEACHER_TG = 5001
TEACHER_EMAIL = "load.teacher@example.edu"
TEACHER_PASSWORD = "load-pass-1"
TEACHER_NAME = "Lata Load"
TEACHER_PHONE = "+91 80000 00001"
MENTOR_ID = "M-LOAD"
SUBJECT = "Python"
CLASS_LAT, CLASS_LON = 17.385, 78.4867
STUDENT_TG_BASE = 1_000_000
NOTE_FILE = "note_obama_2.mp4"
STEPS = ("start", "contact", "code", "location", "video")
EXTERNAL_METHODS = ("login_teacher", "logout_teacher", "list_assignments", "load_students",
                    "submit_attendance", "report")

# Targets of issue 7.
TARGET_P95_MS = 50.0


# ------------------------------------------------------------------------------ simulated externals
class SimulatedRekognitionVerifier(FaceVerifier):
    """Stands in for Rekognition's CompareFaces: sleeps ``latency`` seconds (a network round trip,
    releasing the GIL like a real call) and matches every frame."""

    name = "simulated-rekognition"

    def __init__(self, latency: float = 1.0) -> None:
        self.latency = latency
        self.calls = 0
        self._lock = threading.Lock()

    def verify(self, frame_jpeg: bytes, batch: str, student_id: str) -> FaceResult:
        time.sleep(self.latency)
        with self._lock:
            self.calls += 1
        return FaceResult(True, MATCH, similarity=99.5, threshold=80.0, backend=self.name)

    def store_reference(self, batch: str, student_id: str, photo_jpeg: bytes) -> FaceResult:
        return FaceResult(True, STORED, backend=self.name)

    def has_reference(self, batch: str, student_id: str) -> bool:
        return True


class SlowLocalRoster(LocalRoster):
    """The local roster backend with ``latency`` seconds slept in every call that the http
    backend would send to the external API (``--roster slow-local``)."""

    name = "slow-local"

    def __init__(self, latency: float) -> None:
        self.latency = latency

    def _wait(self) -> None:
        time.sleep(self.latency)

    def login(self, *args: Any, **kw: Any):  # type: ignore[override]
        self._wait()
        return super().login(*args, **kw)

    def assignments(self, telegram_id: int):  # type: ignore[override]
        self._wait()
        return super().assignments(telegram_id)

    def students(self, telegram_id: int, batch: str, subject: str):  # type: ignore[override]
        self._wait()
        return LocalRoster.students(self, telegram_id, batch, subject)

    def submit(self, *args: Any, **kw: Any):  # type: ignore[override]
        self._wait()
        return super().submit(*args, **kw)

    def report(self, session_id: str):  # type: ignore[override]
        self._wait()
        return super().report(session_id)


# Time awaited in external calls during the current step (None outside a measured step).
EXTERNAL: contextvars.ContextVar[Optional[list[float]]] = contextvars.ContextVar("load_external", default=None)


def instrument_roster(roster: Any) -> Counter:
    """Time every RosterService call that goes to the (simulated) external API, per step."""
    calls: Counter = Counter()

    def timed(name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapper(*args: Any, **kw: Any) -> Any:
            acc = EXTERNAL.get()
            started = time.perf_counter()
            try:
                return await fn(*args, **kw)
            finally:
                calls[name] += 1
                if acc is not None:
                    acc[0] += time.perf_counter() - started
        return wrapper

    for name in EXTERNAL_METHODS:
        setattr(roster, name, timed(name, getattr(roster, name)))
    return calls


def instrument_hooks(registry: Any) -> dict[str, list[float]]:
    """Wall time of every hook call, by hook name (where a step's time goes)."""
    import dataclasses
    import inspect

    times: dict[str, list[float]] = defaultdict(list)

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def finish(result: Awaitable[Any], started: float) -> Any:
            try:
                return await result
            finally:
                times[name].append(time.perf_counter() - started)

        def wrapper(ctx: Any) -> Any:
            started = time.perf_counter()
            result = fn(ctx)
            if inspect.isawaitable(result):
                return finish(result, started)
            times[name].append(time.perf_counter() - started)
            return result
        return wrapper

    for spec in list(registry):
        registry._hooks[spec.name] = dataclasses.replace(spec, fn=timed(spec.name, spec.fn))
    return times


# ------------------------------------------------------------------------------ roster
@dataclass(frozen=True)
class StudentRow:
    index: int
    student_id: str
    name: str
    phone: str
    batch: str

    @property
    def tg(self) -> int:
        return STUDENT_TG_BASE + self.index


def make_students(n: int, batches: int) -> list[StudentRow]:
    """N students in ``batches`` batches of (almost) equal size, contiguous ids."""
    per = math.ceil(n / batches)
    return [StudentRow(i, f"LD{i:06d}", f"Student {i:06d}", f"+91 9{i:09d}", f"LB-{i // per + 1:02d}")
            for i in range(n)]


def batch_names(students: list[StudentRow]) -> list[str]:
    return sorted({s.batch for s in students})


def write_roster_csv(path: Path, students: list[StudentRow]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["role", "id", "name", "phone", "email", "password", "batch", "subject"])
        w.writerow(["teacher", "", TEACHER_NAME, TEACHER_PHONE, TEACHER_EMAIL, TEACHER_PASSWORD,
                    ";".join(batch_names(students)), SUBJECT])
        for s in students:
            w.writerow(["student", s.student_id, s.name, s.phone, "", "", s.batch, ""])


def start_fake_api(csv_path: Path, latency: float) -> Any:
    """The fake external API on loopback, loaded from the same roster CSV, every path delayed."""
    from tests.fakes.fake_attendance_api import FakeAttendanceApi

    api = FakeAttendanceApi(access_ttl=3600, refresh_ttl=7200)
    with open(csv_path, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["role"] == "teacher":
                api.add_user(row["email"], row["password"], mentor_id=MENTOR_ID, name=row["name"],
                             phone=row["phone"])
                api.assignments[MENTOR_ID] += [(b, row["subject"]) for b in row["batch"].split(";")]
            else:
                api.add_student(row["batch"], row["id"], row["name"], row["phone"])
    for path in ("/login", "/refresh", "/logout", "/attendance", "/attend"):
        api.latency[path] = latency
    return api.start()


# ------------------------------------------------------------------------------ measuring
def _count(text: str) -> int:
    """A count from a reply, with or without the language's grouping ("1,000")."""
    return int(text.replace(",", ""))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": pct(values, 50) * 1e3, "p95": pct(values, 95) * 1e3,
            "p99": pct(values, 99) * 1e3, "max": (max(values) if values else float("nan")) * 1e3}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Sample:
    t: float
    depth: int
    in_flight: int
    rss: int
    lag: float


@dataclass
class Measured:
    # (who, step, raw seconds, external seconds)
    steps: list[tuple[str, str, float, float]] = field(default_factory=list)
    video_to_verdict: list[float] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    busy_resends: int = 0
    verdicts: Counter = field(default_factory=Counter)  # chat -> "✅ Marked present" replies
    other_verdicts: Counter = field(default_factory=Counter)


VERDICT_OK = "✅ Marked present"
VERDICT_OTHER = ("❌", "I could not", "Face checking is busy", "There is no reference", "This session has ended",
                 "Checking took too long", "Your face did not match", "✅ Marked present for")


class StudentSink:
    """Per-chat verdict waiters (the Simulator's shared condition would wake every waiter on every
    message: O(N) wake-ups per reply)."""

    def __init__(self, measured: Measured) -> None:
        self.measured = measured
        self.waiting: dict[int, asyncio.Future] = {}

    def expect_verdict(self, chat_id: int) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.waiting[chat_id] = fut
        return fut

    async def __call__(self, out: Outgoing) -> None:
        if out.bot != "student":
            return
        for action in out.actions:
            if not isinstance(action, SendText):
                continue
            text = action.text
            if text.startswith(VERDICT_OK):
                self.measured.verdicts[out.chat_id] += 1
            elif text.startswith(VERDICT_OTHER):
                self.measured.other_verdicts[out.chat_id] += 1
            else:
                continue
            fut = self.waiting.pop(out.chat_id, None)
            if fut is not None and not fut.done():
                fut.set_result((time.perf_counter(), text))


# ------------------------------------------------------------------------------ the run
@dataclass
class Config:
    students: int = 1000
    window: float = 90.0
    think: float = 2.0
    api_latency: float = 0.5
    face_latency: float = 1.0
    workers: int = 32
    store: str = "memory"
    roster: str = "http"
    batches: int = 4
    seed: int = 7
    verdict_timeout: float = 900.0
    profile: Optional[str] = None
    profile_lines: int = 30
    quiet: bool = False


async def run(cfg: Config) -> dict[str, Any]:
    from integrations.app.simulation import faces_source

    source = faces_source()
    note_bytes = (source / NOTE_FILE).read_bytes()
    workdir = Path(tempfile.mkdtemp(prefix="load-class-"))
    students = make_students(cfg.students, cfg.batches)
    csv_path = workdir / "roster.csv"
    write_roster_csv(csv_path, students)

    api = start_fake_api(csv_path, cfg.api_latency) if cfg.roster == "http" else None
    server = None  # without MONGODB_URI: a private SecantusDB server in memory, for this run only
    if not os.environ.get("MONGODB_URI"):
        from integrations.storage.embedded import EmbeddedServer

        server = EmbeddedServer(workdir / "db", memory=True).start()
    mongo_uri = os.environ.get("MONGODB_URI") or f"{server.base_uri}/load_{os.getpid()}"
    env = {
        "APP_ENV": "test", "STORE": cfg.store, "MONGODB_URI": mongo_uri,
        "ROSTER_BACKEND": "http" if cfg.roster == "http" else "local", "STUDENT_IDENTITY": "contact",
        "VERIFY_WORKERS": str(cfg.workers), "VERIFY_QUEUE_CAPACITY": str(max(1000, 2 * cfg.students)),
        "REPORT_BUFFER_SECONDS": "1", "FACES_DIR": str(workdir / "faces"), "FACE_VERIFIER": "local",
        "LOCATION_DISTANCE_LIMIT_METERS": "50", "TIMEZONE": "UTC",
    }
    if api is not None:
        env["BASE_URL"] = api.base_url
    os.environ.update(env)

    from engine.simulator import Simulator, SimUser
    from integrations.app import build_app
    from integrations.presence import video as video_mod
    from integrations.presence.media_reader import read_video_note, video_duration
    from integrations.roster.csv_import import import_roster
    from integrations.roster.service import RosterService
    from integrations.settings import get_settings
    from integrations.storage.documents import AttendanceRecord, Session

    get_settings.cache_clear()
    settings = get_settings()
    verifier = SimulatedRekognitionVerifier(cfg.face_latency)
    roster = RosterService(SlowLocalRoster(cfg.api_latency)) if cfg.roster == "slow-local" else None
    app = build_app(settings, flows=[str(ROOT / "flows" / "teacher.yaml"), str(ROOT / "flows" / "student.yaml")],
                    verifier=verifier, roster=roster)
    app.open_storage()
    imported = import_roster(csv_path)
    external_calls = instrument_roster(app.services.roster)
    hook_times = instrument_hooks(app.engine.hooks)
    video_mod.warm_up()
    note = VideoNote(note_bytes, video_duration(note_bytes), 384, len(note_bytes), "load-note")

    measured = Measured()
    sink = StudentSink(measured)
    app.add_sink(sink)
    sim = Simulator(app.engine, media_reader=read_video_note)
    engine = app.engine
    queue = app.verify_queue
    await app.start()

    # ---------------------------------------------------------------- teacher opens the session
    teacher = SimUser("teacher", TEACHER_TG, "teacher", "Lata")

    async def teacher_says(line: str, expect: list[str], within: float = 0.0) -> list[str]:
        before = len(sim.received(teacher))
        acc = [0.0]
        token = EXTERNAL.set(acc)
        started = time.perf_counter()
        try:
            await sim.send(teacher, line)
        finally:
            EXTERNAL.reset(token)
        measured.steps.append(("teacher", line.split(" ")[0][:24], time.perf_counter() - started, acc[0]))
        missing = await sim.wait_for(teacher, expect, before, within)
        texts = sim.texts(teacher, before)
        if missing:
            raise RuntimeError(f"teacher: {line!r}: missing {missing!r}; got {texts!r}")
        return texts

    t_setup = time.perf_counter()
    await teacher_says("/start", ["share your phone number"])
    await teacher_says(f"/contact {TEACHER_PHONE.replace(' ', '')}", ["email address"])
    await teacher_says(TEACHER_EMAIL, ["password"])
    await teacher_says(TEACHER_PASSWORD, ["Logged in."])
    await teacher_says("/tap 📝 Take attendance", ["Choose the batches"])
    for batch in batch_names(students):
        await teacher_says(f"/tap {batch}", [f"✅ {batch}"])
    await teacher_says("/tap Done ✔", ["Which subject?"])
    await teacher_says(f"/tap {SUBJECT}", ["How long should the code stay valid"])
    await teacher_says("180", ["How close must students be"])
    await teacher_says("/tap 50", ["share the classroom's location"])
    texts = await teacher_says(f"/location {CLASS_LAT} {CLASS_LON} 5",
                               [f"Session open for {SUBJECT}", f"{cfg.students} students", "Code: "])
    code = re.search(r"Code: (\d{6})", "\n".join(texts)).group(1)  # type: ignore[union-attr]
    setup_s = time.perf_counter() - t_setup

    # ---------------------------------------------------------------- students
    rng = random.Random(cfg.seed)
    arrivals = sorted(rng.uniform(0, cfg.window) for _ in students)
    thinks = [[rng.uniform(0, 2 * cfg.think) for _ in STEPS] for _ in students]
    submit = engine.submit

    async def step(update: Update, name: str) -> list[str]:
        acc = [0.0]
        token = EXTERNAL.set(acc)
        started = time.perf_counter()
        try:
            actions = await submit(update)
        finally:
            EXTERNAL.reset(token)
        measured.steps.append(("student", name, time.perf_counter() - started, acc[0]))
        return [a.text for a in actions if isinstance(a, SendText)]

    async def student(s: StudentRow, arrival: float, pauses: list[float]) -> None:
        await asyncio.sleep(max(0.0, t_start + arrival - time.perf_counter()))
        uid = s.tg
        mid = iter(range(1, 1000))

        def upd(kind: str, payload: Any) -> Update:
            return Update("student", uid, uid, kind, payload, message_id=next(mid), first_name=s.name)  # type: ignore[arg-type]

        plan = [
            ("start", upd("command", Command("start")), "share your phone number"),
            ("contact", upd("contact", Contact(s.phone.replace(" ", ""), uid, s.name)), f"({s.student_id})!"),
            ("code", upd("text", code), "Code accepted"),
            ("location", upd("location", Location(CLASS_LAT + 0.00004, CLASS_LON + 0.00002, 8.0)), "You are in class"),
        ]
        for i, (name, update, expected) in enumerate(plan):
            if i:
                await asyncio.sleep(pauses[i])
            replies = await step(update, name)
            if not any(expected in r for r in replies):
                measured.failures.append(f"{s.student_id} {name}: expected {expected!r}, got {replies!r}")
                return
        await asyncio.sleep(pauses[4])
        for attempt in range(20):
            verdict = sink.expect_verdict(uid)
            sent_at = time.perf_counter()
            replies = await step(upd("video_note", note), "video")
            if any("Video received" in r for r in replies):
                break
            sink.waiting.pop(uid, None)
            if any("Many students are checking in" in r for r in replies):
                measured.busy_resends += 1
                await asyncio.sleep(1.0 + rng.random())
                continue
            measured.failures.append(f"{s.student_id} video: got {replies!r}")
            return
        else:
            measured.failures.append(f"{s.student_id} video: still busy after 20 tries")
            return
        try:
            at, text = await asyncio.wait_for(verdict, cfg.verdict_timeout)
        except asyncio.TimeoutError:
            measured.failures.append(f"{s.student_id}: no verdict within {cfg.verdict_timeout} s")
            return
        if not text.startswith(VERDICT_OK):
            measured.failures.append(f"{s.student_id}: verdict {text!r}")
            return
        measured.video_to_verdict.append(at - sent_at)

    stop_sampling = asyncio.Event()

    async def sampler() -> None:
        period = 0.05
        while not stop_sampling.is_set():
            before = time.perf_counter()
            await asyncio.sleep(period)
            lag = time.perf_counter() - before - period
            measured.samples.append(Sample(time.perf_counter() - t_start, queue._queue.qsize(), queue._in_flight,
                                           rss_bytes(), lag))

    rss_before = rss_bytes()
    profiler = cProfile.Profile() if cfg.profile else None
    t_start = time.perf_counter()
    cpu0 = time.process_time()
    sampling = asyncio.create_task(sampler())
    if profiler:
        profiler.enable()
    progress = asyncio.create_task(_progress(cfg, measured, queue, t_start)) if not cfg.quiet else None
    await asyncio.gather(*(student(s, a, p) for s, a, p in zip(students, arrivals, thinks)))
    students_s = time.perf_counter() - t_start
    if profiler:
        profiler.disable()
    cpu_students = time.process_time() - cpu0
    if progress:
        progress.cancel()

    # ---------------------------------------------------------------- teacher: status, close, report
    session = Session.objects(otp=code).order_by("-opened_at").first()
    status = await teacher_says("/status", ["📊"])
    m = re.search(r"(\d+) present, (\d+) not yet", "\n".join(status))
    status_present, status_absent = (int(m.group(1)), int(m.group(2))) if m else (-1, -1)
    await teacher_says("/close", ["Session closed"])
    t_close = time.perf_counter()
    missing = await sim.wait_for(teacher, ["📋 Attendance report", "[document attendance_"], 0, 120.0)
    report_s = time.perf_counter() - t_close
    report_text = next((t for t in sim.texts(teacher) if t.startswith("📋 Attendance report")), "")
    # the report writes its counts as the teacher's language does: "1,000" in English
    rm = re.search(r"Present (\d[\d,]*)/(\d[\d,]*)", report_text)
    report_present, report_total = (_count(rm.group(1)), _count(rm.group(2))) if rm else (-1, -1)
    am = re.search(r"Absent (\d[\d,]*)", report_text)
    report_absent = _count(am.group(1)) if am else -1
    unsynced = re.search(r"Not yet synced with the attendance service: (\d[\d,]*)", report_text)
    report_docs = [r.action for r in sim.received(teacher) if isinstance(r.action, SendDocument)]
    csv_rows = list(csv.DictReader(io.StringIO(report_docs[-1].data.decode("utf-8-sig")))) if report_docs else []
    csv_status = Counter(row["status"] for row in csv_rows)
    csv_ids = [row["student_id"] for row in csv_rows]
    stop_sampling.set()
    await sampling
    total_s = time.perf_counter() - t_start
    cpu_total = time.process_time() - cpu0
    queue_stats = queue.stats()
    engine_stats = dict(engine.stats)
    rss_end = rss_bytes()

    # ---------------------------------------------------------------- exactly once
    records = list(AttendanceRecord.objects(session=session.id).only("student_id", "status", "synced", "method"))
    ids = [r.student_id for r in records]
    expected_ids = {s.student_id for s in students}
    api_students: dict[str, Any] = {}
    api_posts = api_puts = 0
    if api is not None:
        api_students = api.attendance.get(str(session.id), {}).get("students", {})
        api_posts = len(api.calls("POST", "/attendance"))
        api_puts = len(api.calls("PUT", "/attendance"))
    n = cfg.students
    checks = {
        "records == N": len(records) == n,
        "records unique": len(set(ids)) == len(ids),
        "records are the roster": set(ids) == expected_ids,
        "all present (face)": all(r.status == "present" and r.method == "face" for r in records),
        "one verdict per student": len(measured.verdicts) == n and set(measured.verdicts.values()) == {1},
        "no other verdicts": not measured.other_verdicts,
        "no student failures": not measured.failures,
        "/status present N, 0 not yet": (status_present, status_absent) == (n, 0),
        "report present N/N": (report_present, report_total) == (n, n) and not missing,
        "report CSV: N rows, unique, all present": (len(csv_rows) == n and len(set(csv_ids)) == n
                                                    and csv_status == Counter(present=n)),
        "engine: no errors or conflicts": not engine_stats.get("errors") and not engine_stats.get("conflicts"),
        "verify callbacks ok": queue_stats["callback_errors"] == 0 and queue_stats["completed"] == n,
    }
    # Not part of "ok": the report text is cut at 4096 characters (engine/render.py fill), so for
    # a big class the lines after the present names never reach the teacher. Reported as a bug.
    warnings = {"report text complete (absent 0, unsynced 0 shown)":
                report_absent == 0 and bool(unsynced) and unsynced.group(1) == "0"}
    if api is not None:
        checks["API holds N present"] = (len(api_students) == n
                                         and all(v.get("status") == "present" for v in api_students.values()))
        checks["API: one POST, N-1 PUT"] = (api_posts, api_puts) == (1, n - 1)
        checks["all records synced"] = all(r.synced for r in records)

    student_raw = [raw for who, _, raw, _ in measured.steps if who == "student"]
    student_excl = [raw - ext for who, _, raw, ext in measured.steps if who == "student"]
    teacher_raw = [raw for who, _, raw, _ in measured.steps if who == "teacher"]
    teacher_excl = [raw - ext for who, _, raw, ext in measured.steps if who == "teacher"]
    by_step: dict[str, dict[str, Any]] = {}
    for name in STEPS:
        raw = [r for who, s, r, _ in measured.steps if who == "student" and s == name]
        excl = [r - e for who, s, r, e in measured.steps if who == "student" and s == name]
        by_step[name] = {"raw": summary_ms(raw), "excl": summary_ms(excl)}
    samples = measured.samples
    result: dict[str, Any] = {
        "config": {k: v for k, v in vars(cfg).items() if k not in ("profile", "profile_lines", "quiet")},
        "external_api": ("ROSTER_BACKEND=http against FakeAttendanceApi on loopback"
                         if api is not None else "SlowLocalRoster (LocalRoster + time.sleep)")
                        + f", {cfg.api_latency} s per call",
        "face_service": f"SimulatedRekognitionVerifier (time.sleep {cfg.face_latency} s, match); "
                        f"real frame extraction of {NOTE_FILE}",
        "import": str(imported),
        "teacher_setup_s": setup_s,
        "students_phase_s": students_s,
        "report_after_close_s": report_s,
        "total_s": total_s,
        "cpu_students_phase_s": cpu_students,
        "cpu_total_s": cpu_total,
        "updates": len(measured.steps),
        "student_updates": len(student_raw),
        "update_to_reply_ms": {"student_raw": summary_ms(student_raw), "student_excl": summary_ms(student_excl),
                               "teacher_raw": summary_ms(teacher_raw), "teacher_excl": summary_ms(teacher_excl)},
        "by_step_ms": by_step,
        "video_to_verdict_s": {k: (v / 1e3 if k != "n" else v) for k, v in summary_ms(measured.video_to_verdict).items()},
        "queue": {"peak_depth_sampled": max((x.depth for x in samples), default=0),
                  "peak_in_flight_sampled": max((x.in_flight for x in samples), default=0),
                  "peak_depth_queue": queue_stats["peak_depth"], "rejected": queue_stats["rejected"],
                  "submitted": queue_stats["submitted"], "completed": queue_stats["completed"],
                  "busy_resends": measured.busy_resends, "wait_p95_s": queue_stats["wait_p95_s"],
                  "total_p95_s": queue_stats["total_p95_s"]},
        "rss_mb": {"before_students": rss_before / 2**20, "peak_sampled": max((x.rss for x in samples), default=0) / 2**20,
                   "end": rss_end / 2**20, "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024},
        "loop_lag_ms": {"p50": pct([x.lag for x in samples], 50) * 1e3, "p99": pct([x.lag for x in samples], 99) * 1e3,
                        "max": max((x.lag for x in samples), default=0.0) * 1e3},
        "external_calls": dict(external_calls),
        "face_calls": verifier.calls,
        "api_calls": {"POST /attendance": api_posts, "PUT /attendance": api_puts,
                      "total": len(api.seen) if api is not None else 0},
        "engine_stats": engine_stats,
        "report_line": (f"text: present {report_present}/{report_total}, absent {report_absent}, "
                        f"unsynced {unsynced.group(1) if unsynced else '?'} ({len(report_text)} chars); "
                        f"CSV: {len(csv_rows)} rows {dict(csv_status)}; {report_s:.1f} s after /close"),
        "hooks_ms": {name: summary_ms(v) for name, v in sorted(hook_times.items())},
        "report_text_chars": len(report_text),
        "checks": checks,
        "warnings": warnings,
        "ok": all(checks.values()),
        "failures": measured.failures[:20],
        "failure_count": len(measured.failures),
    }
    if profiler:
        profiler.dump_stats(cfg.profile)
        buf = io.StringIO()
        stats = pstats.Stats(profiler, stream=buf)
        stats.sort_stats("tottime").print_stats(cfg.profile_lines)
        stats.sort_stats("cumulative").print_stats(cfg.profile_lines)
        result["profile_text"] = buf.getvalue()
    await app.stop()
    if server is not None:
        server.stop()
    if api is not None:
        api.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    return result


async def _progress(cfg: Config, measured: Measured, queue: Any, t_start: float) -> None:
    while True:
        await asyncio.sleep(10)
        done = len(measured.video_to_verdict)
        print(f"  [{time.perf_counter() - t_start:6.1f} s] updates {len(measured.steps):6d}  verdicts {done}/{cfg.students}"
              f"  queue {queue._queue.qsize()} (+{queue._in_flight} running)  rss {rss_bytes() / 2**20:.0f} MB",
              file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ output
def machine() -> dict[str, Any]:
    from importlib import metadata

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    versions = {}
    for pkg in ("python-statemachine", "mongoengine", "pymongo", "SecantusDB", "opencv-python-headless", "requests"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "loadavg": os.getloadavg(), "packages": versions}


def print_table(res: dict[str, Any]) -> None:
    c = res["config"]
    u = res["update_to_reply_ms"]
    print()
    print(f"load_class: {c['students']} students, window {c['window']:g} s, think {c['think']:g} s, "
          f"store {c['store']}, {c['workers']} verify workers")
    print(f"  external API : {res['external_api']}")
    print(f"  face service : {res['face_service']}")
    print(f"  machine      : {res['machine']['nproc']} CPU ({res['machine']['cpu']}), Python {res['machine']['python']}, "
          f"load avg at end {', '.join(f'{x:.2f}' for x in res['machine']['loadavg'])}")
    print()
    print(f"  {'update → reply (ms)':34s} {'n':>6s} {'p50':>8s} {'p95':>8s} {'p99':>8s} {'max':>9s}")
    rows = [("students, raw", u["student_raw"]), ("students, excl. external", u["student_excl"])]
    rows += [(f"  {name}, raw", res["by_step_ms"][name]["raw"]) for name in STEPS]
    rows += [("teacher, raw", u["teacher_raw"]), ("teacher, excl. external", u["teacher_excl"])]
    for label, s in rows:
        print(f"  {label:34s} {s['n']:6d} {s['p50']:8.1f} {s['p95']:8.1f} {s['p99']:8.1f} {s['max']:9.1f}")
    v = res["video_to_verdict_s"]
    print(f"  {'video note → verdict (s)':34s} {v['n']:6d} {v['p50']:8.2f} {v['p95']:8.2f} {v['p99']:8.2f} {v['max']:9.2f}")
    q = res["queue"]
    print()
    print(f"  verify queue : peak depth {q['peak_depth_sampled']} (queue's own {q['peak_depth_queue']}), "
          f"peak running {q['peak_in_flight_sampled']}, rejected {q['rejected']}, resends {q['busy_resends']}")
    r = res["rss_mb"]
    print(f"  RSS          : {r['before_students']:.0f} MB before students, peak {r['peak_sampled']:.0f} MB, "
          f"end {r['end']:.0f} MB")
    lag = res["loop_lag_ms"]
    print(f"  loop lag     : p50 {lag['p50']:.1f} ms, p99 {lag['p99']:.1f} ms, max {lag['max']:.1f} ms")
    print(f"  time         : teacher setup {res['teacher_setup_s']:.1f} s, students {res['students_phase_s']:.1f} s, "
          f"report {res['report_after_close_s']:.1f} s after /close; CPU {res['cpu_students_phase_s']:.1f} s "
          f"in the students phase ({res['cpu_students_phase_s'] / max(1, res['student_updates']) * 1e3:.2f} ms per update)")
    print(f"  calls        : {res['external_calls']}, face {res['face_calls']}, api {res['api_calls']}")
    print(f"  report       : {res['report_line']}")
    print()
    print(f"  {'hook wall time (ms)':34s} {'n':>6s} {'p50':>8s} {'p95':>8s} {'p99':>8s} {'max':>9s}")
    for name, h in res["hooks_ms"].items():
        print(f"  {name:34s} {h['n']:6d} {h['p50']:8.1f} {h['p95']:8.1f} {h['p99']:8.1f} {h['max']:9.1f}")
    print()
    for name, ok in res["checks"].items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")
    for name, ok in res["warnings"].items():
        print(f"  [{'ok' if ok else 'WARN'}] {name}")
    for failure in res["failures"]:
        print(f"  failure: {failure}")
    if res["failure_count"] > len(res["failures"]):
        print(f"  ... {res['failure_count'] - len(res['failures'])} more failure(s)")
    p95 = u["student_excl"]["p95"]
    print(f"\n  target p95 update → reply ≤ {TARGET_P95_MS:g} ms excl. external: "
          f"{'met' if p95 <= TARGET_P95_MS else 'NOT met'} ({p95:.1f} ms)")
    print(f"  {'PASSED' if res['ok'] else 'FAILED'}: every student recorded exactly once and the report "
          f"says present N/N" if res["ok"] else "  FAILED")


def parse_args(argv: Optional[list[str]] = None) -> tuple[Config, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--students", type=int, default=1000)
    p.add_argument("--window", type=float, default=90.0, help="arrival window, seconds (default 90)")
    p.add_argument("--think", type=float, default=2.0,
                   help="mean seconds between two messages of one student (uniform 0..2x; default 2)")
    p.add_argument("--api-latency", type=float, default=0.5, help="external API latency, s (default 0.5)")
    p.add_argument("--face-latency", type=float, default=1.0, help="simulated Rekognition latency, s (default 1.0)")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="multiply window, think, api and face latency by this (0.1 for a quick run)")
    p.add_argument("--workers", type=int, default=32, help="verification queue workers (VERIFY_WORKERS; default 32)")
    p.add_argument("--store", choices=("memory", "mongo"), default="memory",
                   help="conversation store: in-memory, or MongoConversationStore on the database (MONGODB_URI, else a private SecantusDB in memory)")
    p.add_argument("--roster", choices=("http", "slow-local"), default="http",
                   help="http: ROSTER_BACKEND=http + fake API on loopback (default); slow-local: LocalRoster + sleeps")
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--verdict-timeout", type=float, default=900.0)
    p.add_argument("--profile", metavar="FILE", help="cProfile the event-loop thread during the students phase")
    p.add_argument("--profile-lines", type=int, default=30)
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON ('-' for stdout)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    a = p.parse_args(argv)
    s = a.time_scale
    cfg = Config(students=a.students, window=a.window * s, think=a.think * s, api_latency=a.api_latency * s,
                 face_latency=a.face_latency * s, workers=a.workers, store=a.store, roster=a.roster,
                 batches=max(1, min(a.batches, a.students)), seed=a.seed, verdict_timeout=a.verdict_timeout,
                 profile=a.profile, profile_lines=a.profile_lines, quiet=a.quiet)
    return cfg, a


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--telegram" in argv:  # the send path against Telegram's limits: its own script and options
        import load_telegram

        return load_telegram.main([a for a in argv if a != "--telegram"])
    cfg, args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    res = asyncio.run(run(cfg))
    res["machine"] = machine()
    if "profile_text" in res:
        print(res["profile_text"])
    print_table(res)
    if args.json:
        text = json.dumps({k: v for k, v in res.items() if k != "profile_text"}, indent=2, default=str)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
