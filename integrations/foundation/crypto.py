"""Secrets at rest (Fernet under SECRET_KEY) and password hashes (scrypt).

SECRET_KEY may hold several comma-separated keys to rotate: the first encrypts, all decrypt.
Production refuses to start without a key; demo and test use an ephemeral one (secrets saved
with it cannot be read after a restart, so teachers simply log in again).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import threading
from typing import Optional

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from integrations.settings import get_settings

log = logging.getLogger(__name__)

KEYGEN_HINT = (
    "Make one with `python run.py keygen` and put it in .env as SECRET_KEY=<key> "
    "(keep it secret and keep it: secrets saved under a lost key cannot be read)."
)


class SecretKeyError(RuntimeError):
    """SECRET_KEY is missing in production or is not a valid Fernet key."""


class DecryptError(ValueError):
    """A stored secret cannot be decrypted (wrong or rotated-away key, or corrupt data)."""


def generate_key() -> str:
    """A fresh Fernet key as text, for SECRET_KEY."""
    return Fernet.generate_key().decode("ascii")


class SecretBox:
    """Encrypts and decrypts secrets at rest: short texts (credentials, tokens) and bytes (frames)."""

    def __init__(self, keys: list[str]):
        if not keys:
            raise SecretKeyError("SECRET_KEY is empty. " + KEYGEN_HINT)
        try:
            self._fernet = MultiFernet([Fernet(k.strip().encode("ascii")) for k in keys])
        except (ValueError, TypeError, UnicodeEncodeError):
            raise SecretKeyError(
                "SECRET_KEY is not a valid Fernet key (32 url-safe base64 bytes). " + KEYGEN_HINT
            ) from None

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError, ValueError):
            raise DecryptError("stored secret cannot be decrypted with SECRET_KEY") from None

    def encrypt_bytes(self, data: bytes) -> bytes:
        """Binary data at rest (a face frame kept by the outbox), as a Fernet token."""
        return self._fernet.encrypt(bytes(data))

    def decrypt_bytes(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(bytes(token))
        except (InvalidToken, TypeError, ValueError):
            raise DecryptError("stored data cannot be decrypted with SECRET_KEY") from None


def make_secret_box(secret_key: Optional[str], app_env: str) -> SecretBox:
    """Build the box for ``secret_key``; without one, refuse in production, else go ephemeral."""
    if secret_key and secret_key.strip():
        return SecretBox([k for k in secret_key.split(",") if k.strip()])
    if app_env == "production":
        raise SecretKeyError("SECRET_KEY is required when APP_ENV=production. " + KEYGEN_HINT)
    log.warning(
        "SECRET_KEY is not set: using an ephemeral key; encrypted secrets will not survive "
        "a restart (APP_ENV=%s). %s", app_env, KEYGEN_HINT,
    )
    return SecretBox([generate_key()])


_box: Optional[SecretBox] = None
_box_lock = threading.Lock()


def get_secret_box() -> SecretBox:
    """The process-wide box built from settings (SECRET_KEY, APP_ENV)."""
    global _box
    with _box_lock:
        if _box is None:
            settings = get_settings()
            key = settings.secret_key.get_secret_value() if settings.secret_key else None
            _box = make_secret_box(key, settings.app_env)
        return _box


def init_secret_box(settings: object) -> SecretBox:
    """Build and install the box from ``settings`` at start-up, so production fails fast.

    Raises SecretKeyError (with how to make a key) when APP_ENV=production has no SECRET_KEY.
    """
    secret = getattr(settings, "secret_key", None)
    key = secret.get_secret_value() if secret is not None else None
    box = make_secret_box(key, getattr(settings, "app_env", "demo"))
    set_secret_box(box)
    return box


def set_secret_box(box: Optional[SecretBox]) -> None:
    """Replace the process-wide box (start-up with explicit settings, tests)."""
    global _box
    with _box_lock:
        _box = box


# ---------------------------------------------------------------------------------------------
# Password hashes: "scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>", parameters stored per hash so
# they can be raised later without invalidating old hashes.

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _DKLEN = 2**14, 8, 1, 32
HASH_PREFIX = "scrypt$"


def hash_password(password: str, *, n: int = _SCRYPT_N, r: int = _SCRYPT_R, p: int = _SCRYPT_P) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_DKLEN)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def is_password_hash(value: str) -> bool:
    return value.startswith(HASH_PREFIX) and value.count("$") == 5


def verify_password(password: str, stored: Optional[str]) -> bool:
    """Constant-time check of ``password`` against a stored scrypt hash; False if malformed."""
    if not stored or not is_password_hash(stored):
        return False
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode("utf-8"), salt=base64.b64decode(salt),
            n=int(n), r=int(r), p=int(p), dklen=len(expected), maxmem=256 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)
