"""A small class on Telegram in CI (issue 13): scripts/load_telegram.py with 60 students.

The bot's budget is lowered to 5 messages/s so 60 students saturate it as 1,000 saturate 30/s.
Each run is its own process (fresh settings, its own private database server). Assertions are on counts
and on the script's virtual clock, never on the machine's wall time.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STUDENTS = 60


def run(tmp_path: Path, faces_dir: Path, *extra: str) -> dict:
    out = tmp_path / "load.json"
    proc = subprocess.run(
        [sys.executable, "scripts/load_telegram.py", "--students", str(STUDENTS), "--window", "6", "--think", "0.5",
         "--workers", "8", "--quiet", "--json", str(out), *extra],
        cwd=REPO, env={**os.environ, "FACE_FIXTURES_DIR": str(faces_dir)}, capture_output=True, text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_one_saturated_bot_keeps_the_limits_and_finishes_at_the_floor(tmp_path, faces_dir):
    res = run(tmp_path, faces_dir, "--global-rate", "5")
    assert res["ok"], res["checks"]
    assert res["verdicts"] == STUDENTS and res["records_present"] == STUDENTS
    assert res["messages_per_student"] <= 5
    assert res["flood_waits"] == 0 and res["max_messages_in_1s_per_bot"] <= 5
    assert res["last_verdict_s"] <= 1.15 * res["budget_floor_s"]  # virtual seconds


@pytest.mark.slow
def test_three_bots_share_the_class(tmp_path, faces_dir):
    res = run(tmp_path, faces_dir, "--global-rate", "5", "--bots", "3", "--batches", "6")
    assert res["ok"], res["checks"]
    assert sorted(res["students_per_bot"].values()) == [20, 20, 20]
    assert res["flood_waits"] == 0 and res["verdicts"] == STUDENTS
