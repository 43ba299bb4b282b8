"""`run.py admin create`, and the panel served by uvicorn inside a running loop beside other work."""
from __future__ import annotations

import asyncio
import signal
import urllib.request

import pytest

from integrations.app.cli.web import admin_command
from integrations.foundation.crypto import verify_password
from integrations.settings import load_settings
from integrations.storage.panel import AdminUser
from integrations.web.server import Panel


def _prompt(*answers: str):  # type: ignore[no-untyped-def]
    replies = iter(answers)
    return lambda _text: next(replies)


def test_admin_create_hashes_the_password_read_without_echo(world, capsys) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(app_env="test")
    assert admin_command(settings, "create", "Boss@Example.edu", prompt=_prompt("a-long-password", "a-long-password"),
                         connect=False) == 0
    admin = AdminUser.objects(email="boss@example.edu").get()
    assert admin.password_hash.startswith("scrypt$") and verify_password("a-long-password", admin.password_hash)
    assert "a-long-password" not in capsys.readouterr().out
    assert admin_command(settings, "create", "boss@example.edu", prompt=_prompt("another-password1", "another-password1"),
                         connect=False) == 1
    assert admin_command(settings, "create", "x@example.edu", prompt=_prompt("short", "short"), connect=False) == 2
    assert admin_command(settings, "create", "x@example.edu", prompt=_prompt("a-long-password", "different-one"),
                         connect=False) == 2
    assert admin_command(settings, "create", "not-an-email", prompt=_prompt(), connect=False) == 2
    assert AdminUser.objects(email="x@example.edu").count() == 0
    assert admin_command(settings, "password", "boss@example.edu", prompt=_prompt("new-password-22", "new-password-22"),
                         connect=False) == 0
    assert verify_password("new-password-22", AdminUser.objects(email="boss@example.edu").get().password_hash)


async def test_panel_serves_inside_the_loop_and_leaves_signals_alone(world) -> None:  # type: ignore[no-untyped-def]
    before = signal.getsignal(signal.SIGTERM)
    panel = await Panel(world.ctx, "127.0.0.1", 0).start()
    ticks = 0

    async def other_work() -> None:  # the bots share the loop: it must keep turning
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(other_work())
    try:
        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{panel.port}/healthz", timeout=5).read())
        assert body.startswith(b"ok")
        login = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{panel.port}/login", timeout=5).read())
        assert b"Sign in" in login
        assert signal.getsignal(signal.SIGTERM) == before
        with pytest.raises(OSError):
            await Panel(world.ctx, "127.0.0.1", panel.port).start()  # taken: an error, not a SystemExit
    finally:
        await panel.stop()
        task.cancel()
    assert ticks > 0 and world.ctx.stopping.is_set()
