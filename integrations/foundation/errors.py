"""One error type for everything the roster layer can fail with.

Flows show ``message_key`` to the user through their own text catalogue, so the key (not the
message) is the contract: ``api_unavailable``, ``bad_credentials``, ``bad_response``, ...
Messages never contain request bodies, passwords or tokens.
"""
from __future__ import annotations

from typing import Optional

# Keys the flows can rely on.
API_UNAVAILABLE = "api_unavailable"  # connection error, timeout, 5xx after retries
BAD_CREDENTIALS = "bad_credentials"  # login refused
BAD_RESPONSE = "bad_response"  # malformed or partial answer
SESSION_EXPIRED = "session_expired"  # 401 even after refresh and a fresh login
SESSION_CONFLICT = "session_conflict"  # 409 even after logout and a fresh login
NOT_LOGGED_IN = "not_logged_in"  # no stored credentials for this teacher
REJECTED = "rejected"  # any other 4xx
NOT_OWN_CONTACT = "not_own_contact"  # the shared contact is somebody else's
UNKNOWN_TEACHER = "unknown_teacher"
UNKNOWN_SESSION = "unknown_session"
UNKNOWN_STUDENT = "unknown_student"
TEACHER_BOUND_ELSEWHERE = "teacher_bound_elsewhere"  # account already linked to another Telegram user
CREDENTIALS_CHANGED = "credentials_changed"  # the stored login was refused on a re-login (password changed)


class RosterError(Exception):
    """Base error of every roster backend; ``message_key`` is stable, the text is for logs."""

    def __init__(self, message_key: str, message: str = "", *, status: Optional[int] = None):
        self.message_key = message_key
        self.status = status
        super().__init__(message or message_key)


class ApiError(RosterError):
    """The external attendance API failed or answered something we cannot use."""
PHONE_MISMATCH = "phone_mismatch"  # the contact's phone is not the account's phone
OTP_IN_USE = "otp_in_use"  # another open session already uses this code
DUPLICATE = "duplicate"  # the web panel: that email, student id or code exists already

# Keys that mean "the service is not answering" rather than "you did it wrong".
UNAVAILABLE_KEYS = frozenset({API_UNAVAILABLE, BAD_RESPONSE, SESSION_CONFLICT, SESSION_EXPIRED, NOT_LOGGED_IN,
                              REJECTED, CREDENTIALS_CHANGED})
# Keys that mean "the teacher must log in again" (the teacher flow asks for the login, not "try later").
RELOGIN_KEYS = frozenset({CREDENTIALS_CHANGED, NOT_LOGGED_IN, UNKNOWN_TEACHER})
