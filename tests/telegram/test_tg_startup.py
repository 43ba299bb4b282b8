"""Issue 14 item 17: start-up failures and `health` say what is wrong and what to check."""
from __future__ import annotations

import asyncio

import pytest
from pyrogram import Client, errors

from integrations.app.cli import operations
from integrations.foundation import crypto
from integrations.settings import load_settings
from integrations.telegram.config import TelegramConfig
from integrations.telegram.runtime import TelegramRuntime, TelegramStartError, default_client_factory
from integrations.telegram.startup import explain_start_failure
from tests.conftest import fresh_db_uri
from tests.telegram.conftest import API_HASH, STUDENT_TOKEN, TEACHER_TOKEN


@pytest.mark.parametrize("exc, needles", [
    (KeyError(0), ["KeyError: 0", "could not be reached", "TEACHER_BOT_TOKEN", "API_ID"]),
    (OSError("Network is unreachable"), ["could not be reached", "149.154.160.0/20"]),
    (errors.AccessTokenInvalid(), ["refused TEACHER_BOT_TOKEN", "@BotFather"]),
    (errors.ApiIdInvalid(), ["refused API_ID/API_HASH", "my.telegram.org"]),
])
def test_each_failure_says_what_to_check(exc, needles) -> None:
    text = explain_start_failure("teacher", exc)
    assert text.startswith("the teacher bot could not start: ")
    for needle in needles:
        assert needle in text


async def test_fake_settings_without_a_network_explain_themselves(tmp_path, monkeypatch) -> None:
    async def start(self: Client) -> Client:  # what Pyrogram 2.0.106 raises with no network
        raise KeyError(0)

    monkeypatch.setattr(Client, "start", start)
    config = TelegramConfig(api_id=1, api_hash=API_HASH, session_dir=tmp_path / "s",
                            bot_tokens={"teacher": TEACHER_TOKEN, "student": STUDENT_TOKEN})

    async def noop(*_): ...

    runtime = TelegramRuntime(config, noop, noop, in_memory=True, heartbeat_interval=0, handle_signals=False,
                              client_factory=default_client_factory(in_memory=True))
    with pytest.raises(TelegramStartError) as err:
        await asyncio.wait_for(runtime.start(), 10)
    message = str(err.value)
    assert message != "KeyError: 0" and "could not be reached" in message and TEACHER_TOKEN not in message


@pytest.mark.parametrize("key, ok, needle", [
    ("not-a-fernet-key", False, "FAIL secret key: SECRET_KEY is not a valid Fernet key"),
    (None, True, "ok   secret key: valid (1 key)"),
])
def test_health_checks_the_secret_key(tmp_path, capsys, key, ok, needle) -> None:
    settings = load_settings(_env_file=None, app_env="test", mongodb_uri=fresh_db_uri("health"),
                             data_dir=tmp_path, telegram_session_dir=tmp_path / "sessions",
                             secret_key=key if key is not None else crypto.generate_key())
    operations.health(settings)
    out = capsys.readouterr().out
    assert needle in out
    assert "not-a-fernet-key" not in out
