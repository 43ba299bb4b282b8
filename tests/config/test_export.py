"""`run.py export SESSION_ID --format csv|json`: a backup of one session's attendance."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from integrations.app.cli import operations as ops
from integrations.storage.documents import Session
from tests.flows.appkit import ASHA, make_app, open_session


async def test_export_json_and_csv(tmp_path: Path) -> None:
    app, sim = make_app()
    await app.start()
    await open_session(sim)
    await sim.send(ASHA, "/mark 22PFS001 phone broken")
    session_id = str(Session.objects.first().id)
    settings = app.services.settings

    assert ops.export(settings, session_id, "json", str(tmp_path / "s.json"), connect=False) == 0
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["subject"] == "Python" and len(doc["rows"]) == 4
    assert {r["student_id"]: r["status"] for r in doc["rows"]}["22PFS001"] == "present"

    assert ops.export(settings, session_id, "csv", str(tmp_path / "s.csv"), connect=False) == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "s.csv").read_text(encoding="utf-8-sig"))))
    assert len(rows) == 4

    assert ops.export(settings, "not-a-session", "json", None, connect=False) == 1
    await app.stop()
