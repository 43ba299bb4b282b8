"""The live page, manual marks (the /mark rules), extend, close, exports, audit, history, flows."""
from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json

from openpyxl import load_workbook

from integrations.roster import records
from integrations.roster.base import StudentInfo
from integrations.storage.documents import AttendanceRecord, Session, Student, utcnow
from integrations.storage import outbox
from integrations.storage.audit import AuditEvent
from tests.web.conftest import form_csrf


def _post(client, url, **data):  # type: ignore[no-untyped-def]
    return client.post(url, data={"csrf": form_csrf(client), **data}, follow_redirects=False)


def _live(client, session_id: str) -> dict:  # type: ignore[no-untyped-def, type-arg]
    return json.loads(client.get(f"/sessions/{session_id}/live").text)


def test_live_table_follows_check_ins_and_lockouts(asha, world) -> None:  # type: ignore[no-untyped-def]
    sid = world.asha_session
    first = _live(asha, sid)
    assert first["counts"] == {"present": 0, "pending": 4, "failed": 0, "locked": 0, "total": 4}
    records.mark_local(sid, "22PFS002", "present", "face", similarity=97.4, distance_m=12.0)
    records.mark_local(sid, "22PFS003", "failed", "face")
    records.record_wrong_code(sid, "22PFS004", 1, 100)
    data = _live(asha, sid)
    assert data["counts"] == {"present": 1, "pending": 1, "failed": 1, "locked": 1, "total": 4}
    row = next(line for line in data["rows"].split("</tr>") if "22PFS002" in line)
    assert "present" in row and "97.4" in row and "12 m" in row
    assert "locked" in data["rows"] and data["status"] == "open"
    page = asha.get(f"/sessions/{sid}").text
    assert 'data-events="/sessions/' in page and "/static/panel.js" in page


