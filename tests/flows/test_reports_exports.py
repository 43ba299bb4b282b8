"""Issue 15.4/15.5: the CSV says what the text says, with a score for every face check; XLSX
reports; a batch's history with percentages (run.py export)."""
from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import openpyxl

from integrations.app.cli import operations as ops
from integrations.attendance import exports
from integrations.presence.faces.base import FaceResult
from integrations.roster import records
from integrations.storage.documents import AttendanceRecord, Session

from .appkit import ASHA, NEAR, make_app, open_session, student_at_code

LOCAL_MATCH = FaceResult(True, "match", distance=0.312, threshold=0.6, backend="local")
LOCAL_MISMATCH = FaceResult(False, "mismatch", distance=0.811, threshold=0.6, backend="local")


async def check_in(sim, name: str, code: str, expect: str = "Marked present") -> None:  # noqa: ANN001
    user = await student_at_code(sim, name)
    await sim.send(user, code)
    await sim.send(user, NEAR)
    before = len(sim.received(user))
    await sim.send(user, "/video flows/scripts/media/hello.mp4")
    assert not await sim.wait_for(user, [expect], before, within=10), sim.texts(user, before)


def rows_of(data: bytes) -> dict[str, dict[str, str]]:
    return {r["student_id"]: r for r in csv.DictReader(io.StringIO(data.decode("utf-8-sig")))}


async def class_with_every_status():  # type: ignore[no-untyped-def]
    """Ravi present by face, Sita failed, Arjun locked out, Lata marked by hand."""
    app, sim = make_app(face_max_attempts=1, otp_max_attempts=1)
    await app.start()
    app.verifier.default = LOCAL_MATCH
    code = await open_session(sim)
    await check_in(sim, "ravi", code)
    app.verifier.then(LOCAL_MISMATCH)
    await check_in(sim, "sita", code, expect="did not match after 1 attempts")
    arjun = await student_at_code(sim, "arjun")
    assert any("locked out" in r for r in await sim.send(arjun, f"{(int(code) + 1) % 1000000:06d}"))
    await sim.send(ASHA, "/mark 22PFS004 phone camera broken")
    return app, sim, str(Session.objects.first().id)


async def test_csv_has_the_texts_statuses_and_every_face_score() -> None:
    app, sim, session_id = await class_with_every_status()
    before = len(sim.received(ASHA))
    await sim.send(ASHA, "/close")
    assert not await sim.wait_for(ASHA, ["Present 2/4", "Failed face check 1: Sita Devi",
                                         "Locked out 1: Arjun Reddy", "Marked by hand: 1"], before, within=10)
    document = next(item.action for item in sim.received(ASHA)[before:] if hasattr(item.action, "filename"))
    rows = rows_of(document.data)
    assert {sid: r["status"] for sid, r in rows.items()} == {
        "22PFS001": "present", "22PFS002": "failed", "22PFS003": "locked_out", "22PFS004": "present"}
    assert rows["22PFS001"]["face_distance"] == "0.312" and rows["22PFS001"]["similarity"] == ""
    assert rows["22PFS002"]["face_distance"] == "0.811"  # the failed check has its score too
    assert rows["22PFS004"]["method"] == "manual" and "phone camera broken" in rows["22PFS004"]["note"]
    assert rows["22PFS001"]["distance_m"] != ""
    record = AttendanceRecord.objects.get(student_id="22PFS001")
    assert (record.face_distance, record.similarity) == (0.312, None)
    await app.stop()


async def test_rekognition_scores_are_similarity() -> None:
    app, sim = make_app()
    await app.start()
    app.verifier.default = FaceResult(True, "match", similarity=97.25, threshold=80.0, backend="rekognition")
    code = await open_session(sim)
    await check_in(sim, "ravi", code)
    report = records.build_report(Session.objects.first())
    row = rows_of(records.report_csv(report))["22PFS001"]
    assert (row["similarity"], row["face_distance"]) == ("97.2", "")
    await app.stop()


