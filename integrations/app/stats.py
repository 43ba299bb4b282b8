"""The running app's in-memory figures, written to a file for `run.py stats` in another process."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

from integrations.app.assembly import App
from integrations.storage.conversations import ConversationDoc
from integrations.storage.documents import AttendanceRecord, Session, Student, Teacher

STATS_FILE = "stats.json"


def snapshot(app: App, telegram: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    return {
        "ts": time.time(),
        "engine": dict(app.engine.stats),
        "verify_queue": app.verify_queue.stats(),
        "report_jobs": len(app.reports.pending()),
        "telegram": telegram or {},  # per bot: connected, send queue depth, send rate, waits
    }


def write_stats(path: Path, app: App, telegram: Optional[dict[str, Any]] = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(snapshot(app, telegram), default=str, indent=2))
    tmp.replace(path)


def db_counts() -> dict[str, int]:
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
