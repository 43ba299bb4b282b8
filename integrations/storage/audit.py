"""The audit trail's document: one attendance decision per entry, append-only.

What is written and when lives in :mod:`integrations.attendance.audit`; writes go through
:func:`integrations.roster.records.add_audit_event`. Entries never hold codes, phone numbers,
passwords or tokens: only ids, outcomes and numbers (scores, distances, attempts left).
"""
from __future__ import annotations

from mongoengine import DateTimeField, DictField, Document, IntField, StringField

from integrations.storage.documents import utcnow

AUDIT_TTL_SECONDS = 400 * 24 * 3600  # kept a little over a year, then MongoDB expires them


class AuditEvent(Document):
    at = DateTimeField(default=utcnow)
    kind = StringField(required=True)  # code_accepted, face_mismatch, manual_mark, session_opened...
    session_id = StringField()  # empty for events outside a session (a binding made or removed)
    student_id = StringField()
    user_id = IntField()  # the Telegram account that acted (student or teacher)
    actor = StringField(default="")  # who decided: "student", "face:local", "teacher:Asha Rao", "admin:..."
    request_id = StringField(default="")  # the update's request id, to find the matching log lines
    data = DictField()  # details: attempts_left, distance_m, similarity, face_distance, reason, ...

    meta = {
        "collection": "audit_events",
        "indexes": [
            ("session_id", "at"),
            ("student_id", "at"),
            {"fields": ["at"], "expireAfterSeconds": AUDIT_TTL_SECONDS},
        ],
    }

    def __repr__(self) -> str:
        return f"<AuditEvent {self.kind} session={self.session_id} student={self.student_id}>"


DOCUMENTS = (AuditEvent,)
