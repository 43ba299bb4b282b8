"""`python run.py run`: both Telegram bots on one engine until SIGTERM/SIGINT."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from integrations.app.assembly import build_app
from integrations.app.cli.common import settings_or_exit
from integrations.app.panel import context_for_app
from integrations.app.stats import STATS_FILE, write_stats
from integrations.foundation.crypto import SecretKeyError
from integrations.foundation.logs import configure_logging
from integrations.settings import Settings, SettingsError
from integrations.web.server import Panel
from integrations.telegram import (
    TelegramConfig,
    TelegramRuntime,
    TelegramStartError,
    require_telegram_settings,
)

STATS_EVERY_S = 30


async def _serve(settings: Settings, config: TelegramConfig) -> None:
    """Then finish in-flight work and return (exit 0)."""
    app = build_app(settings)
    # The student bots' @usernames reach the session message once the bots are connected.
    runtime = TelegramRuntime(config, submit=app.submit, drain=app.drain,
                              on_connected=app.services.student_bots.set_usernames)
    app.add_sink(runtime.deliver)
    stats_path = settings.data_dir / STATS_FILE
    panel = None
    if settings.web_enabled:  # the admin panel, in this loop beside the bots (docs/web.md)
        app.open_storage()
        panel = await Panel(context_for_app(app), settings.web_host, settings.web_port).start()

    async def snapshot_stats() -> None:
        while True:
            await asyncio.sleep(STATS_EVERY_S)
            write_stats(stats_path, app, runtime.stats())
            logging.getLogger("stats").info("verify queue %s; telegram %s", app.verify_queue.stats(),
                                            runtime.stats())

    if app.note_pool is not None:  # note workers load their models now, not on the first student's note
        app.note_pool.start()
    await app.start()
    task = asyncio.create_task(snapshot_stats())
    try:
        await runtime.run()
    finally:
        task.cancel()
        if panel is not None:
            await panel.stop()
        write_stats(stats_path, app, runtime.stats())
        await app.stop()


def cmd_run(args: argparse.Namespace) -> int:
    settings = settings_or_exit()
    configure_logging(settings.log_level, json=settings.log_json)
    missing = settings.missing_for_telegram()
    if missing:
        print("Cannot start the Telegram bots; these settings are missing: " + ", ".join(missing)
              + ".\nSet them in .env (see .env.example and docs/deployment.md), or try the offline "
              "demo: python run.py demo", file=sys.stderr)
        return 2
    try:
        config = require_telegram_settings(settings)
        asyncio.run(_serve(settings, config))
    except (SettingsError, SecretKeyError, TelegramStartError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def register(sub: Any) -> None:
    sub.add_parser("run", help="run both Telegram bots (the default)").set_defaults(func=cmd_run)
