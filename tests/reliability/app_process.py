"""The real app in a process of its own, driven over stdin/stdout, for the kill -9 tests.

Run as ``python -m tests.reliability.app_process``: the settings come from the environment
(DATA_DIR with the embedded, durable database; STORE=mongo). The in-process simulator is its
Telegram. Each stdin line is a JSON command ``{"id", "user": [name, user_id, bot], "line"}``; the
process writes one JSON line per bot message (``{"out": chat_id, "bot", "text"}``) as it is sent,
and ``{"done": id}`` when a command's step has finished. ``{"stop": true}`` stops gracefully.
"""
from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from engine.simulator import SimUser, Simulator, describe
from engine.types import Outgoing
from integrations.app import build_app
from integrations.presence.media_reader import read_video_note
from integrations.settings import get_settings


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, ensure_ascii=False) + "\n")
    sys.stdout.flush()


async def main() -> int:
    app = build_app(get_settings())

    async def sink(out: Outgoing) -> None:
        for action in out.actions:
            _emit({"out": out.chat_id, "bot": out.bot, "text": describe(action)})

    app.add_sink(sink)
    sim = Simulator(app.engine, media_reader=read_video_note)
    await app.start()
    _emit({"ready": True})
    loop = asyncio.get_running_loop()
    try:
        while True:
            raw = await loop.run_in_executor(None, sys.stdin.readline)
            if not raw:
                return 0
            command = json.loads(raw)
            if command.get("stop"):
                return 0
            name, user_id, bot = command["user"]
            await sim.send(SimUser(name, int(user_id), bot, name.title()), command["line"])
            _emit({"done": command["id"]})
    finally:
        await app.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
