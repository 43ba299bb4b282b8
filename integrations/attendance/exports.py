"""Spreadsheets: a session's report as XLSX, and a batch's attendance history (CSV or XLSX).

The report's columns are the CSV's (`records.report_table`): the same statuses as the report
text and a score for every face check. The history is one row per student of the batch and one
column per session, with each student's percentage; statuses come from the local attendance
records, which both backends keep (on the http backend they are what was sent to the API).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill

from integrations.foundation.timefmt import as_utc, day
from integrations.roster import records
from integrations.roster.base import Report

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PRESENT, ABSENT, FAILED, LOCKED = "present", "absent", "failed", "locked_out"
DOUBTFUL = "doubtful"  # the liveness column (LIVENESS=flag)
FILLS = {PRESENT: "C6EFCE", ABSENT: "FFC7CE", FAILED: "FFEB9C", LOCKED: "D9D9D9", DOUBTFUL: "FFEB9C"}


def _sheet_rows(ws: Any, rows: Sequence[Sequence[Any]], start_row: int = 1) -> None:
    """Write rows; text is always text (a name starting with '=' is never a formula)."""
    for r, row in enumerate(rows, start=start_row):
        for c, value in enumerate(row, start=1):
            cell = ws.cell(row=r, column=c, value=value)
            if isinstance(value, str) and value.startswith("="):
                cell.data_type = "s"


def _workbook() -> Any:
    return Workbook()


def _save(wb: Any) -> bytes:
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _bold_header(ws: Any, row: int, width: int) -> None:
    for c in range(1, width + 1):
        ws.cell(row=row, column=c).font = Font(bold=True)


def _colour(ws: Any, row: int, column: int, status: str) -> None:
    colour = FILLS.get(status)
    if colour:
        ws.cell(row=row, column=column).fill = PatternFill("solid", start_color=colour, end_color=colour)


def report_xlsx(report: Report, zone: str = "UTC") -> bytes:
    """The session's report as an XLSX workbook: a title block, then the CSV's columns."""
    header, rows = records.report_table(report)
    wb = _workbook()
    ws = wb.active
    ws.title = "Attendance"
    title = [["Attendance report", report.subject], ["Batches", ", ".join(report.batches)],
             ["Opened", day(report.opened_at, zone)], ["Teacher", report.teacher_name],
             ["Present", f"{len(report.present)}/{len(report.rows)}"],
             ["Complete", "yes" if report.complete else "no (the attendance API could not be read)"]]
    _sheet_rows(ws, title)
    first = len(title) + 2
    _sheet_rows(ws, [header, *rows], first)
    _bold_header(ws, first, len(header))
    status_col, liveness_col = header.index("status") + 1, header.index("liveness") + 1
    for i, row in enumerate(rows, start=first + 1):
        _colour(ws, i, status_col, str(row[status_col - 1]))
        _colour(ws, i, liveness_col, str(row[liveness_col - 1]))
    ws.freeze_panes = ws.cell(row=first + 1, column=3)
    return _save(wb)


# ------------------------------------------------------------------------------------- history
@dataclass
class History:
    batch: str
    start: Optional[dt.date]
    end: Optional[dt.date]
    sessions: list[tuple[str, str]] = field(default_factory=list)  # (session id, column title)
    students: list[tuple[str, str]] = field(default_factory=list)  # (student id, name)
    cells: dict[tuple[str, str], str] = field(default_factory=dict)  # (student, session) -> status

    def percentage(self, student_id: str) -> tuple[int, int, Optional[float]]:
        """(present, sessions the student was on the roster of, percent or None)."""
        statuses = [self.cells[(student_id, sid)] for sid, _ in self.sessions if (student_id, sid) in self.cells]
        present = sum(s == PRESENT for s in statuses)
        return present, len(statuses), (round(100.0 * present / len(statuses), 1) if statuses else None)

    def table(self) -> tuple[list[str], list[list[Any]]]:
        header = ["student_id", "name", *(title for _, title in self.sessions), "present", "sessions", "percent"]
        rows = []
        for student_id, name in self.students:
            present, total, percent = self.percentage(student_id)
            rows.append([student_id, name, *(self.cells.get((student_id, sid), "") for sid, _ in self.sessions),
                         present, total, percent])
        return header, rows


def _bounds(start: Optional[dt.date], end: Optional[dt.date], zone: str
            ) -> tuple[Optional[dt.datetime], Optional[dt.datetime]]:
    tz = ZoneInfo(zone)
    low = dt.datetime.combine(start, dt.time(), tz) if start else None
    high = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tz) if end else None
    return low, high


def batch_history(batch: str, start: Optional[dt.date] = None, end: Optional[dt.date] = None,
                  zone: str = "UTC") -> History:
    """Every session of ``batch`` opened between ``start`` and ``end`` (inclusive days in ``zone``).

    Blocking (database reads): run it off the event loop."""
    low, high = _bounds(start, end, zone)
    history = History(batch, start, end)
    names: dict[str, str] = {}
    for session in records.batch_sessions(batch, low, high):
        sid = str(session.id)
        title = f"{as_utc(session.opened_at).astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} {session.subject}".strip()
        history.sessions.append((sid, title))
        statuses = records.session_statuses(session)
        locked = records.locked_students(session)
        for snap in session.students:
            if snap.batch != batch:
                continue
            names.setdefault(snap.student_id, snap.name)
            status = statuses.get(snap.student_id, (ABSENT, ""))[0]
            if status != PRESENT and snap.student_id in locked:
                status = LOCKED
            history.cells[(snap.student_id, sid)] = status
    history.students = sorted(names.items())
    return history


def history_csv(history: History) -> bytes:
    header, rows = history.table()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else (records._cell(v) if isinstance(v, str) else v) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def history_xlsx(history: History) -> bytes:
    header, rows = history.table()
    wb = _workbook()
    ws = wb.active
    ws.title = f"{history.batch}"[:31] or "History"
    span = f"{history.start or 'first'} to {history.end or 'last'}"
    _sheet_rows(ws, [["Attendance history", history.batch], ["Sessions", f"{len(history.sessions)} ({span})"]])
    first = 4
    _sheet_rows(ws, [header, *rows], first)
    _bold_header(ws, first, len(header))
    for r, row in enumerate(rows, start=first + 1):
        for c in range(3, 3 + len(history.sessions)):
            _colour(ws, r, c, str(row[c - 1]))
    ws.freeze_panes = ws.cell(row=first + 1, column=3)
    return _save(wb)
