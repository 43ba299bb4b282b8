"""Who is asking: logins (admins and the roster's teachers), the session cookie, CSRF, rate limits.

The cookie carries a random token; the database keeps only its SHA-256 (``WebLogin``), so a
stolen database does not hand out logins, and logging out or deactivating ends a login at once.
Every request re-reads the account, so a teacher's batches are always the current ones.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Optional

from bson import ObjectId
from bson.errors import InvalidId

from integrations.foundation.crypto import hash_password, verify_password
from integrations.storage.documents import Teacher, utcnow
from integrations.storage.panel import AdminUser, WebLogin, expiry
from integrations.web import constants as C

ADMIN, TEACHER = "admin", "teacher"
_DUMMY_HASH = hash_password("not-a-real-password")  # an unknown email costs as long as a wrong password


@dataclass(frozen=True)
class Principal:
    """The signed-in person and what they may see."""

    role: str
    id: str
    email: str
    name: str = ""
    batches: frozenset[str] = field(default_factory=frozenset)  # a teacher's own batches
    csrf: str = ""
    token_hash: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    @property
    def actor(self) -> str:
        """How audit events name them."""
        return f"{self.role}:{self.email}"

    def may_see_batch(self, batch: str) -> bool:
        return self.is_admin or batch in self.batches

    def may_see_session(self, teacher_id: Optional[str]) -> bool:
        return self.is_admin or (teacher_id is not None and str(teacher_id) == self.id)


def new_token() -> str:
    return secrets.token_urlsafe(C.TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same(a: Optional[str], b: Optional[str]) -> bool:
    """Constant-time equality of two tokens (False when either is missing)."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


def check_password(email: str, password: str) -> Optional[tuple[str, str]]:
    """(role, id) of the active admin or teacher with these credentials, else None (blocking).

    An admin account wins over a teacher with the same email. Teachers of the http backend have
    no password here and cannot sign in.
    """
    email = email.strip().lower()
    admin = AdminUser.objects(email=email, active=True).only("password_hash").first()
    if admin is not None:
        return (ADMIN, str(admin.id)) if verify_password(password, admin.password_hash) else None
    teacher = Teacher.objects(email=email).only("password_hash", "active").first()
    stored = teacher.password_hash if teacher is not None and teacher.active is not False else None
    ok = verify_password(password, stored or _DUMMY_HASH)
    return (TEACHER, str(teacher.id)) if ok and teacher is not None and stored else None


def principal_for(token: Optional[str]) -> Optional[Principal]:
    """The signed-in person for a cookie token, or None (expired, logged out, deactivated)."""
    if not token or len(token) > 128:
        return None
    digest = token_hash(token)
    login = WebLogin.objects(token_hash=digest, expires_at__gt=utcnow()).first()
    if login is None:
        return None
    try:
        oid = ObjectId(login.principal)
    except (InvalidId, TypeError):
        return None
    if login.role == ADMIN:
        admin = AdminUser.objects(id=oid, active=True).only("email").first()
        if admin is None:
            return None
        return Principal(ADMIN, str(admin.id), admin.email, admin.email, csrf=login.csrf, token_hash=digest)
    teacher = Teacher.objects(id=oid).only("email", "name", "assignments", "active").first()
    if teacher is None or teacher.active is False:
        return None
    batches = frozenset(a.batch for a in teacher.assignments)
    return Principal(TEACHER, str(teacher.id), teacher.email, teacher.name or teacher.email, batches,
                     csrf=login.csrf, token_hash=digest)


def login_expiry(hours: float) -> object:
    return expiry(hours)