async def test_xlsx_report_from_the_teacher_and_the_cli(tmp_path: Path) -> None:
    app, sim, session_id = await class_with_every_status()
    await sim.send(ASHA, "/close")
    await sim.wait_for(ASHA, ["📋 Attendance report"], 0, within=10)
    before = len(sim.received(ASHA))
    await sim.send(ASHA, "/xlsx")
    document = next(item.action for item in sim.received(ASHA)[before:] if hasattr(item.action, "filename"))
    assert document.filename.startswith("attendance_Python_") and document.filename.endswith(".xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(document.data)).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    header_at = next(i for i, row in enumerate(values) if row[0] == "student_id")
    header = values[header_at]
    statuses = {row[0]: row[header.index("status")] for row in values[header_at + 1:]}
    assert statuses == {"22PFS001": "present", "22PFS002": "failed", "22PFS003": "locked_out", "22PFS004": "present"}
    assert values[0][:2] == ["Attendance report", "Python"]
    # The menu has the same, and run.py export --format xlsx writes it too.
    assert ops.export(app.services.settings, session_id, "xlsx", str(tmp_path / "s.xlsx"), connect=False) == 0
    assert openpyxl.load_workbook(tmp_path / "s.xlsx").active["A1"].value == "Attendance report"
    await app.stop()


async def test_a_batchs_history_with_percentages(tmp_path: Path) -> None:
    app, sim = make_app()
    await app.start()
    first = await open_session(sim)
    await check_in(sim, "ravi", first)
    await check_in(sim, "sita", first)
    await sim.send(ASHA, "/close")
    await sim.wait_for(ASHA, ["📋 Attendance report"], 0, within=10)
    await sim.send(ASHA, "/start")
    second = await open_session(sim, subject="Data Structures")
    await check_in(sim, "ravi", second)
    settings = app.services.settings
    today = dt.datetime.now(dt.timezone.utc).date()

    history = exports.batch_history("PFS-101", today, today)
    header, rows = history.table()
    assert header[:2] == ["student_id", "name"] and header[-3:] == ["present", "sessions", "percent"]
    assert len(history.sessions) == 2 and header[3].endswith("Data Structures")
    table = {row[0]: row for row in rows}
    assert table["22PFS001"][2:] == ["present", "present", 2, 2, 100.0]
    assert table["22PFS002"][2:] == ["present", "absent", 1, 2, 50.0]
    assert table["22PFS004"][2:] == ["absent", "absent", 0, 2, 0.0]

    out = tmp_path / "h.csv"
    assert ops.export_history(settings, "PFS-101", str(today), str(today), "csv", str(out), connect=False) == 0
    assert rows_of(out.read_bytes())["22PFS002"]["percent"] == "50.0"
    out = tmp_path / "h.xlsx"
    assert ops.export_history(settings, "PFS-101", None, None, "xlsx", str(out), connect=False) == 0
    sheet = openpyxl.load_workbook(out).active
    assert sheet["A1"].value == "Attendance history" and sheet["B1"].value == "PFS-101"
    yesterday = str(today - dt.timedelta(days=1))
    assert ops.export_history(settings, "PFS-101", yesterday, yesterday, "csv", None, connect=False) == 1
    assert ops.export_history(settings, "PFS-101", str(today), yesterday, "csv", None, connect=False) == 2
    await app.stop()


def test_export_command_line_arguments(capsys) -> None:  # type: ignore[no-untyped-def]
    from integrations.app.cli import main

    assert main(["export"]) == 2
    assert main(["export", "abc", "--batch", "PFS-101"]) == 2
    assert main(["export", "--batch", "PFS-101", "--format", "json"]) == 2
    assert "--batch" in capsys.readouterr().err


def test_spreadsheet_text_is_never_a_formula() -> None:
    from integrations.roster.base import Report, ReportRow

    report = Report("s", "Python", ("B",), "T", None, None,
                    rows=(ReportRow("=1+1", "=HYPERLINK(\"x\")", "B", "", "absent"),))
    cell = openpyxl.load_workbook(io.BytesIO(exports.report_xlsx(report))).active
    values = [c.value for row in cell.iter_rows() for c in row]
    assert "=1+1" in values and all(c.data_type != "f" for row in cell.iter_rows() for c in row)
    assert rows_of(records.report_csv(report))["'=1+1"]["name"].startswith("'=")
