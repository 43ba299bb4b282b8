"""`python run.py demo` (the README's first command, after install) runs offline to the report."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_prints_the_report(faces_dir: Path) -> None:
    env = {**os.environ, "FACE_FIXTURES_DIR": str(faces_dir)}
    env.pop("APP_ENV", None)
    run = subprocess.run([sys.executable, "run.py", "demo"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    out = run.stdout
    assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]
    assert "📋 Attendance report: Python (PFS-101, PFS-102)" in out
    assert "✅ Present 22/30" in out and "❌ Absent 8" in out
    assert "⚠️ Failed face check 2" in out and "🔒 Locked out 2" in out
    assert "I could not find a face" in out  # the no-face student got the specific message
    assert "You are 299 m from the class; you must be within 50 m." in out
    assert "That session has ended" in out  # the late student
    assert "(as expected)" in out
