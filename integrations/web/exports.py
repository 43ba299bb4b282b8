"""Downloads of a batch's history (CSV, XLSX); a session's report uses the bots' own
(integrations.attendance.exports and the roster's CSV)."""
from __future__ import annotations

import csv
import io
from typing import Any, Iterable, Sequence

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill

from integrations.roster.records import safe_cell
from integrations.web.queries import History

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_TYPE = "text/csv; charset=utf-8"
HISTORY_COLUMNS = ("student_id", "name", "sessions", "present", "percent", "below_threshold")
_LOW = PatternFill("solid", fgColor="F8D7DA")


def _xlsx(sheets: Iterable[tuple[str, Sequence[str], Iterable[Sequence[Any]], Any]]) -> bytes:
    """Sheets of (title, header, rows, highlight(row) -> bool) as XLSX bytes."""
    book = Workbook()
    book.remove(book.active)
    for title, header, rows, low in sheets:
        sheet = book.create_sheet(title[:31])
        sheet.append(list(header))
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in rows:
            sheet.append([safe_cell(v) if isinstance(v, str) else v for v in row])
            if low is not None and low(row):
                for cell in sheet[sheet.max_row]:
                    cell.fill = _LOW
        sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _history_rows(history: History, threshold: float) -> list[list[Any]]:
    return [[s.student_id, s.name, s.sessions, s.present, round(s.percent, 1),
             "yes" if s.percent < threshold else ""] for s in history.students]


def history_csv(history: History, threshold: float) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HISTORY_COLUMNS)
    for row in _history_rows(history, threshold):
        writer.writerow([safe_cell(v) if isinstance(v, str) else v for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def history_xlsx(history: History, threshold: float) -> bytes:
    sessions = [[p.opened_at.replace(tzinfo=None), p.subject, p.present, p.total, round(p.percent, 1)]
                for p in history.points]
    return _xlsx([
        ("students", HISTORY_COLUMNS, _history_rows(history, threshold), lambda row: row[5] == "yes"),
        ("sessions", ("opened (UTC)", "subject", "present", "students", "percent"), sessions, None),
    ])
