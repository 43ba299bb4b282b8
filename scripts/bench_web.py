#!/usr/bin/env python
"""Benchmark the web panel's pages (run on demand, not a test): p50/p95 render time per page.

Data: a roster of 3,000 students in 50 batches, 10 teachers, 100 closed sessions of history
(each over 5 batches, 300 students, ~80 % present: 30,000 snapshot entries and ~24,000 records)
and one open session of 300. Pages are requested in-process through the ASGI app (Starlette's
TestClient), so the figure is the server's time: database reads, templates, charts.
Target: every page <= 200 ms at p95 (docs/performance.md, "Web panel").

    .venv/bin/python scripts/bench_web.py [--requests 30] [--json]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bson import ObjectId  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from integrations.app.panel import web_context  # noqa: E402
from integrations.foundation.crypto import hash_password  # noqa: E402
from integrations.presence.faces.local import LocalFaceVerifier  # noqa: E402
from integrations.roster import records  # noqa: E402
from integrations.roster.local import LocalRoster  # noqa: E402
from integrations.roster.service import RosterService  # noqa: E402
from integrations.settings import load_settings  # noqa: E402
from integrations.storage.connection import connect_db  # noqa: E402
from integrations.storage.documents import AttendanceRecord, Batch, Session, Student, Subject, Teacher  # noqa: E402
from integrations.storage.embedded import EmbeddedServer  # noqa: E402
from integrations.storage.indexes import ensure_indexes  # noqa: E402
from integrations.web.app import create_app  # noqa: E402

STUDENTS, BATCHES, TEACHERS, SESSIONS, BATCHES_PER_SESSION = 3000, 50, 10, 100, 5
PASSWORD = "bench-password-1"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def seed() -> tuple[str, str]:
    """Fill the database; returns (an open session's id, the busiest batch)."""
    rng = random.Random(7)
    batches = [f"B{i:02d}" for i in range(BATCHES)]
    Batch._get_collection().insert_many([{"code": b, "name": b} for b in batches])
    Subject._get_collection().insert_many([{"code": "Python", "name": "Python"}])
    per = STUDENTS // BATCHES
    students = [{"student_id": f"S{i:05d}", "name": f"Student {i}", "phone": f"9190000{i:05d}",
                 "phone_tail": f"90000{i:05d}", "batch": batches[i // per]} for i in range(STUDENTS)]
    Student._get_collection().insert_many(students)
    digest = hash_password(PASSWORD)
    teachers = []
    for t in range(TEACHERS):
        mine = batches[t * BATCHES_PER_SESSION:(t + 1) * BATCHES_PER_SESSION]
        teachers.append({"_id": ObjectId(), "email": f"t{t}@example.edu", "name": f"Teacher {t}",
                         "password_hash": digest, "telegram_id": 9000 + t, "active": True,
                         "assignments": [{"batch": b, "subject": "Python"} for b in mine]})
    Teacher._get_collection().insert_many(teachers)
    by_batch: dict[str, list[dict]] = {}
    for s in students:
        by_batch.setdefault(s["batch"], []).append(s)
    now = dt.datetime.now(dt.timezone.utc)
    teacher = teachers[0]
    mine = [a["batch"] for a in teacher["assignments"]]
    roster = [{"student_id": s["student_id"], "name": s["name"], "batch": s["batch"], "phone": s["phone"],
               "phone_tail": s["phone_tail"]} for b in mine for s in by_batch[b]]
    sessions, recs = [], []
    for n in range(SESSIONS + 1):
        opened = now - dt.timedelta(days=SESSIONS - n, hours=1)
        sid = ObjectId()
        last = n == SESSIONS
        sessions.append({"_id": sid, "otp": f"{n:06d}", "teacher": teacher["_id"], "batches": mine,
                         "subject": "Python", "latitude": 17.0, "longitude": 78.0, "radius_m": 50.0,
                         "opened_at": now if last else opened,
                         "expires_at": now + dt.timedelta(minutes=30) if last else opened + dt.timedelta(minutes=5),
                         "status": "open" if last else "closed", "students": roster, "failed_otp": {},
                         "face_failures": {}, "locked_out": [], "failed_otp_total": 0})
        for s in roster:
            if rng.random() < 0.8:
                recs.append({"session": sid, "student_id": s["student_id"], "status": "present", "method": "face",
                             "similarity": 95.0, "distance_m": 10.0, "time": opened, "updated_at": opened,
                             "synced": True, "rev": 1})
    Session._get_collection().insert_many(sessions)
    AttendanceRecord._get_collection().insert_many(recs)
    return str(sessions[-1]["_id"]), mine[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    server = EmbeddedServer(Path(tempfile.mkdtemp(prefix="bench-web-")), memory=True).start()
    try:
        connect_db(server.uri.rsplit("/", 1)[0] + "/bench_web")
        ensure_indexes()
        started = time.perf_counter()
        open_id, batch = seed()
        records.create_admin("admin@example.edu", hash_password(PASSWORD))
        seeded = time.perf_counter() - started
        print(f"seeded in {seeded:.1f} s", file=sys.stderr, flush=True)
        settings = load_settings(app_env="test", faces_dir=Path(tempfile.mkdtemp()), flows_dir=ROOT / "flows")
        roster = RosterService(LocalRoster())
        app = create_app(web_context(settings, roster, LocalFaceVerifier(settings.faces_dir)))
        since = (dt.date.today() - dt.timedelta(days=SESSIONS + 5)).isoformat()
        pages = {
            "dashboard": "/", "students (page 1)": "/students", "students search": "/students?q=Student%2012",
            "student": "/students/S00042", "sessions": "/sessions", "session live page": f"/sessions/{open_id}",
            "session live JSON": f"/sessions/{open_id}/live", "session audit": f"/sessions/{open_id}/audit",
            "batch history (100 sessions) + chart": f"/history/batch/{batch}?from={since}",
            "student history + chart": f"/history/student/S00001?from={since}",
            "history CSV export": f"/history/batch/{batch}/export.csv?from={since}",
            "history XLSX export": f"/history/batch/{batch}/export.xlsx?from={since}",
            "session XLSX report": f"/sessions/{open_id}/report.xlsx", "teachers": "/teachers",
            "flows (cached)": "/flows",
        }
        results = {}
        for who, email in (("admin", "admin@example.edu"), ("teacher", "t0@example.edu")):
            with TestClient(app) as client:
                page = client.get("/login").text
                csrf = page.split('name="csrf" value="')[1].split('"')[0]
                client.post("/login", data={"email": email, "password": PASSWORD, "csrf": csrf})
                for name, url in pages.items():
                    if who == "teacher" and name == "teachers":
                        continue
                    response = client.get(url)
                    assert response.status_code == 200, (name, response.status_code)
                    times = []
                    for _ in range(args.requests):
                        t0 = time.perf_counter()
                        response = client.get(url)
                        times.append((time.perf_counter() - t0) * 1000)
                        assert response.status_code == 200
                    results[f"{who}: {name}"] = {"p50_ms": round(statistics.median(times), 1),
                                                 "p95_ms": round(pct(times, 0.95), 1), "bytes": len(response.content)}
                    if not args.json:
                        print(f"  {who}: {name}: p95 {results[f'{who}: {name}']['p95_ms']} ms", file=sys.stderr,
                              flush=True)
        roster.close()
    finally:
        server.stop()
    worst = max(r["p95_ms"] for r in results.values())
    summary = {"students": STUDENTS, "sessions": SESSIONS + 1, "snapshot_entries": (SESSIONS + 1) * 300,
               "seed_s": round(seeded, 1), "requests_per_page": args.requests, "load_avg": os.getloadavg()[0],
               "worst_p95_ms": worst, "target_met": worst <= 200.0, "pages": results}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{STUDENTS} students, {SESSIONS + 1} sessions of 300; seeded in {seeded:.1f} s; "
              f"load average {os.getloadavg()[0]:.2f}")
        print("| page | p50 ms | p95 ms | bytes |\n|---|---:|---:|---:|")
        for name, r in results.items():
            print(f"| {name} | {r['p50_ms']} | {r['p95_ms']} | {r['bytes']:,} |")
        print(f"worst p95: {worst} ms ({'met' if worst <= 200 else 'MISSED'}: target 200 ms)")
    return 0 if worst <= 200.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
