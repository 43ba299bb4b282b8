"""End-of-session reports: scheduled at expiry + buffer, sent exactly once.

The schedule lives in MongoDB (each session's `expires_at` and `report_sent_at`), not only in
the scheduler's memory: at start-up :meth:`ReportScheduler.rearm` schedules every session whose
report was not sent yet, so a restart never loses one. `Session.claim_report` is one atomic
update that succeeds for a single caller, so two processes (or a re-armed job racing an old one)
never both send it. The report goes to the teacher's chat as the `session_report` event; the
wording lives in flows/teacher.yaml.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any, Callable, Optional

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from integrations.attendance.notify import Notifier
from integrations.foundation.blocking import run_blocking
from integrations.foundation.names import (
    PRESENT,
    REPORT_CORRECTED_EVENT,
    REPORT_CSV_KEY,
    REPORT_EVENT,
    TEACHER_BOT,
)
from integrations.foundation.timefmt import as_utc, clock, day
from integrations.roster import records
from integrations.roster.base import Report
from integrations.roster.service import RosterService
from integrations.storage import outbox
from integrations.storage.documents import AttendanceRecord, Session, utcnow

log = logging.getLogger(__name__)

RETRY_SECONDS = 60  # a report that failed (e.g. the roster API was down) is tried again after this
CHECKS_WAIT_SECONDS = 60.0  # a report waits at most this long for the session's face checks in flight
CORRECTION_DELAY_SECONDS = 2.0  # late answers this close together make one corrected report


class ReportNotDelivered(RuntimeError):
    """The engine refused the report (it is stopping); the next start re-arms it."""


NAMES_SHOWN = 25  # per list in the message; the CSV has everyone


def _names(rows: list[Any], limit: int = NAMES_SHOWN) -> str:
    """Names for the report message, capped so a large class still fits in one message."""
    shown = ", ".join(f"{r.name or r.student_id} ({r.student_id})" for r in rows[:limit])
    more = len(rows) - limit
    return (f"{shown} +{more}" if more > 0 else shown) or "-"


def report_fields(report: Report, session: Session, zone: str, unsynced: int = 0) -> dict[str, Any]:
    """Everything the report text in the flow can show, plus the CSV as a transient key."""
    locked = set(session.locked_out or [])
    present = [r for r in report.rows if r.status == PRESENT]
    failed = [r for r in report.rows if r.status == "failed"]
    absent = [r for r in report.rows if r.status != PRESENT]
    locked_rows = [r for r in report.rows if r.student_id in locked and r.status != PRESENT]
    manual = [r for r in present if r.method == "manual"]
    stamp = as_utc(session.opened_at or utcnow()).strftime("%Y%m%d-%H%M")
    return {
        "report_subject": report.subject or session.subject,
        "report_batches": ", ".join(report.batches or session.batches),
        "report_date": day(session.opened_at, zone),
        "report_closed": clock(session.expires_at, zone),
        "total_count": len(report.rows),
        "present_count": len(present),
        "present_names": _names(present),
        "manual_count": len(manual),
        "absent_count": len(absent),
        "absent_names": _names(absent),
        "failed_count": len(failed),
        "failed_names": _names(failed),
        "locked_count": len(locked_rows),
        "locked_names": _names(locked_rows),
        "unsynced_count": int(unsynced),
        "report_complete": "yes" if report.complete else "no",
        "report_filename": f"attendance_{report.subject or 'session'}_{stamp}.csv".replace(" ", "_"),
        REPORT_CSV_KEY: records.report_csv(report),
    }


def _unsynced(session_id: Any) -> int:
    return AttendanceRecord.objects(session=session_id, synced=False, status=PRESENT).count()


async def build_report(roster: RosterService, session: Session, zone: str) -> dict[str, Any]:
    """Report fields of a session, read fresh from the roster backend."""
    report = await roster.report(str(session.id))
    unsynced = await run_blocking(_unsynced, session.id)
    fields = report_fields(report, session, zone, unsynced)
    fields["unchecked_count"] = await run_blocking(outbox.pending_count, outbox.VERIFICATION, str(session.id))
    return fields


class ReportScheduler:
    """Schedules, re-arms and sends each session's report once (see the module docstring).

    Given exactly what it uses: the roster (report data), a notifier (the teacher's chat), the
    buffer after expiry, the time zone, and ``on_sent`` (the verification queue forgets the
    session's attempt counters).
    """

    def __init__(self, roster: RosterService, notify: Notifier, *, buffer_s: float, timezone: str,
                 on_sent: Optional[Callable[[str], None]] = None,
                 scheduler: Optional[AsyncIOScheduler] = None,
                 checks_wait_s: float = CHECKS_WAIT_SECONDS) -> None:
        self.roster = roster
        self.notify = notify
        self.buffer_s = float(buffer_s)
        self.timezone = timezone
        self.on_sent = on_sent
        self.scheduler = scheduler or AsyncIOScheduler(timezone=dt.timezone.utc)
        self.checks_wait_s = float(checks_wait_s)
        self.sent = 0
        self.corrected = 0
        self._building: set[str] = set()  # reports claimed here and not sent yet
        self._late: set[str] = set()  # ...that a late answer may have missed

    @staticmethod
    def job_id(session_id: str) -> str:
        return f"report:{session_id}"

    def start(self) -> None:
        if not self.scheduler.running:
            self.scheduler.start()

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def schedule(self, session_id: str, expires_at: dt.datetime, buffer_s: Optional[float] = None) -> dt.datetime:
        """(Re)schedule the report of one session; returns when it will run."""
        buffer = self.buffer_s if buffer_s is None else buffer_s
        run_at = max(as_utc(expires_at) + dt.timedelta(seconds=buffer), utcnow())
        self.scheduler.add_job(
            self.fire, trigger="date", run_date=run_at, args=[str(session_id)],
            id=self.job_id(session_id), replace_existing=True, misfire_grace_time=None, coalesce=True,
        )
        return run_at

    async def rearm(self) -> int:
        """Schedule every session whose report has not been sent (after a restart)."""
        pending = await run_blocking(
            lambda: [(str(s.id), s.expires_at) for s in Session.objects(report_sent_at=None).only("expires_at")]
        )
        for session_id, expires_at in pending:
            self.schedule(session_id, expires_at)
        return len(pending)

    def pending(self) -> list[str]:
        return [job.id for job in self.scheduler.get_jobs()]

    async def fire(self, session_id: str) -> bool:
        """Send the report unless someone already did; True if this call sent it."""
        try:
            return await self._fire(session_id)
        except Exception:
            log.exception("report of session %s failed", session_id)
            return False

    async def _fire(self, session_id: str) -> bool:
        session = await run_blocking(lambda: Session.objects(id=session_id).first())
        if session is None:
            return False
        if as_utc(session.expires_at) > utcnow():  # extended meanwhile: a later job will come
            self.schedule(session_id, session.expires_at)
            return False
        if not await run_blocking(Session.claim_report, session.id):
            return False
        teacher_chat = session.teacher.telegram_id
        self._building.add(session_id)
        try:
            await run_blocking(Session.close, session.id)
            await self._wait_for_checks(session)
            self._late.discard(session_id)  # answers so far are in the report; later ones get a correction
            fields = await build_report(self.roster, session, self.timezone)
            if teacher_chat is not None:
                # Our events always answer; no answer means the engine refused it (stopping).
                if not await self.notify(TEACHER_BOT, int(teacher_chat), REPORT_EVENT, fields):
                    raise ReportNotDelivered(f"the engine refused the report of session {session_id}")
        except BaseException as exc:
            # Claimed but not delivered: give the claim back, so this process (or the next) sends it.
            await run_blocking(Session.release_report, session.id)
            if not isinstance(exc, (ReportNotDelivered, asyncio.CancelledError)):
                self.schedule(session_id, utcnow(), RETRY_SECONDS)
            raise
        finally:
            self._building.discard(session_id)
        if session_id in self._late:  # an answer came while the report was being built
            self._late.discard(session_id)
            self._schedule_correction(session_id)
        if self.on_sent is not None:
            self.on_sent(session_id)
        self.sent += 1
        if teacher_chat is None:
            log.warning("report of session %s has nobody to go to", session_id)
            return True
        log.info("report of session %s sent", session_id)
        return True

    # -- face checks accepted before the close
    async def _wait_for_checks(self, session: Session) -> None:
        """Wait (at most ``checks_wait_s``) for face checks the session accepted before it closed:
        their answers belong in the report. A check still running after that gets a corrected
        report when it answers (:meth:`late_mark`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.checks_wait_s
        while True:
            running = await run_blocking(Session.face_checks_running, session.id)
            if not running:
                return
            if loop.time() >= deadline:
                log.warning("report of session %s: %d face check(s) still running after %.0f s; "
                            "a corrected report follows their answers", session.id, running, self.checks_wait_s)
                return
            await asyncio.sleep(0.2)

    async def late_mark(self, session_id: str) -> bool:
        """A face check recorded a mark: if the session's report is out already, send the teacher a
        corrected one (late answers close together make one). True if one was scheduled."""
        session_id = str(session_id)
        if session_id in self._building:
            self._late.add(session_id)
            return False
        session = await run_blocking(lambda: Session.objects(id=session_id).only("report_sent_at").first())
        if session is None or session.report_sent_at is None:
            return False  # the report is still to come and will include it
        self._schedule_correction(session_id)
        return True

    def _schedule_correction(self, session_id: str) -> None:
        self.scheduler.add_job(
            self._send_correction, trigger="date", args=[session_id], id=f"report-fix:{session_id}",
            run_date=utcnow() + dt.timedelta(seconds=CORRECTION_DELAY_SECONDS), replace_existing=True,
            misfire_grace_time=None, coalesce=True)

    async def _send_correction(self, session_id: str) -> bool:
        try:
            session = await run_blocking(lambda: Session.objects(id=session_id).first())
            if session is None or session.teacher.telegram_id is None:
                return False
            fields = await build_report(self.roster, session, self.timezone)
            if not await self.notify(TEACHER_BOT, int(session.teacher.telegram_id), REPORT_CORRECTED_EVENT, fields):
                return False
        except Exception:
            log.exception("corrected report of session %s failed", session_id)
            return False
        self.corrected += 1
        log.info("corrected report of session %s sent", session_id)
        return True
