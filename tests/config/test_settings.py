"""Settings: defaults run the demo; bad values stop start-up with one message naming them all."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from integrations.settings import SettingsError, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_the_offline_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("APP_ENV", "STORE", "ROSTER_BACKEND", "FACE_VERIFIER"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(_env_file=None)
    assert (settings.store, settings.roster_backend, settings.face_verifier) == ("mongo", "local", "local")
    assert settings.mongodb_uri is None  # the embedded database on DATA_DIR
    assert settings.missing_for_telegram() == ["API_ID", "API_HASH", "TEACHER_BOT_TOKEN", "STUDENT_BOT_TOKEN"]


def test_every_bad_setting_is_named_in_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERIFY_WORKERS", "many")
    monkeypatch.setenv("FACE_VERIFIER", "magic")
    monkeypatch.setenv("TIMEZONE", "Mars/Olympus")
    monkeypatch.setenv("TEACHER_BOT_TOKEN", "")
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None)
    message = str(err.value)
    for name in ("VERIFY_WORKERS", "FACE_VERIFIER", "TIMEZONE"):
        assert name in message


def test_a_malformed_secret_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_ID", "12345")
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None, api_hash=["not", "a", "string"])
    assert "API_HASH" in str(err.value) and "not" not in str(err.value).split("API_HASH")[1]


def test_run_without_telegram_settings_names_what_is_missing() -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    run = subprocess.run([sys.executable, "run.py"], cwd=REPO, env=env, capture_output=True, text=True)
    assert run.returncode == 2
    assert "API_ID, API_HASH, TEACHER_BOT_TOKEN, STUDENT_BOT_TOKEN" in run.stderr


def test_production_refuses_the_embedded_database_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONGODB_URI", raising=False)
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None, app_env="production")
    assert "MONGODB_URI" in str(err.value) and "ALLOW_EMBEDDED_DB=1" in str(err.value)
    assert load_settings(_env_file=None, app_env="production", allow_embedded_db=True).mongodb_uri is None
    server = load_settings(_env_file=None, app_env="production", mongodb_uri="mongodb://db:27017/attendance")
    assert server.mongodb_uri == "mongodb://db:27017/attendance"


def test_production_refuses_the_in_memory_conversation_store() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None, app_env="production", store="memory", mongodb_uri="mongodb://db/attendance")
    assert "STORE" in str(err.value)


def test_a_mongomock_uri_is_refused_with_a_hint() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None, mongodb_uri="mongomock://localhost/attendance")
    assert "MONGODB_URI" in str(err.value) and "embedded" in str(err.value)
