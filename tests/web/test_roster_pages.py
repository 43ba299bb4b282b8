"""Teachers, batches, subjects, students, the CSV import and reference photos through the panel."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from integrations.roster.local import LocalRoster
from integrations.storage.documents import Batch, Student, Teacher
from integrations.storage.audit import AuditEvent
from tests.conftest import require_faces
from tests.web.conftest import client_for, form_csrf


def _post(client, url, **data):  # type: ignore[no-untyped-def]
    return client.post(url, data={"csrf": form_csrf(client), **data}, follow_redirects=False)


def test_add_teacher_validates_every_field_and_writes_nothing_on_error(admin) -> None:  # type: ignore[no-untyped-def]
    response = _post(admin, "/teachers/new", email="not-an-email", name="", phone="12", password="short",
                     password2="short", assignments="PFS-101 / Python\nNOPE / Python\nbad line")
    assert response.status_code == 400
    for text in ("Enter an email address", "A name is required", "10 to 15 digits", "At least 10 characters",
                 "line 2: no active batch NOPE", "line 3: write BATCH / SUBJECT"):
        assert text in response.text, text
    assert Teacher.objects.count() == 2


def test_add_teacher_then_they_sign_in_and_see_their_batch(admin, app) -> None:  # type: ignore[no-untyped-def]
    response = _post(admin, "/teachers/new", email="New.Teacher@Example.edu", name="New Teacher",
                     phone="+91 98480 00009", password="a-long-password", password2="a-long-password",
                     assignments="JFS-201 / Java")
    assert response.status_code == 303
    teacher = Teacher.objects(email="new.teacher@example.edu").first()
    assert teacher.password_hash.startswith("scrypt$") and teacher.phone == "919848000009"
    client = client_for(app, ("new.teacher@example.edu", "a-long-password"))
    assert "22JFS001" in client.get("/students").text and "22PFS001" not in client.get("/students").text
    duplicate = _post(admin, "/teachers/new", email="new.teacher@example.edu", name="Again",
                      password="a-long-password", password2="a-long-password")
    assert duplicate.status_code == 400 and "Another teacher has this email" in duplicate.text
    assert AuditEvent.objects(kind="teacher_create").count() == 1


def test_edit_teacher_keeps_the_password_when_left_empty(admin) -> None:  # type: ignore[no-untyped-def]
    asha = Teacher.objects(email="asha.rao@example.edu").first()
    old_hash = asha.password_hash
    form = admin.get(f"/teachers/{asha.id}/edit").text
    assert "PFS-101 / Python" in form
    response = _post(admin, f"/teachers/{asha.id}/edit", email=asha.email, name="Asha R.", phone=asha.phone,
                     assignments="PFS-101 / Python")
    assert response.status_code == 303
    asha.reload()
    assert asha.name == "Asha R." and asha.password_hash == old_hash
    assert [(a.batch, a.subject) for a in asha.assignments] == [("PFS-101", "Python")]


def test_reset_binding_and_reactivate(admin) -> None:  # type: ignore[no-untyped-def]
    asha = Teacher.objects(email="asha.rao@example.edu").first()
    assert asha.telegram_id == 5001
    assert _post(admin, f"/teachers/{asha.id}/unbind").status_code == 303
    assert Teacher.objects(id=asha.id).first().telegram_id is None
    _post(admin, f"/teachers/{asha.id}/deactivate")
    assert Teacher.objects(id=asha.id).first().active is False
    _post(admin, f"/teachers/{asha.id}/activate")
    assert Teacher.objects(id=asha.id).first().active is True


def test_batches_and_subjects_add_rename_deactivate(admin) -> None:  # type: ignore[no-untyped-def]
    assert _post(admin, "/codes/batch/new", code="PFS-103", name="Python batch 3").status_code == 303
    bad = _post(admin, "/codes/batch/new", code="PFS-103", name="again")
    assert bad.status_code == 400 and "exists already" in bad.text
    assert _post(admin, "/codes/batch/new", code="../x", name="").status_code == 400
    assert _post(admin, "/codes/batch/edit", code="PFS-103", name="Renamed").status_code == 303
    assert Batch.objects(code="PFS-103").first().name == "Renamed"
    # a deactivated subject is offered to no teacher for new sessions
    assert [a.subject for a in LocalRoster().assignments(5001)].count("Python") == 2
    assert _post(admin, "/codes/subject/deactivate", code="Python").status_code == 303
    assert {a.subject for a in LocalRoster().assignments(5001)} == {"Data Structures"}
    assert _post(admin, "/codes/subject/activate", code="Python").status_code == 303
    assert _post(admin, "/codes/subject/deactivate", code="Nope").status_code == 404


def test_students_search_add_edit_remove(admin) -> None:  # type: ignore[no-untyped-def]
    assert "Sita Devi" in admin.get("/students?q=sita").text
    assert "Ravi Kumar" not in admin.get("/students?q=sita").text
    bad = _post(admin, "/students/new", student_id="has space", name="", phone="1", batch="NOPE")
    assert bad.status_code == 400 and "no spaces" in bad.text and "A name is required" in bad.text
    assert "Choose one of the active batches" in bad.text
    assert Student.objects.count() == 7
    assert _post(admin, "/students/new", student_id="22PFS999", name="New One", phone="+91 90000 19999",
                 batch="PFS-101").status_code == 303
    assert _post(admin, "/students/new", student_id="22PFS999", name="Again", batch="PFS-101").status_code == 400
    assert _post(admin, "/students/22PFS999/edit", name="New Name", phone="", batch="PFS-102").status_code == 303
    student = Student.objects(student_id="22PFS999").first()
    assert (student.name, student.batch, student.phone_tail) == ("New Name", "PFS-102", "")
    refused = _post(admin, "/students/22PFS999/delete", confirm="wrong")
    assert refused.status_code == 400 and "Type the student id" in refused.text
    assert _post(admin, "/students/22PFS999/delete", confirm="22PFS999").status_code == 303
    assert Student.objects(student_id="22PFS999").count() == 0


def _upload(client, url: str, field: str, name: str, data: bytes, kind: str):  # type: ignore[no-untyped-def]
    return client.post(url, data={"csrf": form_csrf(client)}, files={field: (name, data, kind)},
                       follow_redirects=False)


def test_csv_import_shows_numbered_errors_and_writes_nothing(admin) -> None:  # type: ignore[no-untyped-def]
    text = ("role,id,name,phone,email,password,batch,subject\n"
            "student,S1,One,+91 90000 30001,,,PFS-101,\n"
            "student,S2,,12,,,PFS-101,\n"
            "teacher,,T,,bad-email,,B,S\n")
    response = _upload(admin, "/students/import", "file", "roster.csv", text.encode(), "text/csv")
    assert response.status_code == 400 and "nothing was imported" in response.text
    assert "<td class=\"n\">3</td>" in response.text and "<td class=\"n\">4</td>" in response.text
    assert Student.objects(student_id="S1").count() == 0
    good = "role,id,name,phone,email,password,batch,subject\nstudent,S1,One,+91 90000 30001,,,PFS-101,\n"
    ok = _upload(admin, "/students/import", "file", "roster.csv", good.encode(), "text/csv")
    assert ok.status_code == 200 and "1 new" in ok.text and Student.objects(student_id="S1").count() == 1
    wrong_type = _upload(admin, "/students/import", "file", "roster.xlsx", b"PK", "application/zip")
    assert wrong_type.status_code == 400 and "Only .csv files" in wrong_type.text


def _png(width: int, height: int, value: int = 128) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height), value).save(out, "PNG", optimize=True)
    return out.getvalue()


def _scaled(path, height: int = 600):  # type: ignore[no-untyped-def]
    image = Image.open(path).convert("RGB")
    return np.array(image.resize((int(image.width * height / image.height), height)))


def test_photo_upload_checks_before_storing(admin, world) -> None:  # type: ignore[no-untyped-def]
    faces = require_faces()
    target = world.faces_dir / "PFS-101" / "22PFS001.jpg"
    url = "/students/22PFS001/photo"
    cases = [
        (_png(400, 400), "image/png", "No face was found"),
        (_png(100, 100), "image/png", "at least 200 pixels"),
        (b"GIF89a" + b"\0" * 100, "image/jpeg", "not a JPEG or PNG"),
        ((faces / "obama_1.jpg").read_bytes(), "image/gif", "Only JPEG and PNG"),
    ]
    for data, kind, message in cases:
        response = _upload(admin, url, "photo", "p.png", data, kind)
        assert response.status_code == 400 and message in response.text, message
        assert not target.exists()
    two = np.hstack([_scaled(faces / "obama_1.jpg"), _scaled(faces / "biden_1.jpg")])
    out = io.BytesIO()
    Image.fromarray(two).save(out, "JPEG")
    response = _upload(admin, url, "photo", "two.jpg", out.getvalue(), "image/jpeg")
    assert response.status_code == 400 and "2 faces were found" in response.text and not target.exists()
    ok = _upload(admin, url, "photo", "me.jpg", (faces / "obama_1.jpg").read_bytes(), "image/jpeg")
    assert ok.status_code == 303 and target.is_file() and target.read_bytes()[:2] == b"\xff\xd8"
    assert world.ctx.verifier.verify((faces / "obama_2.jpg").read_bytes(), "PFS-101", "22PFS001").matched
    assert "enrolled" in admin.get("/students/22PFS001").text


def test_huge_images_are_refused_from_the_header_before_decoding(admin, world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    decoded = []
    import integrations.presence.faces.photo_check as photo_check

    monkeypatch.setattr(photo_check.cv2, "imdecode", lambda *a: decoded.append(1))
    bomb = _png(6000, 4000)  # 24 megapixels, a few kB compressed
    assert len(bomb) < 200_000
    response = _upload(admin, "/students/22PFS001/photo", "photo", "bomb.png", bomb, "image/png")
    assert response.status_code == 400 and "24 megapixels" in response.text and decoded == []


def test_uploads_over_the_limit_are_refused_unread(admin, world) -> None:  # type: ignore[no-untyped-def]
    world.ctx.settings = world.ctx.settings.model_copy(update={"web_upload_max_bytes": 100_000})
    response = _upload(admin, "/students/22PFS001/photo", "photo", "big.jpg", b"\xff\xd8" + b"0" * 300_000,
                       "image/jpeg")
    assert response.status_code == 413
    assert not (world.faces_dir / "PFS-101" / "22PFS001.jpg").exists()


@pytest.mark.parametrize("sid", ["22PFS001", "22PFS002"])
def test_teacher_may_enrol_photos_of_their_own_students(asha, world, sid) -> None:  # type: ignore[no-untyped-def]
    faces = require_faces()
    response = _upload(asha, f"/students/{sid}/photo", "photo", "me.jpg", (faces / "obama_1.jpg").read_bytes(),
                       "image/jpeg")
    assert response.status_code == 303 and (world.faces_dir / "PFS-101" / f"{sid}.jpg").is_file()
