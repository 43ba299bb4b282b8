"""Telegram settings are validated up front, every problem in one message, no secrets echoed."""
from __future__ import annotations

import pytest

from integrations.settings import SettingsError, load_settings
from integrations.telegram.config import require_telegram_settings
from tests.telegram.conftest import API_HASH, STUDENT_TOKEN, TEACHER_TOKEN

VALID = dict(api_id=12345, api_hash=API_HASH, teacher_bot_token=TEACHER_TOKEN, student_bot_token=STUDENT_TOKEN)


@pytest.fixture(autouse=True)
def no_env(monkeypatch, tmp_path):
    for name in ("API_ID", "API_HASH", "TEACHER_BOT_TOKEN", "STUDENT_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_valid_settings_give_a_config(tmp_path):
    config = require_telegram_settings(load_settings(**VALID, telegram_session_dir=tmp_path / "s"))
    assert config.api_id == 12345 and config.api_hash == API_HASH
    assert config.bot_tokens == {"teacher": TEACHER_TOKEN, "student": STUDENT_TOKEN}
    assert config.send_rate_per_chat == 1.0 and config.send_rate_global == 30.0
    assert TEACHER_TOKEN not in repr(config) and API_HASH not in repr(config)


def test_every_missing_setting_is_named_at_once():
    with pytest.raises(SettingsError) as err:
        require_telegram_settings(load_settings())
    message = str(err.value)
    for name in ("API_ID", "API_HASH", "TEACHER_BOT_TOKEN", "STUDENT_BOT_TOKEN"):
        assert f"{name}: missing" in message


def test_malformed_values_are_named_without_echoing_them():
    bad = dict(api_id=-5, api_hash="not-hex-" + "z" * 24, teacher_bot_token="abc:def",
               student_bot_token="123456:short", send_rate_per_chat=0)
    with pytest.raises(SettingsError) as err:
        require_telegram_settings(load_settings(**bad))
    message = str(err.value)
    assert "API_ID: must be a positive integer" in message
    assert "API_HASH: malformed" in message
    assert "TEACHER_BOT_TOKEN: malformed" in message and "STUDENT_BOT_TOKEN: malformed" in message
    assert "SEND_RATE_PER_CHAT" in message
    assert "abc:def" not in message and "zzzz" not in message and "short" not in message


def test_non_integer_api_id_is_rejected_when_loading():
    with pytest.raises(SettingsError, match="API_ID"):
        load_settings(api_id="twelve")


def test_both_roles_need_different_bots():
    same = dict(VALID, student_bot_token=TEACHER_TOKEN)
    with pytest.raises(SettingsError, match="two different bots"):
        require_telegram_settings(load_settings(**same))


def test_session_dir_must_not_be_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(SettingsError, match="TELEGRAM_SESSION_DIR"):
        require_telegram_settings(load_settings(**VALID, telegram_session_dir=path))


def test_reads_environment(monkeypatch):
    monkeypatch.setenv("API_ID", "777")
    monkeypatch.setenv("API_HASH", API_HASH.upper())
    monkeypatch.setenv("TEACHER_BOT_TOKEN", TEACHER_TOKEN)
    monkeypatch.setenv("STUDENT_BOT_TOKEN", STUDENT_TOKEN)
    assert require_telegram_settings(load_settings()).api_id == 777
