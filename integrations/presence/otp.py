"""One-time codes for a class session: generation, constant-time check, attempts policy.

The caller persists the failure counter (per session and student); this module is pure logic.
Malformed input (letters, wrong length) is *not* counted as an attempt: it cannot guess a code,
and counting typos would lock honest students out.
"""
from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any, Callable, Optional

OTP_DIGITS = 6
_WHITESPACE = re.compile(r"\s+")
_ASCII_DIGITS = re.compile(r"[0-9]+")
# Digits of the Indian scripts (Devanagari, Bengali, Gurmukhi, Gujarati, Odia, Tamil, Telugu,
# Kannada, Malayalam), as a phone keyboard in Hindi or Telugu types them: "४२" is "42".
_INDIAN_DIGITS = {zero + d: str(d) for zero in (0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66,
                                                0x0CE6, 0x0D66) for d in range(10)}


class OtpUnavailable(RuntimeError):
    """No free code was found after the allowed number of draws (too many active sessions)."""


def new_code(
    is_taken: Callable[[str], bool] = lambda code: False,
    *,
    digits: int = OTP_DIGITS,
    max_draws: int = 50,
) -> str:
    """A random ``digits``-digit code (leading zeros kept) not used by an active session.

    Raises :class:`OtpUnavailable` after ``max_draws`` collisions; with 10**6 codes that only
    happens when the code space is nearly full or ``is_taken`` is broken (always True).
    """
    for _ in range(max(1, max_draws)):
        code = f"{secrets.randbelow(10**digits):0{digits}d}"
        if not is_taken(code):
            return code
    raise OtpUnavailable(f"no free {digits}-digit code after {max_draws} draws")


def normalize(text: Any, *, digits: int = OTP_DIGITS) -> Optional[str]:
    """The code with all whitespace removed, or None if it is not exactly ``digits`` digits.

    Only 0-9 count, and the same digits written in an Indian script (read as 0-9):
    ``str.isdigit`` would accept "²" or Arabic-Indic digits.
    """
    if not isinstance(text, str):
        return None
    cleaned = _WHITESPACE.sub("", text).translate(_INDIAN_DIGITS)
    if len(cleaned) != digits or not _ASCII_DIGITS.fullmatch(cleaned):
        return None
    return cleaned


def codes_equal(entered: str, expected: str) -> bool:
    """Constant-time comparison, so response time leaks nothing about the code."""
    return hmac.compare_digest(entered.encode("ascii", "replace"), expected.encode("ascii", "replace"))


@dataclass(frozen=True)
class OtpResult:
    """Outcome of :meth:`OtpPolicy.check`. ``failures`` is the new counter to persist."""

    ok: bool
    reason: str  # ok | malformed | wrong | locked
    failures: int
    attempts_left: int
    max_attempts: int

    @property
    def message_key(self) -> str:
        return self.reason

    @property
    def locked(self) -> bool:
        return self.attempts_left <= 0 and not self.ok

    def params(self) -> dict[str, Any]:
        return {"attempts_left": self.attempts_left, "max_attempts": self.max_attempts}


@dataclass(frozen=True)
class OtpPolicy:
    """After ``max_attempts`` wrong codes the student is locked out of that session.

    The wrong attempt that reaches the limit already reports ``locked`` (no point telling the
    student "0 attempts left, try again").
    """

    max_attempts: int = 5

    def check(self, entered: Any, expected: str, failures: int = 0) -> OtpResult:
        limit = max(1, int(self.max_attempts))
        try:
            failures = max(0, int(failures or 0))
        except (TypeError, ValueError):
            failures = limit  # an unreadable counter must not reopen a locked session
        if failures >= limit:
            return OtpResult(False, "locked", failures, 0, limit)
        code = normalize(entered, digits=len(expected) if expected else OTP_DIGITS)
        if code is None:
            return OtpResult(False, "malformed", failures, limit - failures, limit)
        if expected and codes_equal(code, expected):
            return OtpResult(True, "ok", failures, limit - failures, limit)
        failures += 1
        left = limit - failures
        return OtpResult(False, "locked" if left <= 0 else "wrong", failures, left, limit)
