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


def test_no_secret_reaches_the_logs_during_a_whole_demo(faces_dir: Path, monkeypatch, caplog, capsys) -> None:  # type: ignore[no-untyped-def]
    """Passwords, codes, keys and phone numbers never appear in any log record of a full demo run
    at LOG_LEVEL=DEBUG on the real database server (pymongo's command logs would show them)."""
    import asyncio
    import io
    import logging
    import re

    from integrations.app.demo import run_demo
    from integrations.foundation.logs import configure_logging
    from integrations.settings import get_settings

    for key in ("FACES_DIR", "REPORT_BUFFER_SECONDS", "VERIFY_WORKERS"):
        monkeypatch.delenv(key, raising=False)  # the demo sets these; restored after the test
    monkeypatch.setenv("FACE_FIXTURES_DIR", str(faces_dir))
    monkeypatch.setenv("APP_ENV", "demo")
    stream = io.StringIO()
    handler = configure_logging("DEBUG", stream=stream)
    try:
        with caplog.at_level(logging.DEBUG):
            assert asyncio.run(run_demo()) == 0
    finally:
        logging.getLogger().removeHandler(handler)
    get_settings.cache_clear()
    out = capsys.readouterr().out
    code = re.search(r"Code: (\d{6})", out).group(1)
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records) + stream.getvalue()
    assert len(caplog.records) > 20 and any(r.levelno == logging.DEBUG for r in caplog.records)  # it did log
    for secret in ("demo-pass-1", code, "scrypt$", "9848000001", "900003"):
        assert secret not in logged, secret
    assert not re.search(r"eyJ[A-Za-z0-9_-]{10,}", logged)  # no JWT
    assert not re.search(r"[A-Za-z0-9_-]{43}=", logged)  # no Fernet key