def test_event_stream_sends_the_table(asha, world, app) -> None:  # type: ignore[no-untyped-def]
    with asha.stream("GET", f"/sessions/{world.asha_session}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        seen = []
        for line in lines:
            seen.append(line)
            if line.startswith("data: "):
                break
        world.ctx.stopping.set()  # ends the stream from the server side, as a shutdown does
    payload = json.loads(seen[-1][len("data: "):])
    assert "event: table" in seen and payload["counts"]["total"] == 4


def test_manual_mark_same_rules_and_note_as_the_bot(asha, world) -> None:  # type: ignore[no-untyped-def]
    sid = world.asha_session
    bad = _post(asha, f"/sessions/{sid}/mark", student_id="22PFS001", reason="")
    assert bad.status_code == 400 and "Say why" in bad.text
    stranger = _post(asha, f"/sessions/{sid}/mark", student_id="22JFS001", reason="was there")
    assert stranger.status_code == 400 and "Choose a student of this session" in stranger.text
    assert AttendanceRecord.objects(session=sid).count() == 0
    ok = _post(asha, f"/sessions/{sid}/mark", student_id="22PFS001", reason="phone battery dead")
    assert ok.status_code == 303 and "msg=marked" in ok.headers["location"]
    record = AttendanceRecord.objects(session=sid, student_id="22PFS001").first()
    assert (record.status, record.method) == ("present", "manual")
    assert record.note == "manual by teacher:asha.rao@example.edu: phone battery dead"
    again = _post(asha, f"/sessions/{sid}/mark", student_id="22PFS001", reason="twice")
    assert "msg=already" in again.headers["location"]
    event = AuditEvent.objects(session_id=sid, kind="manual_mark").get()
    assert event.actor == "teacher:asha.rao@example.edu" and event.student_id == "22PFS001"
    assert event.data["reason"] == "phone battery dead" and event.data["from_status"] == "absent"
    audit = asha.get(f"/sessions/{sid}/audit").text
    assert "phone battery dead" in audit and "manual_mark" in audit


def test_extend_and_close(asha, world) -> None:  # type: ignore[no-untyped-def]
    sid = world.asha_session
    before = Session.objects(id=sid).first().expires_at
    assert _post(asha, f"/sessions/{sid}/extend", minutes="0").status_code == 400
    assert "from 1 to 60" in _post(asha, f"/sessions/{sid}/extend", minutes="abc").text
    assert _post(asha, f"/sessions/{sid}/extend", minutes="5").status_code == 303
    assert Session.objects(id=sid).first().expires_at - before == dt.timedelta(minutes=5)
    assert _post(asha, f"/sessions/{sid}/close").status_code == 303
    assert Session.objects(id=sid).first().status == "closed"
    closed = _post(asha, f"/sessions/{sid}/mark", student_id="22PFS001", reason="late")
    assert closed.status_code == 400 and "The session is closed" in closed.text
    late = _post(asha, f"/sessions/{sid}/extend", minutes="5")
    assert late.status_code == 409 and "The session is closed" in late.text
    assert {e.kind for e in AuditEvent.objects(session_id=sid)} == {"session_extended", "session_closed"}


def test_report_downloads_match_the_bots_report(asha, world) -> None:  # type: ignore[no-untyped-def]
    sid = world.asha_session
    records.mark_local(sid, "22PFS002", "present", "face", similarity=91.0)
    csv_response = asha.get(f"/sessions/{sid}/report.csv")
    report = asyncio.run(world.ctx.roster.report(sid))
    assert csv_response.content == records.report_csv(report)
    assert 'filename="attendance_Python_' in csv_response.headers["content-disposition"]
    book = load_workbook(io.BytesIO(asha.get(f"/sessions/{sid}/report.xlsx").content))
    cells = list(book.active.iter_rows(values_only=True))
    header = next(r for r in cells if r and r[0] == "student_id")  # after the report's title block
    rows = cells[cells.index(header) + 1:]
    assert len(rows) == 4 and ("22PFS002", "present") in {(r[0], r[header.index("status")]) for r in rows}
    assert asha.get(f"/sessions/{sid}/report.pdf").status_code == 404


def _history_session(teacher_tg: int, batch: str, days_ago: int, present: list[str]) -> str:
    students = [StudentInfo(s.student_id, s.name, s.batch, s.phone) for s in Student.objects(batch=batch)]
    opened = utcnow() - dt.timedelta(days=days_ago)
    session = records.create_session(teacher_tg, f"9{days_ago:05d}", [batch], "Python", 17.0, 78.0, 50.0,
                                     opened + dt.timedelta(minutes=5), students)
    Session.objects(id=session.id).update_one(set__opened_at=opened, set__status="closed")
    for sid in present:
        records.mark_local(str(session.id), sid, "present", "face")
    return str(session.id)


def test_batch_and_student_history_with_threshold_chart_and_exports(asha, world) -> None:  # type: ignore[no-untyped-def]
    Session.objects(id=world.asha_session).delete()
    for days, present in ((3, ["22PFS001", "22PFS002", "22PFS003"]), (2, ["22PFS001", "22PFS002"]),
                          (1, ["22PFS001", "22PFS002", "22PFS004"]), (40, [])):
        _history_session(5001, "PFS-101", days, present)
    page = asha.get("/history/batch/PFS-101")
    assert page.status_code == 200 and "<svg" in page.text and "<script" not in page.text.split("<main>")[1]
    assert "3 session(s)" in page.text and "attendance 67 %" in page.text  # 8 of 12
    low_rows = [r for r in page.text.split("<tr") if 'class="low"' in r]
    assert len(low_rows) == 2 and any("22PFS003" in r for r in low_rows) and any("22PFS004" in r for r in low_rows)
    lines = list(csv.reader(io.StringIO(asha.get("/history/batch/PFS-101/export.csv").content.decode("utf-8-sig"))))
    assert lines[0][:5] == ["student_id", "name", "sessions", "present", "percent"]
    assert ["22PFS001", "Ravi Kumar", "3", "3", "100.0", ""] in lines and ["22PFS003", "Arjun Reddy", "3", "1", "33.3", "yes"] in lines
    book = load_workbook(io.BytesIO(asha.get("/history/batch/PFS-101/export.xlsx").content))
    assert book.sheetnames == ["students", "sessions"] and book["sessions"].max_row == 4
    wide = asha.get("/history/batch/PFS-101?from=" + (utcnow() - dt.timedelta(days=60)).date().isoformat())
    assert "4 session(s)" in wide.text
    student = asha.get("/history/student/22PFS003")
    assert "Present in 1 of 3 session(s): 33 %" in student.text and "<svg" in student.text
    bad = asha.get("/history/batch/PFS-101?from=2026-02-10&to=2026-01-01&threshold=300")
    assert bad.status_code == 400 and "The end is before the start" in bad.text and "0 to 100" in bad.text


def test_flows_page_shows_each_flow_and_its_check(asha) -> None:  # type: ignore[no-untyped-def]
    page = asha.get("/flows").text
    for name in ("teacher.yaml", "student.yaml", "example.yaml"):
        assert name in page
    assert page.count("check: ok") == 3
    assert "stateDiagram" in page or "flowchart" in page


def test_dashboard_counts_and_outbox_alerts(admin, world) -> None:  # type: ignore[no-untyped-def]
    records.mark_local(world.asha_session, "22PFS001", "present", "face")
    page = admin.get("/").text
    assert "No alerts" in page
    row = next(r for r in page.split("<tr>") if world.asha_session in r)
    assert '<td class="n">1</td><td class="n">3</td><td class="n">4</td>' in row
    outbox.enqueue_attendance(world.asha_session, "22PFS002", "present", "face", error="api_unavailable")
    outbox.enqueue_verification(world.asha_session, "22PFS003", "PFS-101", b"\xff\xd8frame", error="throttled")
    page = admin.get("/").text
    assert "1 attendance record(s) wait in the outbox" in page and "The face service is down" in page
