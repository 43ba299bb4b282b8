"""A teacher sees and changes only their own batches, students and sessions, whatever id the URL holds."""
from __future__ import annotations

import datetime as dt

import pytest

from integrations.storage.documents import AttendanceRecord, Session, Student
from tests.web.conftest import form_csrf

VIKRAMS_STUDENT = "22JFS001"  # JFS-201: Vikram's batch, not Asha's


@pytest.mark.parametrize("path", ["", "/live", "/events", "/audit", "/report.csv", "/report.xlsx"])
def test_another_teachers_session_reads_as_not_found(asha, world, path) -> None:  # type: ignore[no-untyped-def]
    response = asha.get(f"/sessions/{world.vikram_session}{path}")
    assert response.status_code == 404
    assert "Java" not in response.text and VIKRAMS_STUDENT not in response.text
    assert asha.get(f"/sessions/{world.asha_session}{path if path != '/events' else '/live'}").status_code == 200


def test_another_teachers_session_cannot_be_changed(asha, world) -> None:  # type: ignore[no-untyped-def]
    csrf = form_csrf(asha)
    before = Session.objects(id=world.vikram_session).first()
    for action, data in (("mark", {"student_id": VIKRAMS_STUDENT, "reason": "was here"}),
                         ("extend", {"minutes": "10"}), ("close", {})):
        response = asha.post(f"/sessions/{world.vikram_session}/{action}", data={"csrf": csrf, **data})
        assert response.status_code == 404, action
    after = Session.objects(id=world.vikram_session).first()
    assert (after.status, after.expires_at) == (before.status, before.expires_at)
    assert AttendanceRecord.objects(session=world.vikram_session).count() == 0


def test_another_teachers_students_and_history_read_as_not_found(asha) -> None:  # type: ignore[no-untyped-def]
    for url in (f"/students/{VIKRAMS_STUDENT}", f"/history/student/{VIKRAMS_STUDENT}", "/history/batch/JFS-201",
                "/history/batch/JFS-201/export.csv", "/history/batch/JFS-201/export.xlsx"):
        assert asha.get(url).status_code == 404, url
    listing = asha.get("/students?batch=JFS-201").text
    assert VIKRAMS_STUDENT not in listing
    assert VIKRAMS_STUDENT not in asha.get("/students?q=22JFS").text
    assert "22PFS001" in asha.get("/students").text
    csrf = form_csrf(asha)
    response = asha.post(f"/students/{VIKRAMS_STUDENT}/photo", data={"csrf": csrf},
                         files={"photo": ("a.jpg", b"\xff\xd8\xff", "image/jpeg")})
    assert response.status_code == 404


def test_admin_pages_and_edits_are_not_for_teachers(asha) -> None:  # type: ignore[no-untyped-def]
    for url in ("/teachers", "/teachers/new", "/codes", "/students/new", "/students/import"):
        assert asha.get(url).status_code == 404, url
    csrf = form_csrf(asha)
    response = asha.post("/students/22PFS001/edit", data={"csrf": csrf, "name": "Changed", "batch": "PFS-101"})
    assert response.status_code == 404
    assert asha.post("/students/22PFS001/delete", data={"csrf": csrf, "confirm": "22PFS001"}).status_code == 404
    assert Student.objects(student_id="22PFS001").first().name == "Ravi Kumar"


def test_session_list_and_dashboard_show_only_their_sessions(asha, admin, world) -> None:  # type: ignore[no-untyped-def]
    for url in ("/sessions", "/"):
        mine = asha.get(url).text
        assert world.asha_session in mine and world.vikram_session not in mine
        everything = admin.get(url).text
        assert world.asha_session in everything and world.vikram_session in everything


def test_history_of_their_batch_counts_only_their_sessions(asha, world) -> None:  # type: ignore[no-untyped-def]
    Session.objects(id=world.asha_session).update_one(set__opened_at=dt.datetime.now(dt.timezone.utc))
    assert asha.get("/history/batch/PFS-101").status_code == 200
