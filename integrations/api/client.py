"""HTTP client for the external attendance API.

* Retries live in urllib3 (``Retry`` on one shared ``requests.Session``): connection errors and
  502/503/504, exponential backoff, ``Retry-After`` honoured (capped). Read timeouts are not
  retried: the server may have acted, and the user is waiting.
* Every call has a timeout.
* Tokens are per teacher (``key`` = the teacher's Telegram id as text). The access token's
  ``exp`` is read (no signature check) and refreshed ``refresh_margin`` seconds early; a 401
  refreshes once, then logs in again; a 409 (session conflict) logs out, logs in, and repeats
  the call once.
* Nothing secret is logged: log lines carry method, path, status and timing only.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Optional

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from integrations.api.adapter import (
    ApiAdapter,
    AttendanceSubmission,
    LoginResult,
    RemoteMark,
)
from integrations.api.tokens import Credentials, MemoryTokenStore, Tokens, TokenStore
from integrations.foundation import timing
from integrations.foundation.blocking import run_blocking
from integrations.foundation.errors import (
    API_UNAVAILABLE,
    BAD_CREDENTIALS,
    BAD_RESPONSE,
    CREDENTIALS_CHANGED,
    NOT_LOGGED_IN,
    REJECTED,
    SESSION_CONFLICT,
    SESSION_EXPIRED,
    ApiError,
)
from integrations.roster.base import Assignment, StudentInfo

log = logging.getLogger(__name__)

RETRY_STATUSES = (502, 503, 504)


class _CappedRetry(Retry):
    """urllib3 Retry that never sleeps longer than ``max_retry_after`` for a Retry-After."""

    max_retry_after: float = 30.0

    def get_retry_after(self, response):  # type: ignore[override]
        value = super().get_retry_after(response)
        return None if value is None else min(value, self.max_retry_after)

    def new(self, **kw):  # keep the cap on the copies urllib3 makes per attempt
        retry = super().new(**kw)
        retry.max_retry_after = self.max_retry_after
        return retry


def build_session(
    *, attempts: int, backoff_factor: float, backoff_max: float, max_retry_after: float, pool_maxsize: int
) -> requests.Session:
    """A Session whose adapter retries ``attempts - 1`` times (so ``attempts`` tries in all)."""
    retries = max(0, attempts - 1)
    retry = _CappedRetry(
        total=retries,
        connect=retries,
        read=0,
        status=retries,
        other=0,
        backoff_factor=backoff_factor,
        backoff_max=backoff_max,
        status_forcelist=RETRY_STATUSES,
        # The contract makes POST/PUT idempotent per session and student, so 5xx can be retried.
        allowed_methods=frozenset({"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"}),
        respect_retry_after_header=True,
        raise_on_status=False,  # hand back the last response; we turn it into ApiError
    )
    retry.max_retry_after = max_retry_after
    adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=pool_maxsize)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"Accept": "application/json", "User-Agent": "attendance-flows/0.1"})
    return session


class AttendanceApiClient:
    """Thread-safe client; share one per process."""

    def __init__(
        self,
        base_url: str,
        login_endpoint: str = "/login",
        *,
        timeout: float = 10.0,
        attempts: int = 3,
        backoff_factor: float = 0.5,
        backoff_max: float = 8.0,
        max_retry_after: float = 30.0,
        pool_maxsize: int = 32,
        max_workers: int = 16,
        refresh_margin: float = 60.0,
        store: Optional[TokenStore] = None,
        adapter: Optional[ApiAdapter] = None,
        clock: Callable[[], float] = time.time,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.refresh_margin = refresh_margin
        self.store: TokenStore = store if store is not None else MemoryTokenStore()
        self.adapter = adapter or ApiAdapter(login_endpoint)
        self.clock = clock
        self._http = build_session(
            attempts=attempts,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            max_retry_after=max_retry_after,
            pool_maxsize=pool_maxsize,
        )
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="api")
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> "AttendanceApiClient":
        options: dict[str, Any] = {"timeout": settings.api_timeout_seconds}
        options.update(overrides)
        return cls(settings.base_url, settings.jwt_login_endpoint, **options)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    # ------------------------------------------------------------------ transport

    def _url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def _send(
        self,
        method: str,
        path: str,
        *,
        token: Optional[str] = None,
        json: Any = None,
        params: Optional[dict] = None,
    ) -> requests.Response:
        """One call (urllib3 retries inside); transport failures and 5xx become ApiError."""
        headers = {"Authorization": f"Bearer {token}"} if token else None
        started = time.monotonic()
        try:
            resp = self._http.request(
                method, self._url(path), json=json, params=params, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            timing.record(f"{method} {path}", time.monotonic() - started, False)
            log.warning("api %s %s failed: %s", method, path, type(exc).__name__)
            raise ApiError(API_UNAVAILABLE, f"{method} {path}: {type(exc).__name__}") from None
        elapsed = time.monotonic() - started
        timing.record(f"{method} {path}", elapsed, resp.status_code < 500)
        log.debug("api %s %s -> %s in %.3fs", method, path, resp.status_code, elapsed)
        if resp.status_code >= 500:
            log.warning("api %s %s -> %s", method, path, resp.status_code)
            raise ApiError(API_UNAVAILABLE, f"{method} {path}: HTTP {resp.status_code}", status=resp.status_code)
        return resp

    @staticmethod
    def _json(resp: requests.Response, what: str) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise ApiError(BAD_RESPONSE, f"{what}: body is not JSON", status=resp.status_code) from None

    def _check(self, resp: requests.Response, what: str) -> Any:
        if resp.status_code in (200, 201, 202):
            return self._json(resp, what)
        if resp.status_code == 204:
            return None
        raise ApiError(REJECTED, f"{what}: HTTP {resp.status_code}", status=resp.status_code)

    # ------------------------------------------------------------------ auth

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def authenticate(self, email: str, password: str) -> LoginResult:
        """Log in and return tokens and profile without storing anything."""
        resp = self._send("POST", self.adapter.login_path, json=self.adapter.login_body(email, password))
        if resp.status_code in (400, 401, 403, 404):
            raise ApiError(BAD_CREDENTIALS, "login refused", status=resp.status_code)
        return self.adapter.parse_login(self._check(resp, "login"))

    def login(self, key: str, email: str, password: str, profile: Optional[dict] = None) -> LoginResult:
        """Authenticate and, only if the answer is complete, store credentials and tokens."""
        result = self.authenticate(email, password)
        with self._lock(key):
            self.store.save_login(key, Credentials(email, password), Tokens(result.access, result.refresh), profile)
        log.info("api login ok for teacher %s", key)
        return result

    def logout(self, key: str) -> None:
        """Best-effort server logout, then forget tokens and credentials for ``key``."""
        with self._lock(key):
            tokens = self.store.load(key)
            self.logout_tokens(tokens)
            self.store.forget(key)

    def logout_tokens(self, tokens: Optional[Tokens]) -> None:
        """Best-effort server logout of one token pair (errors are ignored)."""
        if tokens is None:
            return
        try:
            self._send("POST", self.adapter.logout_path, token=tokens.access)
        except ApiError:
            log.info("api logout failed; continuing")

    def _relogin(self, key: str) -> Tokens:
        creds = self.store.credentials(key)
        if creds is None:
            raise ApiError(NOT_LOGGED_IN, "no stored credentials")
        try:
            result = self.authenticate(creds.email, creds.password)
        except ApiError as exc:
            if exc.message_key == BAD_CREDENTIALS:
                # The password changed (or the account was reset) since the teacher logged in: the
                # stored login is useless, forget it so the teacher is asked to log in again.
                forget = getattr(self.store, "forget_credentials", None)
                forget(key) if forget is not None else self.store.clear_tokens(key)
                log.warning("api re-login refused for teacher %s: stored credentials forgotten", key)
                raise ApiError(CREDENTIALS_CHANGED, "stored credentials refused on re-login",
                               status=exc.status) from None
            raise
        tokens = Tokens(result.access, result.refresh)
        self.store.save_tokens(key, tokens)
        log.info("api re-login ok for teacher %s", key)
        return tokens

    def _refresh(self, key: str, tokens: Tokens) -> Tokens:
        """Refresh with the refresh token; fall back to a fresh login if that is refused."""
        if tokens.refresh:
            resp = self._send("POST", self.adapter.refresh_path, json=self.adapter.refresh_body(tokens.refresh))
            if resp.status_code in (200, 201):
                access, rotated = self.adapter.parse_refresh(self._json(resp, "refresh"))
                fresh = Tokens(access, rotated or tokens.refresh)
                self.store.save_tokens(key, fresh)
                log.info("api token refreshed for teacher %s", key)
                return fresh
            log.info("api refresh refused (HTTP %s) for teacher %s; logging in", resp.status_code, key)
        return self._relogin(key)

    def _renew(self, key: str, stale: Optional[Tokens], how: str) -> Tokens:
        """Refresh or re-login under the teacher's lock, unless another thread already did."""
        with self._lock(key):
            current = self.store.load(key)
            if current is not None and (stale is None or current.access != stale.access):
                return current  # another thread renewed (or logged in) while we waited
            if how == "refresh" and current is not None:
                return self._refresh(key, current)
            return self._relogin(key)

    def _fresh_tokens(self, key: str) -> Tokens:
        tokens = self.store.load(key)
        if tokens is None:
            return self._renew(key, None, "login")
        exp = tokens.access_exp
        if exp is not None and exp - self.clock() <= self.refresh_margin:
            return self._renew(key, tokens, "refresh")
        return tokens

    def _authed(self, key: str, method: str, path: str, *, json: Any = None, params: Optional[dict] = None) -> Any:
        """Call with the teacher's token, handling 401 and 409 as the contract says."""
        tokens = self._fresh_tokens(key)
        resp = self._send(method, path, token=tokens.access, json=json, params=params)
        if resp.status_code == 401:
            tokens = self._renew(key, tokens, "refresh")
            resp = self._send(method, path, token=tokens.access, json=json, params=params)
            if resp.status_code == 401:
                tokens = self._renew(key, tokens, "login")
                resp = self._send(method, path, token=tokens.access, json=json, params=params)
                if resp.status_code == 401:
                    raise ApiError(SESSION_EXPIRED, f"{method} {path}: still 401 after re-login", status=401)
        elif resp.status_code == 409:
            log.info("api session conflict on %s %s for teacher %s; logging in again", method, path, key)
            with self._lock(key):
                current = self.store.load(key)
                if current is not None and current.access == tokens.access:  # not yet handled by another call
                    self.logout_tokens(current)
                    self.store.clear_tokens(key)
            tokens = self._renew(key, None, "login")
            resp = self._send(method, path, token=tokens.access, json=json, params=params)
            if resp.status_code == 409:
                raise ApiError(SESSION_CONFLICT, f"{method} {path}: still 409 after re-login", status=409)
        return self._check(resp, f"{method} {path}")

    # ------------------------------------------------------------------ calls

    def assignments(self, key: str, mentor_id: str) -> list[Assignment]:
        """The teacher's batches and subjects."""
        a = self.adapter
        return a.parse_assignments(self._authed(key, "GET", a.assignments_path, params=a.assignments_params(mentor_id)))

    def students(self, key: str, batch: str, subject: str) -> list[StudentInfo]:
        """Students of one batch for one subject."""
        a = self.adapter
        payload = self._authed(key, "GET", a.students_path, params=a.students_params(batch, subject))
        return a.parse_students(payload, batch)

    async def students_of_batches(self, key: str, batches: Iterable[str], subject: str) -> dict[str, list[StudentInfo]]:
        """Load several batches concurrently; all or nothing (the first error is raised)."""
        batches = list(dict.fromkeys(batches))
        results = await asyncio.gather(
            *(run_blocking(self.students, key, b, subject, executor=self._executor) for b in batches)
        )
        return dict(zip(batches, results))

    def submit_attendance(self, key: str, submission: AttendanceSubmission, *, first: bool) -> None:
        """POST the first student of a session, PUT the others."""
        a = self.adapter
        self._authed(key, "POST" if first else "PUT", a.attendance_path, json=a.attendance_body(submission))

    def session_attendance(self, key: str, session_id: str) -> list[RemoteMark]:
        """What the API holds for one session (for the report)."""
        a = self.adapter
        return a.parse_report(self._authed(key, "GET", a.attendance_path, params=a.report_params(session_id)))
