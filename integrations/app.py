"""Assemble the app: settings → services → hooks → flows → store → engine. Shared by run.py and tests."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from engine.hooks import HookRegistry
from engine.loader import load_flows
from engine.runtime import Engine
from engine.store import ConversationStore, MemoryStore

from .app_hooks import build_registry
from .services import Services, build_services
from .settings import Settings, get_settings

log = logging.getLogger(__name__)


def build_store(settings: Settings) -> ConversationStore:
    if settings.store == "mongo":
        from .mongo_conversations import MongoConversationStore

        return MongoConversationStore()  # the database is connected by build_services
    return MemoryStore()


@dataclass
class App:
    engine: Engine
    services: Services

    def add_sink(self, sink: Any) -> None:
        self.engine.add_sink(sink)

    async def submit(self, update: Any) -> Any:
        return await self.engine.submit(update)

    async def start(self) -> None:
        await self.services.start()
        rearmed = await self.engine.start()
        log.info("engine started; %d conversation timeout(s) re-armed", rearmed)

    async def drain(self) -> None:
        """Stop taking updates, finish in-flight steps and verifications (their answers too)."""
        await self.engine.close_input()  # no user input; steps in flight finish (and may queue a face check)
        await self.services.drain()  # face checks finish; their answers are internal events, still taken
        await self.engine.drain()

    async def stop(self) -> None:
        await self.drain()
        await self.engine.stop()
        await self.services.stop()


def build_app(
    flows: Path | str | list[str] | None = None,
    settings: Optional[Settings] = None,
    *,
    registry: Optional[HookRegistry] = None,
    store: Optional[ConversationStore] = None,
    services: Optional[Services] = None,
    **service_options: Any,
) -> App:
    settings = settings or get_settings()
    services = services or build_services(settings, **service_options)
    registry = registry or build_registry()
    compiled = load_flows(flows or settings.flows_dir, registry)
    engine = Engine(compiled, registry, store or build_store(settings), services)
    services.engine = engine
    return App(engine, services)
