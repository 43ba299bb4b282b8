"""Every simulation script in flows/scripts passes, through the real CLI (`run.py simulate --script`).

Each script runs in its own process, as a tester would run it: fresh settings, its own
database on the test server, the local roster and the local face verifier (real dlib on real notes).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import fresh_db_uri

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((REPO / "flows" / "scripts").glob("*.yaml"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_script_passes(script: Path, faces_dir: Path) -> None:
    env = {**os.environ, "FACE_FIXTURES_DIR": str(faces_dir), "MONGODB_URI": fresh_db_uri("script")}
    env.pop("APP_ENV", None)
    run = subprocess.run(
        [sys.executable, "run.py", "simulate", "--script", str(script.relative_to(REPO))],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "passed:" in run.stdout
