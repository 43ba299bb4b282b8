"""The teacher's report in the teacher's language: dates and counts per locale (Babel), the CSV's
headers and status words translated; without a language it stays plain (backups, logs)."""
from __future__ import annotations

import csv
import datetime as dt
import io

from integrations.attendance.reports import CSV_LABELS, report_fields
from integrations.foundation.names import REPORT_CSV_KEY
from integrations.foundation.timefmt import clock, day, number
from integrations.roster.base import Report, ReportRow
from integrations.roster.records import REPORT_COLUMNS
from integrations.storage.documents import Session

OPENED = dt.datetime(2025, 3, 7, 10, 15, tzinfo=dt.timezone.utc)  # 15:45 in India
ROWS = (
    ReportRow("S1", "Ravi Kumar", "B1", "+91", "present", "face", OPENED, 97.5, 12.0),
    ReportRow("S2", "Sita Devi", "B1", "+91", "failed", "face"),
    ReportRow("S3", "Lata Singh", "B1", "+91", "present", "manual", OPENED),
    ReportRow("S4", "Arjun Reddy", "B1", "+91", "absent", locked=True),  # the report reads lockouts off the rows
)
REPORT = Report("sid", "Python", ("B1",), "Asha Rao", OPENED, OPENED + dt.timedelta(minutes=10), ROWS)
SESSION = Session(otp="123456", batches=["B1"], subject="Python", latitude=1.0, longitude=2.0,
                  opened_at=OPENED, expires_at=OPENED + dt.timedelta(minutes=10), locked_out=["S4"])


def rows_of(fields: dict) -> list[list[str]]:
    return list(csv.reader(io.StringIO(fields[REPORT_CSV_KEY].decode("utf-8-sig"))))


def test_without_a_language_the_report_is_plain() -> None:
    fields = report_fields(REPORT, SESSION, "Asia/Kolkata")
    assert fields["report_date"] == "2025-03-07 15:45" and fields["report_closed"] == "15:55"
    assert (fields["present_count"], fields["absent_count"], fields["total_count"]) == (2, 2, 4)
    rows = rows_of(fields)
    assert rows[0] == list(REPORT_COLUMNS)
    assert [r[4] for r in rows[1:]] == ["present", "failed", "present", "locked_out"]


def test_hindi_report() -> None:
    fields = report_fields(REPORT, SESSION, "Asia/Kolkata", language="hi")
    assert fields["report_date"].startswith("7 मार्च 2025") and "3:45" in fields["report_date"]
    assert (fields["present_count"], fields["locked_count"]) == ("2", "1")
    rows = rows_of(fields)
    assert rows[0] == ["छात्र आईडी", "नाम", "बैच", "फ़ोन", "स्थिति", "तरीका", "समय", "चेहरा मिलान", "चेहरे की दूरी",
                       "जीवंतता", "जीवंतता स्कोर", "दूरी (मीटर)", "टिप्पणी"]
    assert [(r[4], r[5]) for r in rows[1:]] == [("उपस्थित", "चेहरा"), ("चेहरा जाँच विफल", "चेहरा"),
                                               ("उपस्थित", "हाथ से"), ("रोका गया", "")]
    assert rows[1][:2] == ["S1", "Ravi Kumar"]  # names and ids as they are


def test_telugu_report() -> None:
    fields = report_fields(REPORT, SESSION, "Asia/Kolkata", language="te")
    assert "మార్చి" in fields["report_date"] and "2025" in fields["report_date"]
    rows = rows_of(fields)
    assert rows[0][0] == "విద్యార్థి ఐడీ" and rows[1][4] == "హాజరు" and rows[4][4] == "నిలిపివేయబడింది"


def test_english_report_is_formatted_for_india() -> None:
    fields = report_fields(REPORT, SESSION, "Asia/Kolkata", language="en")
    assert fields["report_date"].startswith("7 Mar 2025")
    assert rows_of(fields)[0] == list(REPORT_COLUMNS)  # English keeps the plain column names


def test_every_translated_csv_labels_every_column_and_word() -> None:
    words = set(REPORT_COLUMNS) | {"present", "absent", "failed", "locked_out", "face", "manual", "live", "doubtful"}
    for language, labels in CSV_LABELS.items():
        assert set(labels) == words, language


def test_times_and_numbers() -> None:
    assert clock(OPENED, "Asia/Kolkata") == "15:45"
    assert clock(OPENED, "Asia/Kolkata", language="hi").startswith("3:45")
    assert day(None, language="hi") == "" and clock(None, language="te") == ""
    assert number(1234567, "hi") == "12,34,567" and number(7) == 7 and number("x", "hi") == "x"
    assert day(OPENED, "UTC", language="xx").startswith("Mar 7, 2025")  # an unknown language: plain English
