"""Import the local roster from one CSV file (format: docs/roster-csv.md).

The whole file is validated first and every bad row is reported with its line number; nothing
is written unless the file is clean. Writes are upserts keyed by teacher email and student id,
so importing again updates rows and never duplicates them. Students go in batches of 1,000
(integrations.storage.bulk): one range read, one insert of the new, one bulk update of the
changed, so 100,000 rows are a few hundred round trips, not 100,000 (issue 12).

    python run.py roster import scripts/sample_roster.csv
    python run.py roster hash-password   # prints a scrypt hash for the CSV
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, TextIO, Union

from integrations.foundation.crypto import (
    hash_password,
    is_password_hash,
    verify_password,
)
from integrations.foundation.phones import default_region, display, is_phone, normalise_phone, phone_tail
from integrations.foundation.text import clean_text
from integrations.storage.bulk import Upsert, chunks, insert_or_upsert, upsert_all
from integrations.storage.documents import (
    Batch,
    Student,
    Subject,
    Teacher,
    utcnow,
)

COLUMNS = ("role", "id", "name", "phone", "email", "password", "batch", "subject")
REQUIRED_COLUMNS = ("role", "id", "name", "batch")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+$")
MAX_CELL = 254  # characters of a cell (an email's limit); longer ones are an error, not a slow pattern
_STUDENT_ID = re.compile(r"^\S+$")


@dataclass(frozen=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class CsvImportError(ValueError):
    """The file has problems; ``errors`` lists every one with its line number."""

    def __init__(self, errors: list[RowError], source: str = "roster"):
        self.errors = errors
        shown = "\n".join(f"  {e}" for e in errors[:50])
        more = f"\n  ... and {len(errors) - 50} more" if len(errors) > 50 else ""
        super().__init__(f"{source}: {len(errors)} problem(s), nothing imported:\n{shown}{more}")


@dataclass
class ImportResult:
    teachers_created: int = 0
    teachers_updated: int = 0
    students_created: int = 0
    students_updated: int = 0
    batches: int = 0
    subjects: int = 0

    def __str__(self) -> str:
        return (
            f"teachers: {self.teachers_created} new, {self.teachers_updated} updated; "
            f"students: {self.students_created} new, {self.students_updated} updated; "
            f"{self.batches} batches, {self.subjects} subjects"
        )


@dataclass
class _Teacher:
    line: int
    email: str
    name: str
    phone: str
    password: str = ""
    assignments: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class _Student:
    line: int
    student_id: str
    name: str
    phone: str
    batch: str


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(";") if v.strip()]


def _phone(raw: str, line: int, errors: list[RowError]) -> str:
    if raw.strip() and not is_phone(raw):
        errors.append(RowError(line, f"phone {raw.strip()!r} is not a phone number (one without a country code "
                                     f"is read as DEFAULT_PHONE_REGION={default_region()})"))
        return ""
    return normalise_phone(raw) if raw.strip() else ""


def _codes(raw: str, what: str, line: int, errors: list[RowError]) -> list[str]:
    codes = _split(raw)
    if not codes:
        errors.append(RowError(line, f"{what} is required"))
    return codes


def parse_roster(stream: TextIO) -> tuple[dict[str, _Teacher], dict[str, _Student], list[RowError]]:
    """Validate every row; returns teachers by email, students by id, and all errors."""
    errors: list[RowError] = []
    teachers: dict[str, _Teacher] = {}
    students: dict[str, _Student] = {}
    reader = csv.reader(stream)
    header: Optional[list[str]] = None
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # a NUL byte, a quote left open
            errors.append(RowError(reader.line_num, f"cannot be read as CSV: {exc}"))
            break
        line = reader.line_num
        if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [c.strip().lower() for c in row]
            unknown = [c for c in header if c not in COLUMNS]
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if unknown:
                errors.append(RowError(line, f"unknown column(s) {', '.join(unknown)}; expected {', '.join(COLUMNS)}"))
            if missing:
                errors.append(RowError(line, f"missing column(s) {', '.join(missing)}"))
            if unknown or missing:
                return teachers, students, errors
            continue
        if len(row) > len(header):
            errors.append(RowError(line, f"{len(row)} fields but the header has {len(header)} (unquoted comma?)"))
            continue
        too_long = [name for i, name in enumerate(header) if i < len(row) and len(row[i]) > MAX_CELL]
        if too_long:
            errors.append(RowError(line, f"{', '.join(too_long)}: longer than {MAX_CELL} characters"))
            continue
        # Names, ids and emails without control or invisible characters (NFKC); passwords as typed.
        cell = {name: ((row[i] if name == "password" else clean_text(row[i])) if i < len(row) else "").strip()
                for i, name in enumerate(header)}
        cell.update({name: "" for name in COLUMNS if name not in cell})
        role = cell["role"].lower()
        if role == "teacher":
            _teacher_row(cell, line, teachers, errors)
        elif role == "student":
            _student_row(cell, line, students, errors)
        else:
            errors.append(RowError(line, f"role must be 'teacher' or 'student', not {cell['role']!r}"))
    if header is None and not errors:
        errors.append(RowError(1, "the file is empty (expected a header row)"))
    _same_phones(students, errors)
    for t in teachers.values():
        if not t.name:
            errors.append(RowError(t.line, f"teacher {t.email}: name is required (on one of its rows)"))
    return teachers, students, errors


def _teacher_row(cell: dict, line: int, teachers: dict[str, _Teacher], errors: list[RowError]) -> None:
    email = cell["email"].lower()
    if not _EMAIL.match(email):
        errors.append(RowError(line, f"teacher email {cell['email']!r} is missing or invalid"))
        return
    phone = _phone(cell["phone"], line, errors)
    batches = _codes(cell["batch"], "batch", line, errors)
    subjects = _codes(cell["subject"], "subject", line, errors)
    new = _Teacher(line, email, cell["name"], phone, cell["password"], {(b, s) for b in batches for s in subjects})
    old = teachers.get(email)
    if old is None:
        teachers[email] = new
        return
    for attr in ("name", "phone", "password"):
        mine, theirs = getattr(new, attr), getattr(old, attr)
        if mine and theirs and mine != theirs:
            errors.append(RowError(line, f"teacher {email}: {attr} differs from line {old.line}"))
        elif mine:
            setattr(old, attr, mine)
    old.assignments |= new.assignments


def _student_row(cell: dict, line: int, students: dict[str, _Student], errors: list[RowError]) -> None:
    sid = cell["id"]
    if not _STUDENT_ID.match(sid):
        errors.append(RowError(line, f"student id {sid!r} is missing or contains spaces"))
        return
    if not cell["name"]:
        errors.append(RowError(line, "student name is required"))
    phone = _phone(cell["phone"], line, errors)
    batches = _codes(cell["batch"], "batch", line, errors)
    if len(batches) > 1:
        errors.append(RowError(line, "a student belongs to exactly one batch"))
    if cell["password"]:
        errors.append(RowError(line, "students have no password; leave the column empty"))
    if sid in students:
        errors.append(RowError(line, f"student {sid} already on line {students[sid].line}"))
        return
    students[sid] = _Student(line, sid, cell["name"], phone, batches[0] if batches else "")


def _same_phones(students: dict[str, _Student], errors: list[RowError]) -> None:
    """Two students with one phone can never be told apart (neither could be identified)."""
    first: dict[str, _Student] = {}
    for s in sorted(students.values(), key=lambda s: s.line):
        if not s.phone:
            continue
        other = first.setdefault(s.phone, s)
        if other is not s:
            errors.append(RowError(s.line, f"phone {display(s.phone)} is also student {other.student_id}'s "
                                           f"(line {other.line}): every student needs their own number"))


def _phones_taken(students: dict[str, _Student], errors: list[RowError]) -> None:
    """A phone of the file that already belongs to a student of the roster who is not in it."""
    mine = {s.phone: s for s in students.values() if s.phone}
    tails = sorted({phone_tail(p) for p in mine} - {""})
    for chunk in chunks(tails):  # one indexed $in query per chunk, not one lookup per row
        for other in Student.objects(phone_tail__in=list(chunk)).only("student_id", "phone"):
            s = mine.get(other.phone)
            if s is not None and other.student_id != s.student_id and other.student_id not in students:
                errors.append(RowError(s.line, f"phone {display(s.phone)} already belongs to student "
                                               f"{other.student_id} of the roster"))


def _password_update(new: str, current: Optional[str]) -> Optional[str]:
    """The hash to store, or None to keep the current one."""
    if not new:
        return None
    if is_password_hash(new):
        return None if new == current else new
    return None if verify_password(new, current) else hash_password(new)


def read_text(data: bytes, encoding: Optional[str] = None) -> tuple[str, list[RowError]]:
    """The file's text: UTF-8 (with or without Excel's BOM) unless ``encoding`` is given; a byte
    that is not valid in it is reported with its line, and what the file probably is."""
    codec = encoding or "utf-8-sig"
    try:
        return data.decode(codec), []
    except LookupError:
        return "", [RowError(1, f"unknown encoding {encoding!r} (try utf-8, cp1252 or latin-1)")]
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        hint = ""
        if encoding is None:
            try:
                data.decode("cp1252")
                hint = " It looks like Windows-1252 (Latin-1): save it as UTF-8, or import with --encoding cp1252."
            except UnicodeDecodeError:
                hint = " Save it as UTF-8, or give its encoding with --encoding."
        return "", [RowError(line, f"byte 0x{data[exc.start]:02x} at column {column} is not {codec}.{hint}")]


def import_roster(source: Union[str, Path, TextIO], encoding: Optional[str] = None) -> ImportResult:
    """Validate and import; raises CsvImportError (and writes nothing) if any row is bad."""
    if isinstance(source, (str, Path)):
        name = str(source)
        text, errors = read_text(Path(source).read_bytes(), encoding)
        if errors:
            raise CsvImportError(errors, name)
        teachers, students, errors = parse_roster(io.StringIO(text, newline=""))
    else:
        name = getattr(source, "name", "roster")
        teachers, students, errors = parse_roster(source)
    _phones_taken(students, errors)
    hashes = _existing_teachers(list(teachers))
    for t in teachers.values():
        if not t.password and t.email not in hashes:
            errors.append(RowError(t.line, f"new teacher {t.email} needs a password"))
    if errors:
        raise CsvImportError(sorted(errors, key=lambda e: e.line), name)
    return _write(teachers.values(), list(students.values()), hashes)


def import_roster_text(text: str) -> ImportResult:
    return import_roster(io.StringIO(text))


def _existing_teachers(emails: list[str]) -> dict[str, Optional[str]]:
    """Stored teachers among ``emails``: email -> password hash (None if it has none).

    One ``$in`` query per batch of emails, not one lookup per teacher.
    """
    found: dict[str, Optional[str]] = {}
    collection = Teacher._get_collection()
    for chunk in chunks(emails):
        for doc in collection.find({"email": {"$in": list(chunk)}}, {"email": True, "password_hash": True}):
            found[doc["email"]] = doc.get("password_hash")
    return found


def _write_students(students: list[_Student]) -> tuple[int, int]:
    """Upsert students by id; returns (created, updated) as a row-by-row upsert would count them.

    Rows go in batches of consecutive ids. Each batch reads what is stored for its id range
    (one indexed range query; over all batches at most the collection once), then inserts the
    new students, updates the changed ones and leaves unchanged ones alone: an import of the same
    file again writes nothing.
    """
    collection = Student._get_collection()
    projection = {"_id": False, "student_id": True, "name": True, "phone": True, "phone_tail": True, "batch": True}
    created = 0
    for chunk in chunks(sorted(students, key=lambda s: s.student_id)):
        stored = {doc["student_id"]: doc for doc in collection.find(
            {"student_id": {"$gte": chunk[0].student_id, "$lte": chunk[-1].student_id}}, projection)}
        new: list[dict[str, str]] = []
        changed: list[Upsert] = []
        for s in chunk:
            fields = {"name": s.name, "phone": s.phone, "phone_tail": phone_tail(s.phone), "batch": s.batch}
            old = stored.get(s.student_id)
            if old is None:
                new.append({"student_id": s.student_id, **fields})
            elif any(old.get(name) != value for name, value in fields.items()):
                changed.append(({"student_id": s.student_id}, {"$set": fields}))
        created += insert_or_upsert(collection, new, "student_id")
        created += upsert_all(collection, changed)  # 0 unless deleted meanwhile
    return created, len(students) - created


def _write(teachers: Iterable[_Teacher], students: list[_Student],
           hashes: dict[str, Optional[str]]) -> ImportResult:
    """Upsert everything with bulk writes; ``hashes`` are the stored teachers' password hashes."""
    result = ImportResult()
    batches: set[str] = set()
    subjects: set[str] = set()
    now = utcnow()
    teacher_ops: list[Upsert] = []
    for t in teachers:
        fields: dict[str, object] = {
            "name": t.name,
            "assignments": [{"batch": b, "subject": s} for b, s in sorted(t.assignments)],
            "updated_at": now,
        }
        if t.phone:
            fields["phone"] = t.phone
        new_hash = _password_update(t.password, hashes.get(t.email))
        if new_hash:
            fields["password_hash"] = new_hash
        teacher_ops.append(({"email": t.email}, {"$set": fields, "$setOnInsert": {"created_at": now}}))
        batches |= {b for b, _ in t.assignments}
        subjects |= {s for _, s in t.assignments}
    result.teachers_created = upsert_all(Teacher._get_collection(), teacher_ops)
    result.teachers_updated = len(teacher_ops) - result.teachers_created
    result.students_created, result.students_updated = _write_students(students)
    batches |= {s.batch for s in students}
    for document, codes in ((Batch, batches), (Subject, subjects)):
        upsert_all(document._get_collection(),
                   [({"code": code}, {"$setOnInsert": {"name": code}}) for code in sorted(codes)])
    result.batches, result.subjects = len(batches), len(subjects)
    return result
