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
from integrations.attendance import exports
from integrations.attendance.audit import format_events
from integrations.attendance.outbox_worker import OutboxWorker, PassResult
from integrations.foundation import crypto
from integrations.foundation.blocking import run_blocking
from integrations.foundation.errors import RosterError
from integrations.foundation.timefmt import as_utc
from integrations.presence.faces import make_verifier
from integrations.presence.inspect import inspect_note
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
    """A session's attendance as CSV, JSON or XLSX: a backup anyone can open."""
    with database(settings, connect):
        return _export(settings, session_id, fmt, output)


def _write(data: bytes, output: Optional[str], what: str) -> None:
    if output:
        Path(output).write_bytes(data)
        print(f"wrote {output} ({what})")
    else:
        sys.stdout.buffer.write(data)


def _day(text: Optional[str], flag: str) -> Optional[dt.date]:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"{flag} must be a date like 2025-01-31, not {text!r}") from None


def export_history(settings: Settings, batch: str, start: Optional[str], end: Optional[str], fmt: str,
                   output: Optional[str], *, connect: bool = True) -> int:
    """A batch's attendance history: sessions x students, with each student's percentage."""
    first, last = _day(start, "--from"), _day(end, "--to")
    if first and last and first > last:
        print("--from is after --to", file=sys.stderr)
        return 2
    with database(settings, connect):
        history = exports.batch_history(batch, first, last, settings.timezone)
    if not history.sessions:
        print(f"no sessions of {batch} between {first or 'the first'} and {last or 'the last'}", file=sys.stderr)
        return 1
    data = exports.history_xlsx(history) if fmt == "xlsx" else exports.history_csv(history)
    _write(data, output, f"{len(history.sessions)} sessions, {len(history.students)} students")
    return 0


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
    elif fmt == "xlsx":
        data = exports.report_xlsx(report, settings.timezone)
    else:
        rows = [{"student_id": r.student_id, "name": r.name, "batch": r.batch, "status": r.shown_status,
                 "method": r.method, "time": r.time.isoformat() if r.time else None,
                 "similarity": r.similarity, "face_distance": r.face_distance, "distance_m": r.distance_m,
                 "liveness": r.liveness or None, "liveness_score": r.liveness_score,
                 "note": r.note or None, "answers": dict(r.answers)} for r in report.rows]
        doc = {"session_id": report.session_id, "subject": report.subject, "batches": list(report.batches),
               "teacher": report.teacher_name,
               "opened_at": report.opened_at.isoformat() if report.opened_at else None,
               "expires_at": report.expires_at.isoformat() if report.expires_at else None,
               "complete": report.complete, "rows": rows}
        data = (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    _write(data, output, f"{len(report.rows)} students")
    return 0


# ------------------------------------------------------------------------------------------- audit
def audit(settings: Settings, session_id: str, *, out: TextIO = sys.stdout, connect: bool = True) -> int:
    """Print a session's audit events, oldest first."""
    with database(settings, connect):
        events = records.audit_events(session_id)
        session = records.find_session(session_id)
    if session is None and not events:
        print(f"no session {session_id} and no audit events for it", file=sys.stderr)
        return 1
    if session is not None:
        print(f"session {session_id}: {session.subject} ({', '.join(session.batches)}), "
              f"{len(session.students)} students; {len(events)} event(s); times in {settings.timezone}", file=out)
    for line in format_events(events, settings.timezone):
        print(line, file=out)
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
    for bot, figures in (snapshot.get("telegram") or {}).items():
        queue = figures.get("queue") or figures
        shown = {k: queue[k] for k in ("depth", "send_rate", "sent", "failed", "flood_waits") if k in queue}
        print(f"  telegram.{bot}: {shown}")
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


# ------------------------------------------------------------------------------------ verify-video
def verify_video(settings: Settings, note_path: str, reference_path: str, liveness: Optional[str]) -> int:
    """One JSON object: face, match against the photo, liveness, timings (docs/presence.md)."""
    try:
        note, photo = Path(note_path).read_bytes(), Path(reference_path).read_bytes()
    except OSError as exc:
        print(f"cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    report = inspect_note(note, photo, liveness_mode=liveness or settings.liveness,
                          tolerance=settings.local_face_tolerance, max_seconds=settings.video_max_seconds)
    print(json.dumps(report))
    return 0


# -------------------------------------------------------------------------------------- the parser
def _export_command(args: Any) -> int:
    if bool(args.batch) == bool(args.session_id):
        print("name a SESSION_ID, or --batch BATCH (with --from/--to) for a batch's history", file=sys.stderr)
        return 2
    if args.batch:
        if args.format == "json":
            print("a batch's history is csv or xlsx", file=sys.stderr)
            return 2
        return export_history(settings_or_exit(), args.batch, args.start, args.end, args.format, args.output)
    return export(settings_or_exit(), args.session_id, args.format, args.output)


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

    p = sub.add_parser("export", help="a session's attendance (CSV, JSON, XLSX), or a batch's history (--batch)")
    p.add_argument("session_id", nargs="?")
    p.add_argument("--format", choices=["csv", "json", "xlsx"], default="csv")
    p.add_argument("--output", "-o")
    p.add_argument("--batch", help="a batch's history: sessions x students with each student's percentage")
    p.add_argument("--from", dest="start", metavar="YYYY-MM-DD", help="with --batch: first day (inclusive)")
    p.add_argument("--to", dest="end", metavar="YYYY-MM-DD", help="with --batch: last day (inclusive)")
    p.set_defaults(func=_export_command)

    p = sub.add_parser("audit", help="a session's audit events: codes, locations, face checks, marks, report")
    p.add_argument("session_id")
    p.set_defaults(func=lambda a: audit(settings_or_exit(), a.session_id))

    p = sub.add_parser("outbox", help="attendance and face checks waiting out an outage; --retry delivers now")
    p.add_argument("--retry", action="store_true")
    p.set_defaults(func=lambda a: outbox_command(settings_or_exit(), a.retry))

    p = sub.add_parser("verify-video", help="check one video note against a photo: face, match, liveness (JSON)")
    p.add_argument("note", help="the video note (MP4)")
    p.add_argument("--reference", required=True, help="the reference photo (JPEG)")
    p.add_argument("--liveness", choices=["off", "flag", "enforce"], help="default: the LIVENESS setting")
    p.set_defaults(func=lambda a: verify_video(settings_or_exit(), a.note, a.reference, a.liveness))

    sub.add_parser("keygen", help="print a new SECRET_KEY").set_defaults(func=lambda a: keygen())

