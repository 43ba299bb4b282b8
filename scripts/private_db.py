"""A private in-memory SecantusDB server for the benchmarks that need a database (run on demand).

The same server the tests and the embedded default use, as a separate process speaking MongoDB's
wire protocol on loopback; stopped when the benchmark exits. Its pid lets a benchmark report the
server's own CPU time apart from its own.
"""
from __future__ import annotations

import atexit
import tempfile
from pathlib import Path

from integrations.storage.embedded import EmbeddedServer


def start_private_db(database: str) -> tuple[str, int]:
    """Start a private in-memory server; returns (URI of ``database`` on it, the server's pid)."""
    server = EmbeddedServer(Path(tempfile.mkdtemp(prefix="bench-db-")), memory=True).start()
    atexit.register(server.stop)
    assert server._process is not None
    return f"{server.base_uri}/{database}", server._process.pid
