"""A scriptable fake of the external attendance API, served over real HTTP on loopback.

It implements the contract in docs/external-api.md (HS256 JWTs with ``exp`` via PyJWT, refresh,
logout, roster and attendance endpoints) and lets a test queue exceptional answers per
(method, path): any status with headers (401, 409, 503 + Retry-After...), malformed bodies,
delays longer than the client's timeout, or a dropped connection.

    with FakeAttendanceApi() as api:
        api.add_user("t@x.in", "pw", mentor_id="M1")
        api.script("GET", "/attend", Reply(503, headers={"Retry-After": "1"}))
        client = AttendanceApiClient(api.base_url)
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

import jwt

SECRET = "fake-api-signing-secret-0123456789"


@dataclass
class Reply:
    """One scripted answer. ``raw`` wins over ``body``; ``drop`` closes without answering."""

    status: int = 200
    body: Any = None
    raw: Optional[bytes] = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    at: float

    @property
    def token(self) -> Optional[str]:
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None


class FakeAttendanceApi:
    def __init__(self, *, access_ttl: float = 300, refresh_ttl: float = 3600, prefix: str = "/api/v1"):
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.prefix = prefix
        self.users: dict[str, dict] = {}
        self.assignments: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self.students: dict[str, list[dict]] = defaultdict(list)
        self.attendance: dict[str, dict] = {}  # session_id -> {"meta": {...}, "students": {id: rec}}
        self.latency: dict[str, float] = {}  # path -> seconds added to the default answer
        self.seen: list[Seen] = []
        self.revoked: set[str] = set()
        self._scripts: dict[tuple[str, str], deque[Reply]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # ------------------------------------------------------------------ control

    def start(self) -> "FakeAttendanceApi":
        fake = self

        class Handler(_Handler):
            api = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> "FakeAttendanceApi":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.prefix}"

    def add_user(self, email: str, password: str, *, mentor_id: str, name: str = "", phone: str = "") -> None:
        self.users[email.lower()] = {"password": password, "id": mentor_id, "name": name, "phone": phone}

    def add_student(self, batch: str, student_id: str, name: str, phone: str = "") -> None:
        self.students[batch].append({"student_id": student_id, "name": name, "phone": phone, "batch": batch})

    def script(self, method: str, path: str, *replies: Reply) -> None:
        """Queue answers for the next calls to ``method path`` (path without the prefix)."""
        with self._lock:
            self._scripts[(method.upper(), path)].extend(replies)

    def calls(self, method: Optional[str] = None, path: Optional[str] = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if (method is None or s.method == method) and (path is None or s.path == path)]

    # ------------------------------------------------------------------ tokens

    def issue(self, mentor_id: str, kind: str, ttl: float) -> str:
        now = time.time()
        claims = {"sub": mentor_id, "type": kind, "jti": uuid.uuid4().hex, "iat": int(now), "exp": int(now + ttl)}
        return jwt.encode(claims, SECRET, algorithm="HS256")

    def check(self, token: Optional[str], kind: str) -> Optional[dict]:
        if not token or token in self.revoked:
            return None
        try:
            claims = jwt.decode(token, SECRET, algorithms=["HS256"])
        except jwt.PyJWTError:
            return None
        return claims if claims.get("type") == kind else None

    def _tokens(self, mentor_id: str) -> dict:
        return {
            "access_token": self.issue(mentor_id, "access", self.access_ttl),
            "refresh_token": self.issue(mentor_id, "refresh", self.refresh_ttl),
        }

    # ------------------------------------------------------------------ default behaviour

    def answer(self, seen: Seen) -> Reply:
        method, path, q = seen.method, seen.path, seen.query
        time.sleep(self.latency.get(path, 0.0))
        if (method, path) == ("POST", "/login"):
            body = seen.body if isinstance(seen.body, dict) else {}
            user = self.users.get(str(body.get("email", "")).lower())
            if not user or user["password"] != body.get("password"):
                return Reply(401, {"detail": "invalid credentials"})
            profile = {"id": user["id"], "name": user["name"], "email": body["email"], "phone": user["phone"]}
            return Reply(200, {**self._tokens(user["id"]), "user": profile})
        if (method, path) == ("POST", "/refresh"):
            token = seen.body.get("refresh_token") if isinstance(seen.body, dict) else None
            claims = self.check(token, "refresh")
            if not claims:
                return Reply(401, {"detail": "invalid refresh token"})
            self.revoked.add(token)  # rotate
            return Reply(200, self._tokens(claims["sub"]))
        claims = self.check(seen.token, "access")
        if not claims:
            return Reply(401, {"detail": "invalid or expired token"})
        if (method, path) == ("POST", "/logout"):
            self.revoked.add(seen.token)
            return Reply(204)
        if (method, path) == ("GET", "/attendance") and "mentor_id" in q:
            if q["mentor_id"] != claims["sub"]:
                return Reply(403, {"detail": "not your data"})
            return Reply(200, {"data": [{"batch": b, "subject": s} for b, s in self.assignments[claims["sub"]]]})
        if (method, path) == ("GET", "/attendance") and "session_id" in q:
            stored = self.attendance.get(q["session_id"], {"students": {}})
            return Reply(200, {"data": list(stored["students"].values())})
        if (method, path) == ("GET", "/attend"):
            return Reply(200, {"data": list(self.students.get(q.get("batch", ""), []))})
        if path == "/attendance" and method in ("POST", "PUT"):
            body = seen.body if isinstance(seen.body, dict) else {}
            sid = body.get("session_id")
            with self._lock:
                if method == "PUT" and sid not in self.attendance:
                    return Reply(404, {"detail": "no attendance for this session; POST first"})
                entry = self.attendance.setdefault(sid, {"meta": {}, "students": {}})
                entry["meta"] = {k: v for k, v in body.items() if k != "students"}
                for rec in body.get("students", []):
                    entry["students"][rec["student_id"]] = rec
            return Reply(201 if method == "POST" else 200, {"ok": True})
        return Reply(404, {"detail": "not found"})


class _Handler(BaseHTTPRequestHandler):
    api: FakeAttendanceApi
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def _handle(self) -> None:
        api = self.api
        url = urlsplit(self.path)
        path = url.path[len(api.prefix):] if url.path.startswith(api.prefix) else url.path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        seen = Seen(
            method=self.command,
            path=path,
            query={k: v[0] for k, v in parse_qs(url.query).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            at=time.monotonic(),
        )
        with api._lock:
            api.seen.append(seen)
            queue = api._scripts.get((self.command, path))
            reply = queue.popleft() if queue else None
        if reply is None:
            reply = api.answer(seen)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.drop:
            self.close_connection = True
            return
        data = reply.raw if reply.raw is not None else (b"" if reply.body is None else json.dumps(reply.body).encode())
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if data:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass
