"""Per-teacher tokens and credentials (never one global token).

The client asks a :class:`TokenStore` for a teacher's tokens by key (the teacher's Telegram id
as text). The memory store suits tests and one-process demos; the http roster backend plugs in
a store that keeps them encrypted on the Teacher document.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Optional, Protocol

import jwt


def token_expiry(token: str) -> Optional[float]:
    """The JWT's ``exp`` (epoch seconds), read without checking the signature; None if absent."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


@dataclass(frozen=True)
class Tokens:
    access: str
    refresh: Optional[str] = None

    @property
    def access_exp(self) -> Optional[float]:
        return token_expiry(self.access)

    def __repr__(self) -> str:  # never show tokens
        return "Tokens(<hidden>)"


@dataclass(frozen=True)
class Credentials:
    email: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(email={self.email!r}, password=<hidden>)"


class TokenStore(Protocol):
    def load(self, key: str) -> Optional[Tokens]: ...

    def save_tokens(self, key: str, tokens: Tokens) -> None: ...

    def credentials(self, key: str) -> Optional[Credentials]: ...

    def save_login(
        self, key: str, credentials: Credentials, tokens: Tokens, profile: Optional[dict] = None
    ) -> None: ...

    def clear_tokens(self, key: str) -> None: ...

    def forget(self, key: str) -> None: ...


class MemoryTokenStore:
    """Thread-safe in-process store (tests, demo)."""

    def __init__(self) -> None:
        self._tokens: dict[str, Tokens] = {}
        self._creds: dict[str, Credentials] = {}
        self._lock = threading.Lock()

    def load(self, key: str) -> Optional[Tokens]:
        with self._lock:
            return self._tokens.get(key)

    def save_tokens(self, key: str, tokens: Tokens) -> None:
        with self._lock:
            self._tokens[key] = tokens

    def credentials(self, key: str) -> Optional[Credentials]:
        with self._lock:
            return self._creds.get(key)

    def save_login(
        self, key: str, credentials: Credentials, tokens: Tokens, profile: Optional[dict] = None
    ) -> None:
        with self._lock:
            self._creds[key] = credentials
            self._tokens[key] = tokens

    def clear_tokens(self, key: str) -> None:
        with self._lock:
            self._tokens.pop(key, None)

    def forget(self, key: str) -> None:
        with self._lock:
            self._tokens.pop(key, None)
            self._creds.pop(key, None)

    def forget_credentials(self, key: str) -> None:
        """The stored login stopped working: drop it and the tokens (the binding stays)."""
        self.forget(key)
