"""Shared test helpers. Tests run offline: no Telegram, AWS, MongoDB server or external API."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# CI clones the repo into a folder with a copy of shared/ beside it; sessions have /work/shared.
FACES_DIR = next(
    (p for p in (REPO.parent / "shared" / "faces", Path("/work/shared/faces")) if p.is_dir()),
    REPO.parent / "shared" / "faces",
)

os.environ.setdefault("APP_ENV", "test")


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
