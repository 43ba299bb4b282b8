"""Form validation: each function returns the cleaned values and an error per field name.

Errors are shown next to their field; nothing is written unless a form has no errors.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from integrations.foundation.phones import normalise_phone
from integrations.web import constants as C

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")  # safe in a photo's path (presence.faces.safe_id)
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.&+-]{0,47}$")
MIN_PASSWORD = 10


@dataclass
class Form:
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, message)


def text(data: Mapping[str, Any], name: str, limit: int = 200) -> str:
    value = data.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def phone_field(form: Form, raw: str, name: str = "phone") -> None:
    digits = normalise_phone(raw)
    if raw and not 10 <= len(digits) <= 15:
        form.error(name, "A phone number has 10 to 15 digits.")
    form.values[name] = digits


def password_field(form: Form, data: Mapping[str, Any], required: bool) -> None:
    password = data.get("password") if isinstance(data.get("password"), str) else ""
    confirm = data.get("password2") if isinstance(data.get("password2"), str) else ""
    if not password and not required:
        form.values["password"] = ""
        return
    if len(password) < MIN_PASSWORD:
        form.error("password", f"At least {MIN_PASSWORD} characters.")
    elif len(password) > 256:
        form.error("password", "At most 256 characters.")
    elif password != confirm:
        form.error("password2", "The two passwords differ.")
    form.values["password"] = password


def parse_assignments(raw: str, batches: set[str], subjects: set[str], form: Form) -> list[tuple[str, str]]:
    """Lines of ``BATCH / SUBJECT``; unknown or inactive codes are errors."""
    pairs: list[tuple[str, str]] = []
    problems = []
    for number, line in enumerate(raw.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        batch, sep, subject = (part.strip() for part in line.partition("/"))
        if not sep or not batch or not subject:
            problems.append(f"line {number}: write BATCH / SUBJECT")
        elif batch not in batches:
            problems.append(f"line {number}: no active batch {batch}")
        elif subject not in subjects:
            problems.append(f"line {number}: no active subject {subject}")
        else:
            pairs.append((batch, subject))
    if problems:
        form.error("assignments", "; ".join(problems[:5]) + (" …" if len(problems) > 5 else ""))
    return sorted(set(pairs))


def teacher_form(data: Mapping[str, Any], batches: set[str], subjects: set[str], creating: bool) -> Form:
    form = Form()
    email = text(data, "email", 254).lower()
    if not EMAIL.match(email):
        form.error("email", "Enter an email address like name@example.edu.")
    form.values["email"] = email
    name = text(data, "name", 120)
    if not name:
        form.error("name", "A name is required.")
    form.values["name"] = name
    phone_field(form, text(data, "phone", 40))
    password_field(form, data, required=creating)
    raw = data.get("assignments") if isinstance(data.get("assignments"), str) else ""
    form.values["assignments_text"] = raw[:5000]
    form.values["assignments"] = parse_assignments(raw[:5000], batches, subjects, form)
    return form


def code_form(data: Mapping[str, Any], creating: bool) -> Form:
    form = Form()
    code = text(data, "code", 48)
    if creating and not CODE.match(code):
        form.error("code", "Letters, digits, spaces and - _ . & + (at most 48).")
    form.values["code"] = code
    form.values["name"] = text(data, "name", 120)
    return form


def student_form(data: Mapping[str, Any], batches: set[str], creating: bool) -> Form:
    form = Form()
    if creating:
        sid = text(data, "student_id", 64)
        if not STUDENT_ID.match(sid) or ".." in sid:
            form.error("student_id", "Letters, digits and _ . @ + - (no spaces), at most 64.")
        form.values["student_id"] = sid
    name = text(data, "name", 120)
    if not name:
        form.error("name", "A name is required.")
    form.values["name"] = name
    phone_field(form, text(data, "phone", 40))
    batch = text(data, "batch", 48)
    if batch not in batches:
        form.error("batch", "Choose one of the active batches.")
    form.values["batch"] = batch
    return form


def extend_form(data: Mapping[str, Any]) -> Form:
    form = Form()
    raw = text(data, "minutes", 4)
    if not raw.isdigit() or not 1 <= int(raw) <= C.EXTEND_MAX_MIN:
        form.error("minutes", f"A whole number of minutes from 1 to {C.EXTEND_MAX_MIN}.")
    else:
        form.values["minutes"] = int(raw)
    return form


def mark_form(data: Mapping[str, Any], roster_ids: set[str]) -> Form:
    form = Form()
    sid = text(data, "student_id", 64)
    reason = text(data, "reason", C.REASON_MAX_LEN + 1)
    if sid not in roster_ids:
        form.error("student_id", "Choose a student of this session.")
    if not reason:
        form.error("reason", "Say why (it is kept with the record).")
    elif len(reason) > C.REASON_MAX_LEN:
        form.error("reason", f"At most {C.REASON_MAX_LEN} characters.")
    form.values.update(student_id=sid, reason=reason[: C.REASON_MAX_LEN])
    return form


def date_range(params: Mapping[str, Any], today: dt.date) -> Form:
    """``from`` and ``to`` (inclusive) as dates; default: the last HISTORY_DEFAULT_DAYS days."""
    form = Form()
    values: dict[str, Optional[dt.date]] = {}
    for name, default in (("from", today - dt.timedelta(days=C.HISTORY_DEFAULT_DAYS - 1)), ("to", today)):
        raw = text(params, name, 10)
        try:
            values[name] = dt.date.fromisoformat(raw) if raw else default
        except ValueError:
            form.error(name, "A date as YYYY-MM-DD.")
            values[name] = default
    if values["from"] and values["to"] and values["from"] > values["to"]:
        form.error("to", "The end is before the start.")
    form.values.update(values)
    raw = text(params, "threshold", 5)
    try:
        form.values["threshold"] = float(raw) if raw else None
        if form.values["threshold"] is not None and not 0 <= form.values["threshold"] <= 100:
            raise ValueError
    except ValueError:
        form.error("threshold", "A percentage from 0 to 100.")
        form.values["threshold"] = None
    return form
