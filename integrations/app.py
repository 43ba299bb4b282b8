"""Assemble the app: settings → hooks → flows → store → engine. Shared by run.py and tests."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from engine.hooks import HookRegistry
from engine.loader import load_flows
from engine.runtime import Engine
from engine.store import ConversationStore, MemoryStore

from .app_hooks import build_registry
from .settings import Settings, get_settings


def build_store(settings: Settings) -> ConversationStore:
    if settings.store == "mongo":
        from .db import connect_db
        from .mongo_conversations import MongoConversationStore

        connect_db(settings.mongodb_uri)
        return MongoConversationStore()
    return MemoryStore()


def build_engine(
    flows: Path | str,
    settings: Optional[Settings] = None,
    registry: Optional[HookRegistry] = None,
    store: Optional[ConversationStore] = None,
    services: Any = None,
    use_timers: bool = True,
) -> Engine:
    settings = settings or get_settings()
    registry = registry or build_registry()
    compiled = load_flows(flows, registry)
    return Engine(compiled, registry, store or build_store(settings), services, use_timers=use_timers)
