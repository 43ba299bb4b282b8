"""Shared fixtures: the real face photos and video notes in ``shared/faces`` beside the repo."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import require_faces as _require_faces


@pytest.fixture(scope="session")
def shared_faces() -> Path:
    return _require_faces()


@pytest.fixture
def faces_dir(tmp_path: Path, shared_faces: Path) -> Path:
    """A FACES_DIR with obama_1.jpg enrolled as batch "b1", student "s1"."""
    root = tmp_path / "faces"
    (root / "b1").mkdir(parents=True)
    shutil.copy(shared_faces / "obama_1.jpg", root / "b1" / "s1.jpg")
    return root


@pytest.fixture(scope="session")
def note_bytes(shared_faces: Path):
    """Read a video note by short name: note_bytes("obama_2") -> bytes of note_obama_2.mp4."""

    def read(name: str) -> bytes:
        return (shared_faces / f"note_{name}.mp4").read_bytes()

    return read


_PRESENCE_SETTINGS = (
    "LOCATION_DISTANCE_LIMIT_METERS", "OTP_MAX_ATTEMPTS", "FACE_VERIFIER", "FACE_MATCH_THRESHOLD",
    "LOCAL_FACE_TOLERANCE", "FACES_DIR", "FACE_MAX_ATTEMPTS", "VIDEO_MAX_BYTES", "VIDEO_MAX_SECONDS",
    "VERIFY_QUEUE_CAPACITY", "VERIFY_WORKERS", "VERIFY_PROCESSES", "LIVENESS", "AWS_ENDPOINT_URL", "AWS_S3_BUCKET",
)


@pytest.fixture(autouse=True)
def default_settings(monkeypatch: pytest.MonkeyPatch):
    """Tests that rely on defaults see the documented defaults, whatever a developer's .env says."""
    import integrations.settings as settings_module

    for name in _PRESENCE_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    settings = settings_module.load_settings(_env_file=None)
    monkeypatch.setattr(settings_module, "get_settings", lambda: settings)
    return settings
