"""The embedded database: started on demand, shared by concurrent commands, durable, clear errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pymongo
import pytest

from integrations.storage import embedded
from integrations.storage.connection import open_database
from integrations.storage.embedded import INFO_FILE, EmbeddedDatabaseError, EmbeddedServer

REPO = Path(__file__).resolve().parents[2]


def test_started_on_demand_shared_and_stopped_with_its_owner(tmp_path: Path) -> None:
    owner = EmbeddedServer(tmp_path).start()
    try:
        assert owner.owner and (tmp_path / INFO_FILE).exists()
        joined = EmbeddedServer(tmp_path).start()  # a second command finds the running server
        assert not joined.owner and joined.port == owner.port
        pymongo.MongoClient(owner.uri).get_database().things.insert_one({"n": 1})
        joined.stop()  # a joined server keeps running
        assert pymongo.MongoClient(owner.uri, serverSelectionTimeoutMS=2000).get_database().things.count_documents({}) == 1
    finally:
        owner.stop()
    assert not (tmp_path / INFO_FILE).exists()


def test_data_survives_a_kill_9_of_the_server(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path).start()
    pymongo.MongoClient(server.uri).get_database().marks.insert_one({"student": "S1"})
    pid = json.loads((tmp_path / INFO_FILE).read_text())["pid"]
    os.kill(pid, signal.SIGKILL)  # --sync-on-commit: an acknowledged write is on disk
    server._process.wait()
    again = EmbeddedServer(tmp_path).start()  # the stale pid file is ignored
    try:
        assert again.owner and again.port is not None
        assert pymongo.MongoClient(again.uri).get_database().marks.count_documents({"student": "S1"}) == 1
    finally:
        again.stop()
        server.stop()


def test_a_missing_server_program_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "SERVER_PROGRAM", "no-such-secantusd")
    monkeypatch.setattr(embedded.shutil, "which", lambda name: None)
    with pytest.raises(EmbeddedDatabaseError) as err:
        EmbeddedServer(tmp_path).start()
    assert "pip install SecantusDB" in str(err.value) and "MONGODB_URI" in str(err.value)


def test_open_database_prefers_mongodb_uri(tmp_path: Path) -> None:
    from tests.conftest import fresh_db_uri

    db = open_database(fresh_db_uri("given"), tmp_path)
    try:
        assert db.embedded is None and db.description.startswith("MongoDB server ")
        assert not (tmp_path / INFO_FILE).exists()
    finally:
        db.close()


def test_import_then_stats_in_new_processes_see_the_same_data(tmp_path: Path) -> None:
    """The issue's acceptance check: roster import, then stats in another process."""
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "APP_ENV")}
    env["DATA_DIR"] = str(tmp_path / "data")
    run = lambda *args: subprocess.run([sys.executable, "run.py", *args], cwd=REPO, env=env,  # noqa: E731
                                       capture_output=True, text=True, timeout=300)
    imported = run("roster", "import", "flows/scripts/fixtures/roster.csv")
    assert imported.returncode == 0, imported.stderr
    stats = run("stats")
    assert stats.returncode == 0, stats.stderr
    assert "students: 7" in stats.stdout and "embedded at" in stats.stdout, stats.stdout
    assert not (tmp_path / "data" / INFO_FILE).exists()  # each command stopped the server it started
