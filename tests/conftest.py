"""Shared test helpers. Tests run offline: no Telegram, AWS, MongoDB server or external API."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import pytest

from integrations.storage.embedded import EmbeddedServer

REPO = Path(__file__).resolve().parents[1]
# CI clones the repo into a folder with a copy of shared/ beside it; sessions have /work/shared.
FACES_DIR = next(
    (p for p in (REPO.parent / "shared" / "faces", Path("/work/shared/faces")) if p.is_dir()),
    REPO.parent / "shared" / "faces",
)

os.environ.setdefault("APP_ENV", "test")

# ------------------------------------------------------------------ the database server of the run
# Every test talks to a real MongoDB wire server: SecantusDB in memory, started once for the run
# (a separate process), or any server named by TEST_MONGODB_URI (e.g. a real mongod).
_server: Optional[EmbeddedServer] = None
_base_uri = ""


def pytest_configure(config: pytest.Config) -> None:
    global _server, _base_uri
    given = os.environ.get("TEST_MONGODB_URI")
    if given:
        parts = urlsplit(given)
        _base_uri = f"{parts.scheme}://{parts.netloc}"
        return
    _server = EmbeddedServer(Path(config.rootpath) / ".pytest-secantus", memory=True).start()
    _base_uri = _server.base_uri


def pytest_unconfigure(config: pytest.Config) -> None:
    if _server is not None:
        _server.stop()


def pytest_report_header(config: pytest.Config) -> str:
    if _server is not None:
        return f"database: SecantusDB in memory at {_base_uri.removeprefix('mongodb://')} (a separate process)"
    return f"database: TEST_MONGODB_URI server {urlsplit(_base_uri).hostname}"


def fresh_db_uri(prefix: str = "test") -> str:
    """A database of its own on the run's server (a new name each call, so it starts empty)."""
    return f"{_base_uri}/{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def repo() -> Path:
    return REPO


def require_faces() -> Path:
    """The sample faces; missing ones skip a developer's run but fail CI (where they must be)."""
    if not (FACES_DIR / "obama_1.jpg").is_file():
        message = f"face fixtures not found at {FACES_DIR} (shared/faces beside the checkout)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return FACES_DIR


@pytest.fixture
def faces_dir() -> Path:
    return require_faces()
