"""Operator commands behind run.py: health, stats, roster import, export, keygen.

Each returns an exit status and prints plain text (never secrets).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Optional, TextIO

from .settings import Settings

STATS_FILE = "stats.json"


def _db(settings: Settings) -> None:
    from .db import connect_db, ensure_indexes

    connect_db(settings.mongodb_uri)
    ensure_indexes()


def in_memory_warning(settings: Settings, out: TextIO = sys.stderr) -> None:
    if settings.mongodb_uri.startswith("mongomock://"):
        print("note: MONGODB_URI is in-memory (mongomock); this command sees only this process's data. "
              "Point MONGODB_URI at a MongoDB server (mongodb://host:27017/attendance) to share it.", file=out)


# ------------------------------------------------------------------------------------------ keygen
def keygen() -> int:
    from .crypto import generate_key

    print(generate_key())
    return 0


# ----------------------------------------------------------------------------------- roster import
def roster_import(settings: Settings, path: str) -> int:
    from .roster.csv_import import CsvImportError, import_roster

    in_memory_warning(settings)
    _db(settings)
    try:
        result = import_roster(path)
    except CsvImportError as exc:
        print(exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
        return 1
    print(f"imported {path}: {result}")
    return 0


# ------------------------------------------------------------------------------------------ export
def export(settings: Settings, session_id: str, fmt: str, output: Optional[str], *, connect: bool = True) -> int:
    """A session's attendance as CSV or JSON: a backup anyone can open."""
    from .api.errors import RosterError
    from .roster import make_roster
    from .roster.service import RosterService

    if connect:
        in_memory_warning(settings)
        _db(settings)
    backend = make_roster(settings)
    try:
        report = backend.report(session_id)
    except RosterError as exc:
        print(f"cannot export {session_id}: {exc.message_key}", file=sys.stderr)
        return 1
    finally:
        backend.close()
    if fmt == "csv":
        data = RosterService.report_csv(report)
    else:
        rows = [{"student_id": r.student_id, "name": r.name, "batch": r.batch, "status": r.status,
                 "method": r.method, "time": r.time.isoformat() if r.time else None,
                 "similarity": r.similarity, "distance_m": r.distance_m} for r in report.rows]
        doc = {"session_id": report.session_id, "subject": report.subject, "batches": list(report.batches),
               "teacher": report.teacher_name,
               "opened_at": report.opened_at.isoformat() if report.opened_at else None,
               "expires_at": report.expires_at.isoformat() if report.expires_at else None,
               "complete": report.complete, "rows": rows}
        data = (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    if output:
        Path(output).write_bytes(data)
        print(f"wrote {output} ({len(report.rows)} students)")
    else:
        sys.stdout.buffer.write(data)
    return 0


# ------------------------------------------------------------------------------------------- stats
def write_stats(path: Path, services: Any, engine: Any) -> None:
    """The running app's in-memory figures, for `run.py stats` in another process."""
    snapshot = {
        "ts": time.time(),
        "engine": dict(getattr(engine, "stats", {})),
        "verify_queue": services.verify_queue.stats() if services.verify_queue else None,
        "report_jobs": len(services.reports.pending()) if services.reports else 0,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(snapshot, default=str, indent=2))
    tmp.replace(path)


def db_counts() -> dict[str, int]:
    from .models import AttendanceRecord, Session, Student, Teacher
    from .mongo_conversations import ConversationDoc

    return {
        "teachers": Teacher.objects.count(),
        "students": Student.objects.count(),
        "sessions_open": Session.objects(status="open").count(),
        "sessions_total": Session.objects.count(),
        "reports_pending": Session.objects(report_sent_at=None).count(),
        "attendance_present": AttendanceRecord.objects(status="present").count(),
        "attendance_unsynced": AttendanceRecord.objects(synced=False, status="present").count(),
        "conversations_stored": ConversationDoc.objects.count(),
    }


def stats(settings: Settings) -> int:
    in_memory_warning(settings)
    _db(settings)
    print("database:")
    for key, value in db_counts().items():
        print(f"  {key}: {value}")
    path = settings.data_dir / STATS_FILE
    try:
        snapshot = json.loads(path.read_text())
    except (OSError, ValueError):
        print(f"running app: no snapshot at {path} (is `python run.py` running?)")
        return 0
    age = time.time() - float(snapshot.get("ts", 0))
    print(f"running app (snapshot {age:.0f}s old):")
    queue = snapshot.get("verify_queue") or {}
    for key in ("depth", "peak_depth", "in_flight", "submitted", "rejected", "completed", "wait_p95_s",
                "total_p95_s", "outcomes"):
        if key in queue:
            print(f"  verify_queue.{key}: {queue[key]}")
    for key, value in (snapshot.get("engine") or {}).items():
        print(f"  engine.{key}: {value}")
    print(f"  report_jobs: {snapshot.get('report_jobs')}")
    return 0


# ------------------------------------------------------------------------------------------ health
def health(settings: Settings) -> int:
    """Store reachable, Telegram settings well-formed, face verifier ready, scheduler, heartbeat."""
    checks: list[tuple[str, bool, str]] = []
    try:
        _db(settings)
        from .models import Session

        Session.objects.limit(1).count()
        checks.append(("store", True, "mongomock (in-memory)" if settings.mongodb_uri.startswith("mongomock://")
                       else "reachable"))
    except Exception as exc:  # noqa: BLE001 - report any failure as unhealthy
        checks.append(("store", False, type(exc).__name__))
    missing = settings.missing_for_telegram()
    if missing:
        checks.append(("telegram settings", False, "missing: " + ", ".join(missing)))
    else:
        from .settings import SettingsError
        from .telegram import require_telegram_settings

        try:
            require_telegram_settings(settings)
            checks.append(("telegram settings", True, "well-formed"))
        except SettingsError as exc:
            checks.append(("telegram settings", False, str(exc).splitlines()[0]))
    try:
        from .presence.faces import make_verifier

        verifier = make_verifier(settings)
        checks.append(("face verifier", True, getattr(verifier, "name", settings.face_verifier)))
        verifier.close()
    except Exception as exc:  # noqa: BLE001
        checks.append(("face verifier", False, f"{type(exc).__name__}: {exc}"[:200]))
    from .telegram.health import check_heartbeat, heartbeat_path

    alive, reason = check_heartbeat(heartbeat_path(settings.telegram_session_dir))
    checks.append(("bots (heartbeat)", alive, reason))
    snapshot = settings.data_dir / STATS_FILE
    if snapshot.exists():
        jobs = json.loads(snapshot.read_text()).get("report_jobs")
        checks.append(("scheduler", True, f"{jobs} report job(s) pending"))
    for name, ok, detail in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    return 0 if all(ok for _, ok, _ in checks) else 1

