"""Documents of the web admin panel: admin accounts, login sessions and audit events.

Kept apart from :mod:`integrations.storage.documents` (the bots' data) because only the panel
uses them. Writes go through the roster layer (``integrations/roster/records.py``).
"""
from __future__ import annotations

import datetime as dt

from mongoengine import BooleanField, DateTimeField, Document, StringField

from integrations.storage.documents import utcnow

ROLES = ("admin", "teacher")


class AdminUser(Document):
    """A panel administrator (``python run.py admin create EMAIL``); sees and edits everything."""

    email = StringField(required=True)  # lower case
    password_hash = StringField(required=True)  # scrypt (foundation/crypto), never the password
    active = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)

    meta = {"collection": "admin_users", "indexes": [{"fields": ["email"], "unique": True}]}

    def __repr__(self) -> str:  # never show the hash
        return f"<AdminUser {self.email}>"


class WebLogin(Document):
    """One signed-in browser: the cookie holds a random token, the database only its SHA-256.

    Server-side, so logging out, deactivating an account or changing a password ends it at
    once; expired ones are removed by MongoDB's TTL monitor.
    """

    token_hash = StringField(required=True)
    role = StringField(choices=ROLES, required=True)
    principal = StringField(required=True)  # the AdminUser or Teacher id
    csrf = StringField(required=True)  # the token every form of this login must carry
    created_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField(required=True)

    meta = {
        "collection": "web_logins",
        "indexes": [
            {"fields": ["token_hash"], "unique": True},
            "principal",
            {"fields": ["expires_at"], "expireAfterSeconds": 0},
        ],
    }


def expiry(hours: float) -> dt.datetime:
    return utcnow() + dt.timedelta(hours=hours)


DOCUMENTS = (AdminUser, WebLogin)
