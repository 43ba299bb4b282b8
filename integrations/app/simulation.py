"""Fixtures for offline simulations and the demo: a roster and reference photos.

A script may start with::

    setup:
      roster: flows/scripts/fixtures/roster.csv      # imported into the (in-memory) local roster
      faces: {PFS-101/22PFS001: obama_1.jpg}     # reference photos copied into FACES_DIR
      env: {REPORT_BUFFER_SECONDS: "1"}          # settings for this run

Photos and video notes come from the face fixtures folder (`shared/faces` beside the checkout,
or FACE_FIXTURES_DIR); input lines may name it as `$FACES`.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from integrations.roster.csv_import import import_roster
from integrations.settings import get_settings

REPO = Path(__file__).resolve().parents[2]


def faces_source() -> Path:
    """Where the sample faces and video notes are."""
    configured = os.environ.get("FACE_FIXTURES_DIR")
    candidates = [Path(configured)] if configured else []
    candidates += [REPO.parent / "shared" / "faces", Path("/work/shared/faces")]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        "sample faces not found: put the shared/faces folder beside the checkout or set FACE_FIXTURES_DIR"
    )


def apply_env(setup: dict[str, Any]) -> None:
    """Settings for this run (before the settings object is first built)."""
    for key, value in (setup.get("env") or {}).items():
        os.environ[str(key)] = str(value)
    if setup.get("faces") and "FACES_DIR" not in (setup.get("env") or {}):
        os.environ["FACES_DIR"] = tempfile.mkdtemp(prefix="faces-")
    get_settings.cache_clear()


def prepare(setup: dict[str, Any], faces_dir: Path) -> dict[str, str]:
    """Import the roster and place reference photos; returns script variables ($FACES)."""
    roster = setup.get("roster")
    if roster:
        path = Path(roster)
        import_roster(path if path.is_absolute() else REPO / path)
    variables: dict[str, str] = {}
    faces = setup.get("faces") or {}
    if faces or setup.get("needs_faces"):
        source = faces_source()
        variables["FACES"] = str(source)
        for target, photo in faces.items():
            destination = faces_dir / f"{target}.jpg"
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / photo, destination)
    return variables
