"""Issue 14 items 12, 14, 15: phones as whole E.164 numbers, the file's encoding, invisible characters."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from integrations.foundation.phones import contact_phone, normalise_phone, phones_match
from integrations.foundation.text import clean_text
from integrations.roster import records
from integrations.roster.csv_import import CsvImportError, import_roster, import_roster_text
from integrations.storage.documents import Student, Teacher

REPO = Path(__file__).resolve().parents[2]
HEADER = "role,id,name,phone,email,password,batch,subject\n"


# ------------------------------------------------------------------ 12. phones
def test_duplicate_phones_are_refused_at_import_with_their_lines(db) -> None:
    text = HEADER + ("student,S1,Ravi,+91 90000 10001,,,B1,\n"
                     "student,S2,Sita,+91 90000 10002,,,B1,\n"
                     "student,S3,Arjun,090000 10001,,,B1,\n")  # Ravi's number, written another way
    with pytest.raises(CsvImportError) as err:
        import_roster_text(text)
    assert [str(e) for e in err.value.errors] == [
        "line 4: phone +91 90000 10001 is also student S1's (line 2): every student needs their own number"]
    assert Student.objects.count() == 0


def test_a_phone_of_a_student_already_in_the_roster_is_refused(db) -> None:
    import_roster_text(HEADER + "student,S1,Ravi,+91 90000 10001,,,B1,\n")
    with pytest.raises(CsvImportError) as err:
        import_roster_text(HEADER + "student,S9,Someone,9000010001,,,B1,\n")
    assert "line 2: phone +91 90000 10001 already belongs to student S1 of the roster" in str(err.value)
    import_roster_text(HEADER + "student,S1,Ravi K,+91 90000 10001,,,B1,\n")  # the same student: fine


def test_a_plus_1_number_is_not_a_plus_91_student(db) -> None:
    # The same last 10 digits: +91 98480 12345 (India) and +1 984-801-2345 (North Carolina).
    import_roster_text(HEADER + "student,S1,Ravi,+91 98480 12345,,,B1,\n")
    assert records.identify_student(contact_phone("19848012345")) is None
    assert records.identify_student(contact_phone("+1 984 801 2345")) is None
    assert records.identify_student(contact_phone("919848012345")).student_id == "S1"
    assert not phones_match("+1 984 801 2345", "+91 98480 12345")


def test_phones_are_read_in_the_default_region_unless_they_say_otherwise() -> None:
    assert normalise_phone("98480 12345") == normalise_phone("098480-12345") == "919848012345"
    assert normalise_phone("+1 (984) 801-2345") == "19848012345"
    assert contact_phone("19848012345") == "19848012345"  # Telegram: country code without '+'
    assert contact_phone("919848012345") == "919848012345"


# ------------------------------------------------------------------ 14. encodings
def test_a_latin1_file_names_its_line_and_imports_when_declared(db, tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_bytes((HEADER + "student,S1,Ravi,,,,B1,\nstudent,S2,José,,,,B1,\n").encode("latin-1"))
    with pytest.raises(CsvImportError) as err:
        import_roster(path)
    (problem,) = err.value.errors
    assert problem.line == 3 and "byte 0xe9 at column 15" in problem.message and "--encoding cp1252" in problem.message
    assert Student.objects.count() == 0
    assert import_roster(path, encoding="cp1252").students_created == 2
    assert Student.objects(student_id="S2").get().name == "José"


def test_the_command_says_which_line_and_never_traces_back(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_bytes((HEADER + "student,S2,José,,,,B1,\n").encode("latin-1"))
    env = {"PATH": "/usr/bin:/bin", "APP_ENV": "test", "DATA_DIR": str(tmp_path / "data"), "MONGODB_URI": ""}
    from tests.conftest import fresh_db_uri

    env["MONGODB_URI"] = fresh_db_uri("cli")
    run = subprocess.run([sys.executable, "run.py", "roster", "import", str(path)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert "line 2: byte 0xe9" in run.stderr and "Traceback" not in run.stderr


def test_a_nul_byte_in_a_name_is_dropped(db) -> None:
    import_roster_text(HEADER + "student,S2,Si\x00ta,,,,B1,\n")
    assert Student.objects.get().name == "Sita"


# ------------------------------------------------------------------ 15. invisible characters
def test_control_and_format_characters_are_stripped_at_import(db) -> None:
    import_roster_text(HEADER + (
        "teacher,,Asha\u200b Rao,+91 98480 00001,asha\u200b@example.edu,pw-asha,B1,Python\n"
        "student,S1,Ravi\u202e Kumar,,,,B1,\n"
        "student,S2,\uff33ita\u200f Devi,,,,B1,\n"
        "student,S3,\u0915\u094d\u200d\u0937 Rao,,,,B1,\n"))
    assert [s.name for s in Student.objects.order_by("student_id")] == [
        "Ravi Kumar", "Sita Devi", "\u0915\u094d\u200d\u0937 Rao"]  # a joiner inside a word stays
    teacher = Teacher.objects.get()
    assert (teacher.name, teacher.email) == ("Asha Rao", "asha@example.edu")


def test_clean_text() -> None:
    assert clean_text("Ra\x00vi\u202e \t Kumar\ufeff") == "Ravi Kumar"
    assert clean_text("\uff21sha") == "Asha"
