"""A small whole-class load run in CI (issue 7): scripts/load_class.py with ~50 students.

Each run is its own process (fresh settings, its own database on the test server, verification queue), as
scripts run in CI. Asserts correctness only -- every student recorded exactly once, one verdict
each, /status and the teacher's report say present N/N, the fake external API holds N -- never
timings, which depend on the machine.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import fresh_db_uri

REPO = Path(__file__).resolve().parents[2]
STUDENTS = 50


@pytest.mark.slow
@pytest.mark.parametrize("store,roster", [("memory", "http"), ("mongo", "slow-local")])
def test_small_class_recorded_exactly_once(store: str, roster: str, faces_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    env = {**os.environ, "FACE_FIXTURES_DIR": str(faces_dir), "MONGODB_URI": fresh_db_uri("load")}
    run = subprocess.run(
        [sys.executable, "scripts/load_class.py", "--students", str(STUDENTS), "--window", "3", "--think", "0.05",
         "--api-latency", "0.05", "--face-latency", "0.05", "--workers", "8", "--batches", "3",
         "--store", store, "--roster", roster, "--quiet", "--verdict-timeout", "120", "--json", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    res = json.loads(out.read_text(encoding="utf-8"))
    failed = [name for name, ok in res["checks"].items() if not ok]
    assert not failed, (failed, res["failures"])
    assert res["ok"]
    assert res["checks"]["records == N"] and res["checks"]["records unique"]
    assert res["checks"]["report present N/N"] and res["checks"]["one verdict per student"]
    if roster == "http":
        assert res["checks"]["API holds N present"] and res["checks"]["API: one POST, N-1 PUT"]
    assert res["student_updates"] == 5 * STUDENTS + res["queue"]["busy_resends"]
    assert res["video_to_verdict_s"]["n"] == STUDENTS
    assert res["face_calls"] == STUDENTS
