"""The roster interface every backend implements, and the plain values it speaks in.

Backends are synchronous (mongoengine and requests block); :mod:`integrations.roster.service`
wraps them for async flows. Every failure is a :class:`~integrations.foundation.errors.RosterError`
with a stable ``message_key``.
"""
from __future__ import annotations

import abc
import datetime as dt
from dataclasses import dataclass, field
from typing import Optional

from integrations.foundation.errors import RosterError  # noqa: F401  (re-exported for backends)


@dataclass(frozen=True)
class TeacherInfo:
    telegram_id: Optional[int]
    email: str
    name: str = ""
    phone: str = ""
    external_id: str = ""  # mentor id in the external API (http backend)


@dataclass(frozen=True, order=True)
class Assignment:
    """A batch and a subject the teacher teaches."""

    batch: str
    subject: str


@dataclass(frozen=True)
class StudentInfo:
    student_id: str
    name: str
    batch: str
    phone: str = ""  # digits only


@dataclass(frozen=True)
class SubmitResult:
    student_id: str
    status: str  # present | absent | failed (the stored status, which may differ from the request)
    method: str
    changed: bool  # False when this exact mark was already stored
    synced: bool  # True when the external API has it (always True for the local backend)


@dataclass(frozen=True)
class ReportRow:
    student_id: str
    name: str
    batch: str
    phone: str
    status: str  # present | absent | failed
    method: str = ""
    time: Optional[dt.datetime] = None
    similarity: Optional[float] = None
    distance_m: Optional[float] = None
    face_distance: Optional[float] = None  # local (dlib) verifier: embedding distance, lower is closer
    locked: bool = False  # locked out of the session by wrong codes (on some Telegram account)
    answers: tuple[tuple[str, str], ...] = ()  # answers the flow keeps with the record, in order
    note: str = ""  # e.g. the teacher's reason for a manual mark
    live: Optional[bool] = None  # the note's liveness: False = doubtful, None = not checked
    liveness_score: Optional[float] = None

    @property
    def liveness(self) -> str:
        """What the report and the CSV say about the note: live, doubtful or nothing."""
        return "" if self.live is None else ("live" if self.live else "doubtful")

    @property
    def shown_status(self) -> str:
        """The status the report shows: present, locked_out, failed or absent."""
        if self.status != "present" and self.locked:
            return "locked_out"
        return self.status


@dataclass(frozen=True)
class Report:
    session_id: str
    subject: str
    batches: tuple[str, ...]
    teacher_name: str
    opened_at: Optional[dt.datetime]
    expires_at: Optional[dt.datetime]
    rows: tuple[ReportRow, ...] = field(default_factory=tuple)
    source: str = "local"  # "api" when statuses came from the external API
    complete: bool = True  # False when the API could not be read and local records were used

    @property
    def present(self) -> list[ReportRow]:
        return [r for r in self.rows if r.status == "present"]

    @property
    def absent(self) -> list[ReportRow]:
        return [r for r in self.rows if r.status != "present"]


class RosterBackend(abc.ABC):
    """Where teachers, their batches/subjects and students come from, and attendance goes to."""

    name: str = "abstract"

    @abc.abstractmethod
    def login(self, telegram_id: int, phone: str, email: str, password: str) -> TeacherInfo:
        """Check the teacher's credentials and bind the account to ``telegram_id``.

        ``phone`` is the teacher's own contact phone (already checked to be their own).
        Raises RosterError("bad_credentials" | "phone_mismatch" | "api_unavailable" | ...).
        """

    @abc.abstractmethod
    def find_teacher(self, telegram_id: int) -> Optional[TeacherInfo]:
        """The teacher bound to ``telegram_id`` (returning teacher), or None."""

    @abc.abstractmethod
    def logout(self, telegram_id: int) -> None:
        """Forget the binding and any stored credentials and tokens."""

    @abc.abstractmethod
    def assignments(self, telegram_id: int) -> list[Assignment]:
        """Batches and subjects the teacher teaches, sorted."""

    @abc.abstractmethod
    def students(self, telegram_id: int, batch: str, subject: str) -> list[StudentInfo]:
        """Students of one batch for one subject, sorted by student id."""

    @abc.abstractmethod
    def submit(
        self,
        session_id: str,
        student_id: str,
        status: str,
        method: str = "face",
        *,
        similarity: Optional[float] = None,
        distance_m: Optional[float] = None,
        face_distance: Optional[float] = None,
        answers: Optional[dict] = None,
        live: Optional[bool] = None,
        liveness_score: Optional[float] = None,
    ) -> SubmitResult:
        """Record attendance idempotently: the same student twice in a session is one record.

        A mark that does not change the stored status changes nothing (and sends nothing)."""

    @abc.abstractmethod
    def report(self, session_id: str) -> Report:
        """Everything the end-of-session report needs: every snapshot student and their status."""

    def close(self) -> None:
        """Release resources (HTTP pools, threads)."""
