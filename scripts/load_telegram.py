#!/usr/bin/env python3
"""A class on Telegram (issue 13): N students through the real send path, against Telegram's limits.

    .venv/bin/python scripts/load_telegram.py                      # 1000 students in 90 s, one student bot
    .venv/bin/python scripts/load_telegram.py --bots 3             # three student bots
    .venv/bin/python scripts/load_class.py --telegram --bots 3     # the same, through load_class.py
    .venv/bin/python scripts/load_telegram.py --students 60 --window 6 --global-rate 5   # small (CI)

What is real: the engine, flows/teacher.yaml and flows/student.yaml with their hooks, the local
roster on a real database server, the verification queue with real frame extraction (OpenCV + dlib on
``note_obama_2.mp4``), and the whole transport send path: ``BotTransport.submit_update`` (input
noting and routing), ``TelegramSender`` (journal, coalescing, follow-ups), ``BotQueue`` with its
aiolimiter budget, per-chat pacing, FloodWait pauses and retries.

What is simulated: Telegram, by ``tests/fakes/fake_pyrogram.FakePyrogramClient`` per bot, which
raises the library's real ``FloodWait`` over 30 messages in any second per bot, or past a burst
of 3 at 1/s per chat, and takes ``--rtt`` per call; Rekognition, by a verifier that takes
``--face-latency``; the students, who arrive uniformly over ``--window`` s (batches mixed), *read* each prompt
(wait for the message) and answer after 0..2x``--think`` s. Time is virtual
(``tests/fakes/virtual_clock.VirtualClockLoop``): waits, rates and latencies are exact, CPU work
takes no virtual time, so the figures do not depend on the machine.

Prints one JSON line: messages_per_student, send_rate, last_verdict_s, floor_s (student-bot
messages / (30 x bots)), reply_wait_p50_s, reply_wait_p95_s, flood_waits, and more. Exit status
1 if a target or a correctness check fails.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import load_class  # noqa: E402  (roster generation and constants shared with the issue-7 load test)
from engine.types import Command, Contact, Location, Update, VideoNote  # noqa: E402
from integrations.presence.faces.base import MATCH, STORED, FaceResult, FaceVerifier  # noqa: E402
from tests.fakes.fake_pyrogram import FakeLimits, FakePyrogramClient  # noqa: E402
from tests.fakes.virtual_clock import VirtualClockLoop  # noqa: E402

BOT_RATE = 30.0  # Telegram's per-bot limit: the floor is computed against it
TARGET_MESSAGES = 5
TARGET_FLOOR_FACTOR = 1.15
TARGET_THREE_BOTS_S = 120.0
STUDENT_BOT_IDS = 700_000  # fake bot ids: 700001, 700002, ...
TEACHER_BOT_ID = 600_001


class VirtualRekognition(FaceVerifier):
    """Rekognition's CompareFaces taking ``latency`` seconds of virtual time, always matching."""

    name = "virtual-rekognition"

    def __init__(self, loop: VirtualClockLoop, latency: float) -> None:
        self.loop, self.latency = loop, latency

    def verify(self, frame_jpeg: bytes, batch: str, student_id: str) -> FaceResult:
        self.loop.thread_sleep(self.latency)
        return FaceResult(True, MATCH, similarity=99.5, threshold=80.0, backend=self.name)

    def store_reference(self, batch: str, student_id: str, photo_jpeg: bytes) -> FaceResult:
        return FaceResult(True, STORED, backend=self.name)

    def has_reference(self, batch: str, student_id: str) -> bool:
        return True


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualClockLoop)
    from integrations.app.simulation import faces_source

    note_bytes = (faces_source() / load_class.NOTE_FILE).read_bytes()
    workdir = Path(tempfile.mkdtemp(prefix="load-telegram-"))
    students = load_class.make_students(args.students, args.batches)
    csv_path = workdir / "roster.csv"
    load_class.write_roster_csv(csv_path, students)
    server = None  # without MONGODB_URI: a private SecantusDB server in memory, for this run only
    if not os.environ.get("MONGODB_URI"):
        from integrations.storage.embedded import EmbeddedServer

        server = EmbeddedServer(workdir / "db", memory=True).start()
    mongo_uri = os.environ.get("MONGODB_URI") or f"{server.base_uri}/load_tg_{os.getpid()}"
    os.environ.update({
        "APP_ENV": "test", "STORE": "memory", "MONGODB_URI": mongo_uri,
        "ROSTER_BACKEND": "local", "VERIFY_WORKERS": str(args.workers),
        "VERIFY_QUEUE_CAPACITY": str(max(1000, 2 * args.students)), "REPORT_BUFFER_SECONDS": "1",
        "FACES_DIR": str(workdir / "faces"), "FACE_VERIFIER": "local", "TIMEZONE": "UTC",
    })

    from engine.simulator import SimUser, Simulator
    from integrations.presence.media_reader import read_video_note, video_duration
    from integrations.app import build_app
    from integrations.storage.documents import AttendanceRecord
    from integrations.presence import video as video_mod
    from integrations.roster.csv_import import import_roster
    from integrations.settings import get_settings
    from integrations.telegram.bots import physical_names, student_bot_for_batches
    from integrations.telegram.sender import TelegramSender
    from integrations.telegram.transport import BotTransport

    get_settings.cache_clear()
    app = build_app(get_settings(), flows=[str(ROOT / "flows" / "teacher.yaml"), str(ROOT / "flows" / "student.yaml")],
                    verifier=VirtualRekognition(loop, args.face_latency))
    app.open_storage()
    import_roster(csv_path)
    video_mod.warm_up()
    note = VideoNote(note_bytes, video_duration(note_bytes), 384, len(note_bytes), "load-note")

    # ---------------------------------------------------------------- the Telegram side
    limits = FakeLimits(global_limit=int(BOT_RATE), chat_rate=1.0, chat_burst=3)
    student_bots = physical_names("student", args.bots)
    fakes = {"teacher": FakePyrogramClient("teacher", bot_id=TEACHER_BOT_ID, limits=limits, latency=args.rtt)}
    for i, name in enumerate(student_bots, 1):
        fakes[name] = FakePyrogramClient(name, bot_id=STUDENT_BOT_IDS + i, limits=FakeLimits(**vars(limits)),
                                         latency=args.rtt)
    flow_of = {"teacher": "teacher", **{name: "student" for name in student_bots}}
    sender = TelegramSender(fakes, bots=flow_of, global_rate=args.global_rate)
    for name in student_bots:
        sender.queues[name].all_waits = []
    transports = {name: BotTransport(name, fakes[name], app.engine.submit, video_max_bytes=8 << 20,  # type: ignore[arg-type]
                                     flow_bot=flow_of[name], on_input=sender.note_input) for name in fakes}
    app.add_sink(sender.deliver)
    sim = Simulator(app.engine, media_reader=read_video_note)  # only to turn the teacher's "/tap ..." lines into updates
    await app.start()
    await sender.start()

    # ---------------------------------------------------------------- the teacher opens the session
    teacher = SimUser("teacher", load_class.TEACHER_TG, "teacher", "Lata")
    tfake = fakes["teacher"]
    batches = load_class.batch_names(students)

    async def teacher_says(line: str, expect: Optional[str]) -> None:
        seen = tfake.wait_for(teacher.chat, expect) if expect else None
        update = sim.parse(teacher, line)
        assert update is not None
        if update.kind == "callback":  # the button's message, as Telegram numbered it
            hosting = [d for d in tfake.chats[teacher.chat] if d.markup is not None]
            update = dataclasses.replace(update, message_id=hosting[-1].message_id)
        await transports["teacher"].submit_update(update)
        if seen is not None:
            await asyncio.wait_for(seen, 120)
        else:
            assert await sender.queues["teacher"].flush(120)

    await teacher_says("/start", "share your phone number")
    await teacher_says(f"/contact {load_class.TEACHER_PHONE.replace(' ', '')}", "email address")
    await teacher_says(load_class.TEACHER_EMAIL, "password")
    await teacher_says(load_class.TEACHER_PASSWORD, "What would you like to do?")
    await teacher_says("/tap 📝 Take attendance", "Choose the batches")
    for batch in batches:
        await teacher_says(f"/tap {batch}", None)  # ticks the option by editing the message
    await teacher_says("/tap Done ✔", "Which subject?")
    await teacher_says(f"/tap {load_class.SUBJECT}", "How long should the code stay valid")
    await teacher_says("180", "How close must students be")
    await teacher_says("/tap 50", "share the classroom's location")
    await teacher_says(f"/location {load_class.CLASS_LAT} {load_class.CLASS_LON} 5", "Code: ")
    opened = next(t for t in reversed(tfake.texts(teacher.chat)) if "Code: " in t)
    code = opened.split("Code: ")[1][:6]
    teacher_messages = tfake.messages(teacher.chat)

    # ---------------------------------------------------------------- students
    sizes = Counter(s.batch for s in students)
    ids = {fakes[name].me.id: name for name in student_bots}
    bot_of_batch = {b: ids[i] for b, i in student_bot_for_batches(batches, list(ids), sizes=sizes).items()}
    rng = random.Random(args.seed)
    # Batches arrive mixed (load_class.py's students arrive batch after batch, which would put a
    # whole batch's burst on one bot).
    arrivals = [rng.uniform(0, args.window) for _ in students]
    thinks = [[rng.uniform(0, 2 * args.think) for _ in range(5)] for _ in students]
    verdict_at: dict[int, float] = {}
    failures: list[str] = []
    for name in student_bots:
        fakes[name].calls.clear()
    t0 = loop.time()
    wall0 = time.perf_counter()

    async def student(s: Any, arrival: float, pauses: list[float]) -> None:
        await asyncio.sleep(arrival)
        bot = bot_of_batch[s.batch]
        fake, transport, uid = fakes[bot], transports[bot], s.tg
        ids = iter(range(1, 1000))

        def upd(kind: str, payload: Any) -> Update:
            return Update("student", uid, uid, kind, payload, message_id=next(ids), first_name=s.name)  # type: ignore[arg-type]

        plan = [
            (upd("command", Command("start")), "share your phone number"),
            (upd("contact", Contact(s.phone.replace(" ", ""), uid, s.name)), "6-digit code"),
            (upd("text", code), "share your location"),
            (upd("location", Location(load_class.CLASS_LAT + 0.00004, load_class.CLASS_LON + 0.00002, 8.0)),
             "round video note"),
        ]
        for i, (update, needle) in enumerate(plan):
            if i:
                await asyncio.sleep(pauses[i])
            seen = fake.wait_for(uid, needle)
            await transport.submit_update(update)
            try:
                await asyncio.wait_for(seen, args.timeout)
            except asyncio.TimeoutError:
                failures.append(f"{s.student_id}: no {needle!r}; chat shows {fake.texts(uid)[-1:]!r}")
                return
        await asyncio.sleep(pauses[4])
        verdict = fake.wait_for(uid, "✅ Marked present")
        await transport.submit_update(upd("video_note", note))
        try:
            verdict_at[uid] = await asyncio.wait_for(verdict, args.timeout)
        except asyncio.TimeoutError:
            failures.append(f"{s.student_id}: no verdict; chat shows {fake.texts(uid)[-1:]!r}")

    async def progress() -> None:
        while True:
            await asyncio.sleep(15)
            stats = sender.stats()
            print(f"  [{loop.time() - t0:6.1f} s virtual, {time.perf_counter() - wall0:5.1f} s real] verdicts "
                  f"{len(verdict_at)}/{args.students}; queued "
                  + ", ".join(f"{b} {stats[b]['depth']}" for b in student_bots), file=sys.stderr, flush=True)

    ticker = None if args.quiet else asyncio.create_task(progress())
    await asyncio.gather(*(student(s, a, p) for s, a, p in zip(students, arrivals, thinks)))
    if ticker:
        ticker.cancel()
    assert await sender.flush(600)
    wall = time.perf_counter() - wall0

    # ---------------------------------------------------------------- figures
    chats = {s.tg: bot_of_batch[s.batch] for s in students}
    messages = sum(fakes[bot].messages(uid) for uid, bot in chats.items())
    edits = sum(fakes[bot].edits(uid) for uid, bot in chats.items())
    per_student = Counter(fakes[bot].messages(uid) for uid, bot in chats.items())
    calls = [t for name in student_bots for t, _, _ in fakes[name].calls]
    waits = [w for name in student_bots for w in (sender.queues[name].all_waits or [])]
    last_verdict = max(verdict_at.values()) - t0 if verdict_at else float("nan")
    floor = messages / (BOT_RATE * args.bots)
    records = AttendanceRecord.objects(status="present").count()
    flood_waits = sum(len(f.flood_waits) for f in fakes.values())
    result: dict[str, Any] = {
        "students": args.students, "window_s": args.window, "bots": args.bots, "global_rate": args.global_rate,
        "messages_per_student": round(messages / args.students, 3),
        "edits_per_student": round(edits / args.students, 3),
        "send_rate": round(len(calls) / (max(calls) - min(calls)), 2) if len(calls) > 1 else 0.0,
        "last_verdict_s": round(last_verdict, 2),
        "verdict_p50_s": round(pct([t - t0 for t in verdict_at.values()], 50), 2),
        "floor_s": round(floor, 2),
        "last_verdict_over_floor": round(last_verdict / floor, 3) if floor else None,
        "budget_floor_s": round(messages / (args.global_rate * args.bots), 2),
        "reply_wait_p50_s": round(pct(waits, 50), 3),
        "reply_wait_p95_s": round(pct(waits, 95), 3),
        "flood_waits": flood_waits,
        "max_messages_in_1s_per_bot": max(fakes[name].max_in_window for name in student_bots),
        "messages_per_bot": {name: len(fakes[name].calls) for name in student_bots},
        "students_per_bot": dict(Counter(chats.values())),
        "messages_per_student_histogram": dict(sorted(per_student.items())),
        "teacher_messages": teacher_messages,
        "verdicts": len(verdict_at), "records_present": records, "failures": failures[:10],
        "failure_count": len(failures), "retries": sum(q.retries for q in sender.queues.values()),
        "failed_sends": sum(q.failed for q in sender.queues.values()),
        "rtt_s": args.rtt, "face_latency_s": args.face_latency, "think_s": args.think, "batches": args.batches,
        "real_seconds": round(wall, 1),
    }
    checks = {
        "every student marked once": len(verdict_at) == args.students and records == args.students and not failures,
        f"messages_per_student <= {TARGET_MESSAGES}": result["messages_per_student"] <= TARGET_MESSAGES,
        "no FloodWait": flood_waits == 0,
        "no failed send": result["failed_sends"] == 0,
    }
    if args.global_rate <= BOT_RATE:
        budget_floor = messages / (args.global_rate * args.bots)
        if args.bots == 1:
            checks[f"last_verdict_s <= {TARGET_FLOOR_FACTOR} x floor"] = last_verdict <= TARGET_FLOOR_FACTOR * budget_floor
        if args.bots == 3 and args.students == 1000:
            checks[f"last_verdict_s <= {TARGET_THREE_BOTS_S:g}"] = last_verdict <= TARGET_THREE_BOTS_S
    result["checks"] = checks
    result["ok"] = all(checks.values())
    await sender.stop()
    await app.stop()
    if server is not None:
        server.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--students", type=int, default=1000)
    p.add_argument("--window", type=float, default=90.0, help="arrival window, virtual seconds (default 90)")
    p.add_argument("--bots", type=int, default=1, help="student bots (default 1)")
    p.add_argument("--think", type=float, default=2.0, help="mean seconds a student takes to answer (0..2x)")
    p.add_argument("--face-latency", type=float, default=1.0, help="simulated Rekognition call, s (default 1.0)")
    p.add_argument("--rtt", type=float, default=0.1, help="round trip of one Telegram call, s (default 0.1)")
    p.add_argument("--global-rate", type=float, default=BOT_RATE,
                   help="SEND_RATE_GLOBAL (default 30); a lower rate makes a small class saturate its bot")
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--workers", type=int, default=32, help="verification workers (default 32)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--timeout", type=float, default=1800.0, help="virtual seconds a student waits for a reply")
    p.add_argument("--json", metavar="FILE", help="also write the result to FILE")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)
    args.batches = max(1, min(args.batches, args.students))
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        result = runner.run(run(args))
    line = json.dumps(result, ensure_ascii=False)
    print(line)
    if args.json:
        Path(args.json).write_text(line + "\n", encoding="utf-8")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
