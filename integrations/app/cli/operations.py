"""Operators' commands: health, stats, roster import, export, outbox, keygen.

Each returns an exit status and prints plain text (never secrets, codes or phone numbers).
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import getpass
import json
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Optional, TextIO

from integrations.app.assembly import make_roster_backend
from integrations.app.cli.common import settings_or_exit
from integrations.app.stats import STATS_FILE, db_counts
from integrations.attendance.outbox_worker import OutboxWorker, PassResult
from integrations.foundation import crypto
from integrations.foundation.blocking import run_blocking
from integrations.foundation.errors import RosterError
from integrations.foundation.timefmt import as_utc
from integrations.presence.faces import make_verifier
from integrations.roster import records
from integrations.roster.csv_import import CsvImportError, import_roster
from integrations.roster.service import RosterService
from integrations.settings import Settings, SettingsError
from integrations.storage import outbox
from integrations.storage.connection import Database, open_database
from integrations.storage.documents import Session, utcnow
from integrations.storage.embedded import EmbeddedDatabaseError
from integrations.storage.indexes import ensure_indexes
from integrations.telegram import (
    check_heartbeat,
    health_command,
    heartbeat_path,
    require_telegram_settings,
)


@contextlib.contextmanager
def database(settings: Settings, connect: bool = True) -> Iterator[Optional[Database]]:
    """The app's database for one command (MONGODB_URI, or the embedded server on DATA_DIR)."""
    if not connect:
        yield None
        return
    try:
        db = open_database(settings.mongodb_uri, settings.data_dir)
    except EmbeddedDatabaseError as exc:
        print(f"cannot open the database: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    try:
        ensure_indexes()
        yield db
    finally:
        db.close()


# ------------------------------------------------------------------------------------------ keygen
def keygen() -> int:
    print(crypto.generate_key())
    return 0


# ---------------------------------------------------------------------------------------- roster
def roster_import(settings: Settings, path: str, encoding: Optional[str] = None) -> int:
    with database(settings) as db:
        assert db is not None
        print(f"database: {db.description}")
        return _import(path, encoding)


def _import(path: str, encoding: Optional[str] = None) -> int:
    try:
        result = import_roster(path, encoding)
    except CsvImportError as exc:
        print(exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
        return 1
    print(f"imported {path}: {result}")
    return 0


def hash_password() -> int:
    """Read a password (not echoed) and print its scrypt hash for the roster CSV."""
    print(crypto.hash_password(getpass.getpass("Password: ")))
    return 0


# ------------------------------------------------------------------------------------------ export
def export(settings: Settings, session_id: str, fmt: str, output: Optional[str], *, connect: bool = True) -> int:
    """A session's attendance as CSV or JSON: a backup anyone can open."""
    with database(settings, connect):
        return _export(settings, session_id, fmt, output)


def _export(settings: Settings, session_id: str, fmt: str, output: Optional[str]) -> int:
    backend = make_roster_backend(settings)
    try:
        report = backend.report(session_id)
    except RosterError as exc:
        print(f"cannot export {session_id}: {exc.message_key}", file=sys.stderr)
        return 1
    finally:
        backend.close()
    if fmt == "csv":
        data = records.report_csv(report)
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
def stats(settings: Settings) -> int:
    with database(settings) as db:
        assert db is not None
        print(f"database: {db.description}")
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
def _secret_key_check(settings: Settings) -> tuple[str, bool, str]:
    """SECRET_KEY is a usable Fernet key (each one, when several are given to rotate); never shown."""
    key = settings.secret_key.get_secret_value() if settings.secret_key else ""
    if not key.strip():
        if settings.app_env == "production":
            return "secret key", False, "SECRET_KEY is required when APP_ENV=production (python run.py keygen)"
        return "secret key", True, "unset: an ephemeral key (stored secrets do not survive a restart)"
    try:
        crypto.make_secret_box(key, settings.app_env)
    except crypto.SecretKeyError:
        return "secret key", False, "SECRET_KEY is not a valid Fernet key (32 url-safe base64 bytes; python run.py keygen)"
    count = len([k for k in key.split(",") if k.strip()])
    return "secret key", True, f"valid ({count} key{'s' if count > 1 else ''})"


def health(settings: Settings) -> int:
    """Store reachable, Telegram settings well-formed, face verifier ready, scheduler, heartbeat."""
    checks: list[tuple[str, bool, str]] = []
    try:
        with database(settings) as db:
            assert db is not None
            Session.objects.limit(1).count()
            checks.append(("store", True, f"{db.description}, reachable"))
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - report any failure as unhealthy
        checks.append(("store", False, type(exc).__name__))
    checks.append(_secret_key_check(settings))
    missing = settings.missing_for_telegram()
    if missing:
        checks.append(("telegram settings", False, "missing: " + ", ".join(missing)))
    else:
        try:
            require_telegram_settings(settings)
            checks.append(("telegram settings", True, "well-formed"))
        except SettingsError as exc:
            checks.append(("telegram settings", False, str(exc).splitlines()[0]))
    try:
        verifier = make_verifier(settings)
        checks.append(("face verifier", True, getattr(verifier, "name", settings.face_verifier)))
        verifier.close()
    except Exception as exc:  # noqa: BLE001
        checks.append(("face verifier", False, f"{type(exc).__name__}: {exc}"[:200]))
    alive, reason = check_heartbeat(heartbeat_path(settings.telegram_session_dir))
    checks.append(("bots (heartbeat)", alive, reason))
    snapshot = settings.data_dir / STATS_FILE
    if snapshot.exists():
        jobs = json.loads(snapshot.read_text()).get("report_jobs")
        checks.append(("scheduler", True, f"{jobs} report job(s) pending"))
    for name, ok, detail in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    return 0 if all(ok for _, ok, _ in checks) else 1


# ------------------------------------------------------------------------------------------ outbox
def _age(moment: Optional[dt.datetime]) -> str:
    if moment is None:
        return "-"
    seconds = int((utcnow() - as_utc(moment)).total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def print_entries(out: TextIO = sys.stdout) -> int:
    """Print pending and failed entries (ids, kinds, errors: never frames or secrets)."""
    entries = outbox.open_entries()
    pending = [e for e in entries if e.status == outbox.PENDING]
    failed = [e for e in entries if e.status == outbox.FAILED]
    print(f"outbox: {len(pending)} pending "
          f"({sum(e.kind == outbox.ATTENDANCE for e in pending)} attendance, "
          f"{sum(e.kind == outbox.VERIFICATION for e in pending)} verification), {len(failed)} failed, "
          f"{outbox.notices_count()} message(s) to students waiting for the bot", file=out)
    if entries:
        print(f"{'seq':>5}  {'kind':<12} {'status':<8} {'session':<24} {'student':<16} {'tries':>5}  "
              f"{'age':>5}  last error", file=out)
    for e in entries:
        print(f"{e.seq:>5}  {e.kind:<12} {e.status:<8} {e.session_id:<24} {e.student_id:<16} "
              f"{e.attempts:>5}  {_age(e.created_at):>5}  {e.last_error or '-'}", file=out)
    return len(pending)


async def _retry(settings: Settings) -> PassResult:
    crypto.init_secret_box(settings)
    roster = RosterService(make_roster_backend(settings))
    verifier = None
    if await run_blocking(outbox.pending_count, outbox.VERIFICATION):
        verifier = make_verifier(settings)
    try:
        worker = OutboxWorker(roster, verifier, None, timezone=settings.timezone)
        return await worker.run_once()
    finally:
        roster.close()
        if verifier is not None:
            verifier.close()


def outbox_command(settings: Settings, retry: bool = False, *, out: TextIO = sys.stdout, connect: bool = True) -> int:
    """List pending/failed entries; ``retry`` runs one delivery pass.

    Exit status: 0, or 1 when --retry left entries pending because a service is still down.
    Messages to students are not sent from here (no bot): the running bot's worker posts them.
    """
    with database(settings, connect):
        print_entries(out)
        if not retry:
            return 0
        result = asyncio.run(_retry(settings))
        print(f"retry: {result.summary()}", file=out)
        print_entries(out)
        return 1 if result.remaining and not result.ok else 0


# -------------------------------------------------------------------------------------- the parser
def register(sub: Any) -> None:
    p = sub.add_parser("health", help="store, settings, face verifier, scheduler and bots; exit 1 if unhealthy")
    p.add_argument("--live", action="store_true", help="only the running bots' heartbeat (container healthcheck)")
    p.set_defaults(func=lambda a: health_command(settings_or_exit().telegram_session_dir) if a.live
                   else health(settings_or_exit()))

    sub.add_parser("stats", help="database counts and the running app's queue figures").set_defaults(
        func=lambda a: stats(settings_or_exit()))

    p = sub.add_parser("roster", help="manage the local roster")
    roster = p.add_subparsers(dest="roster_command", required=True)
    p = roster.add_parser("import", help="import teachers and students from a CSV file (docs/roster-csv.md)")
    p.add_argument("file")
    p.add_argument("--encoding", help="the file's text encoding when it is not UTF-8, e.g. cp1252 or latin-1")
    p.set_defaults(func=lambda a: roster_import(settings_or_exit(), a.file, a.encoding))
    roster.add_parser("hash-password", help="read a password and print its scrypt hash for the CSV").set_defaults(
        func=lambda a: hash_password())

    p = sub.add_parser("export", help="a session's attendance as CSV or JSON (backup)")
    p.add_argument("session_id")
    p.add_argument("--format", choices=["csv", "json"], default="csv")
    p.add_argument("--output", "-o")
    p.set_defaults(func=lambda a: export(settings_or_exit(), a.session_id, a.format, a.output))

    p = sub.add_parser("outbox", help="attendance and face checks waiting out an outage; --retry delivers now")
    p.add_argument("--retry", action="store_true")
    p.set_defaults(func=lambda a: outbox_command(settings_or_exit(), a.retry))

    sub.add_parser("keygen", help="print a new SECRET_KEY").set_defaults(func=lambda a: keygen())

