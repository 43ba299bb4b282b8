"""The MongoDB connection: a server named by MONGODB_URI, or the embedded one on DATA_DIR.

Every command that needs data goes through :func:`open_database`, so `run.py roster import`
and, later, `run.py stats` in another process see the same data.
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import mongoengine

from integrations.foundation.logs import quiet_noisy_loggers
from integrations.storage.embedded import DATABASE, EmbeddedServer

log = logging.getLogger(__name__)

DEFAULT_DB = DATABASE


def db_name(uri: str) -> str:
    path = urlsplit(uri).path.lstrip("/")
    return path.split("/")[0] or DEFAULT_DB


def server_of(uri: str) -> str:
    """Where a URI points, without credentials (safe to print)."""
    parts = urlsplit(uri)
    host = (parts.hostname or "?") + (f":{parts.port}" if parts.port else "")
    return f"{host}/{db_name(uri)}"


def connect_db(uri: str, *, alias: str = "default") -> object:
    """Connect mongoengine's ``alias`` to ``uri``; reconnecting an alias replaces the connection."""
    quiet_noisy_loggers()  # before the first command: pymongo would log whole documents at DEBUG
    mongoengine.disconnect(alias=alias)
    client = mongoengine.connect(db=db_name(uri), alias=alias, host=uri, tz_aware=True)
    log.info("database connected (%s)", server_of(uri))
    return client


def disconnect_db(*, alias: str = "default") -> None:
    mongoengine.disconnect(alias=alias)


@dataclass
class Database:
    """The database a process uses; ``close()`` stops the embedded server if this process started it."""

    uri: str
    embedded: Optional[EmbeddedServer] = None

    @property
    def description(self) -> str:
        if self.embedded is not None:
            return f"embedded at {self.embedded.where}"
        return f"MongoDB server {server_of(self.uri)}"

    def close(self) -> None:
        disconnect_db()
        if self.embedded is not None:
            self.embedded.stop()


def open_database(mongodb_uri: Optional[str], data_dir: Path, *, ephemeral: bool = False) -> Database:
    """Connect to MONGODB_URI, or start/join the embedded server on ``data_dir``.

    ``ephemeral`` (simulations, the demo): without MONGODB_URI, a private in-memory server that
    disappears with the process, so a rehearsal never writes into the real data.
    """
    if mongodb_uri:
        connect_db(mongodb_uri)
        return Database(mongodb_uri)
    if ephemeral:
        server = EmbeddedServer(Path(tempfile.mkdtemp(prefix="attendance-db-")), memory=True).start()
    else:
        server = EmbeddedServer(Path(data_dir)).start()
    connect_db(server.uri)
    return Database(server.uri, server)
