"""kill -9 of a real app process (issue 12): the app runs in its own process on the embedded,
durable database; the test drives a class through it, kills it with SIGKILL at three points and
starts it again, and checks that nothing accepted is lost or doubled.

Kill points: right after a code check; right after a video note was accepted (before its
verdict); while the report timer is pending after /close (the database server is killed too).
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pymongo
import pytest

from integrations.storage.embedded import INFO_FILE

REPO = Path(__file__).resolve().parents[2]
ROSTER = REPO / "flows" / "scripts" / "fixtures" / "roster.csv"
TEACHER = ["asha", 5001, "teacher"]
RAVI, SITA = ["ravi", 6001, "student"], ["sita", 6002, "student"]
KILL_POINTS = ("after a code check", "right after a video note was accepted", "while the report timer is pending")


class AppProcess:
    """One run of ``tests.reliability.app_process``; every bot message it sends is kept."""

    def __init__(self, env: dict[str, str], log: list[dict[str, Any]]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.reliability.app_process"], cwd=REPO, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, bufsize=1)
        self.log = log
        self.lines: "queue.Queue[dict[str, Any]]" = queue.Queue()
        self._ids = 0
        threading.Thread(target=self._read, daemon=True).start()
        self._until(lambda m: m.get("ready"), 120)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            message = json.loads(raw)
            if "out" in message:
                self.log.append(message)
            self.lines.put(message)

    def _until(self, match: Any, within: float) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            try:
                message = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"app process: nothing matched within {within} s; exit {self.proc.poll()}")
            if match(message):
                return message

    def send(self, user: list[Any], line: str) -> None:
        self._ids += 1
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": self._ids, "user": user, "line": line}) + "\n")
        self.proc.stdin.flush()
        number = self._ids
        self._until(lambda m: m.get("done") == number, 120)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"stop": True}) + "\n")
        self.proc.stdin.flush()
        assert self.proc.wait(60) == 0


def texts(log: list[dict[str, Any]], user: list[Any], since: int = 0) -> list[str]:
    return [m["text"] for m in log[since:] if m["out"] == user[1] and m["bot"] == user[2]]


def wait_text(log: list[dict[str, Any]], user: list[Any], needle: str, since: int = 0, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not any(needle in t for t in texts(log, user, since)):
        assert time.monotonic() < deadline, f"{user[0]} never got {needle!r}: {texts(log, user, since)}"
        time.sleep(0.05)


def server_uri(data_dir: Path) -> str:
    info = json.loads((data_dir / INFO_FILE).read_text())
    return f"mongodb://127.0.0.1:{info['port']}/attendance"


def kill_server(data_dir: Path) -> None:
    info = data_dir / INFO_FILE
    if info.exists():
        pid = json.loads(info.read_text())["pid"]
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_at_three_points_loses_and_doubles_nothing(tmp_path: Path, faces_dir: Path) -> None:
    data_dir = tmp_path / "data"
    faces = tmp_path / "faces" / "PFS-101"
    faces.mkdir(parents=True)
    for student_id in ("22PFS001", "22PFS002"):
        shutil.copyfile(faces_dir / "obama_1.jpg", faces / f"{student_id}.jpg")
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "APP_ENV")}
    env.update(DATA_DIR=str(data_dir), STORE="mongo", FACES_DIR=str(tmp_path / "faces"), APP_ENV="test",
               REPORT_BUFFER_SECONDS="3", VERIFY_WORKERS="2", TIMEZONE="UTC")
    note = str(faces_dir / "note_obama_2.mp4")
    log: list[dict[str, Any]] = []
    app: Optional[AppProcess] = None
    try:
        subprocess.run([sys.executable, "run.py", "roster", "import", str(ROSTER)], cwd=REPO, env=env, check=True,
                       capture_output=True, timeout=120)
        app = AppProcess(env, log)
        for line in ("/start", "/contact +919848000001", "asha.rao@example.edu", "demo-pass-1",
                     "/tap 📝 Take attendance", "/tap PFS-101", "/tap Done ✔", "/tap Python", "/tap 10 min", "/tap 50",
                     "/location 17.385 78.4867 5"):
            app.send(TEACHER, line)
        opened = next(t for t in texts(log, TEACHER) if "Code:" in t)
        code = opened.split("Code: ")[1][:6]
        for line in ("/start", "/contact +919000010001", code):
            app.send(RAVI, line)
        assert any("Code accepted" in t for t in texts(log, RAVI))

        app.kill()  # 1: after a code check
        app = AppProcess(env, log)
        mark = len(log)
        app.send(RAVI, "/location 17.38510 78.48670 5")  # the conversation continues where it was
        assert any("in class" in t for t in texts(log, RAVI, mark)), texts(log, RAVI, mark)
        for line in ("/start", "/contact +919000010002", code, "/location 17.38510 78.48670 5"):
            app.send(SITA, line)
        mark = len(log)
        app.send(SITA, f"/video {note}")
        assert any("Video received" in t for t in texts(log, SITA, mark))

        app.kill()  # 2: right after a video note was accepted, before its verdict
        app = AppProcess(env, log)
        wait_text(log, SITA, "interrupted", mark)  # told to record again, not left waiting
        mark = len(log)
        app.send(SITA, f"/video {note}")
        wait_text(log, SITA, "Marked present", mark)
        app.send(RAVI, f"/video {note}")
        wait_text(log, RAVI, "Marked present", mark)
        app.send(TEACHER, "/close")
        assert any("Session closed" in t for t in texts(log, TEACHER, mark))

        app.kill()  # 3: while the report timer is pending (and the database dies too)
        kill_server(data_dir)
        time.sleep(3.5)  # the report falls due while nothing runs
        app = AppProcess(env, log)
        wait_text(log, TEACHER, "📋 Attendance report", mark, within=60)
        time.sleep(1)
        reports = [t for t in texts(log, TEACHER) if "📋 Attendance report" in t]
        assert len(reports) == 1, reports  # exactly once
        assert "Present 2/" in reports[0]
        records = list(pymongo.MongoClient(server_uri(data_dir)).get_database().attendance_records.find({}))
        assert sorted(r["student_id"] for r in records) == ["22PFS001", "22PFS002"]  # each exactly once
        assert all(r["status"] == "present" and r["method"] == "face" for r in records)
        app.stop()
        app = None
    finally:
        if app is not None:
            app.kill()
        kill_server(data_dir)
    print(f"\n[kill -9] {len(KILL_POINTS)} kill points: {', '.join(KILL_POINTS)}")
