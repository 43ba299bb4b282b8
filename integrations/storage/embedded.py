"""The embedded database: a SecantusDB server run as a child process on DATA_DIR.

With MONGODB_URI unset, every command that needs data uses one MongoDB-compatible server on
loopback, durable (``--sync-on-commit``), its files under ``DATA_DIR/db``. The first command
that needs it starts it and owns it (stops it when it ends); others find it through
``DATA_DIR/mongo.json`` (pid, port) and only connect. SecantusDB is GPL-2.0, so it is only ever
run as a separate program, never imported (see docs/deployment.md).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator, Optional

import pymongo
from pymongo.errors import PyMongoError

log = logging.getLogger(__name__)

SERVER_PROGRAM = "secantusd-py"
INFO_FILE = "mongo.json"
LOCK_FILE = "mongo.lock"
LOG_FILE = "mongo.log"
STORAGE_DIR = "db"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
DATABASE = "attendance"
MEMORY = ":memory:"  # SecantusDB's ephemeral storage (tests)


class EmbeddedDatabaseError(RuntimeError):
    """The embedded server could not be found or started; the message says what to do."""


def _program() -> str:
    beside = Path(sys.executable).parent / SERVER_PROGRAM  # the venv's own console script
    found = str(beside) if beside.exists() else shutil.which(SERVER_PROGRAM)
    if not found:
        raise EmbeddedDatabaseError(
            f"the embedded database needs the SecantusDB package ({SERVER_PROGRAM} not found): "
            "install it with `pip install SecantusDB` (make does), or set MONGODB_URI to a MongoDB server")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process
        return True
    return True


def _answers(uri: str, timeout_s: float = 1.0) -> bool:
    client: pymongo.MongoClient = pymongo.MongoClient(uri, serverSelectionTimeoutMS=int(timeout_s * 1000),
                                                      connectTimeoutMS=int(timeout_s * 1000))
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One process at a time decides whether to start the server (no two servers on one dir)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class EmbeddedServer:
    """One SecantusDB server on ``data_dir`` (or in memory); ``start()`` joins a running one."""

    data_dir: Path
    memory: bool = False  # an ephemeral server for tests: not shared, gone when stopped
    host: str = "127.0.0.1"
    port: Optional[int] = None
    owner: bool = False
    _process: Optional[subprocess.Popen[bytes]] = None
    _log: Optional[IO[bytes]] = None

    @property
    def base_uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}"

    @property
    def uri(self) -> str:
        return f"{self.base_uri}/{DATABASE}"

    @property
    def where(self) -> str:
        return "in memory" if self.memory else str(Path(self.data_dir).resolve() / STORAGE_DIR)

    def start(self) -> "EmbeddedServer":
        """Join the server already running on ``data_dir``, or start one and own it."""
        data_dir = Path(self.data_dir)
        if self.memory:
            self._spawn(data_dir)
            return self
        with _locked(data_dir / LOCK_FILE):
            running = self._running(data_dir)
            if running is not None:
                self.port, self.owner = running, False
                log.info("embedded database already running on port %d (%s)", self.port, self.where)
                return self
            self._spawn(data_dir)
            (data_dir / INFO_FILE).write_text(json.dumps({"pid": self._process.pid, "port": self.port,
                                                          "host": self.host}))
        return self

    def _running(self, data_dir: Path) -> Optional[int]:
        try:
            info = json.loads((data_dir / INFO_FILE).read_text())
            pid, port = int(info["pid"]), int(info["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if _alive(pid) and _answers(f"mongodb://{self.host}:{port}"):
            return port
        return None  # a stale file from a process that died

    def _spawn(self, data_dir: Path) -> None:
        program = _program()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or _free_port()
        storage = MEMORY if self.memory else str(data_dir / STORAGE_DIR)
        args = [program, "--host", self.host, "--port", str(self.port), "--storage-path", storage,
                "--log-level", "WARNING"]
        if not self.memory:
            args.append("--sync-on-commit")  # an acknowledged write survives kill -9
        self._log = open(data_dir / LOG_FILE, "ab")
        self._process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.owner = True
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedDatabaseError(
                    f"the embedded database stopped at start (exit {self._process.returncode}); "
                    f"see {data_dir / LOG_FILE}")
            if _answers(self.base_uri, 0.5):
                log.info("embedded database started on port %d (%s)", self.port, self.where)
                return
            time.sleep(0.1)
        self.stop()
        raise EmbeddedDatabaseError(f"the embedded database did not answer within {START_TIMEOUT_S:.0f} s; "
                                    f"see {data_dir / LOG_FILE}")

    def stop(self) -> None:
        """Stop the server if this process started it (a joined server keeps running)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.owner and not self.memory:
            with contextlib.suppress(OSError):
                info = Path(self.data_dir) / INFO_FILE
                if process is None or json.loads(info.read_text()).get("pid") == process.pid:
                    info.unlink()
        if self._log is not None:
            self._log.close()
            self._log = None
        self.owner = False
