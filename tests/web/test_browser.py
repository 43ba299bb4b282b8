"""End to end in a real headless Chromium: sign in, import the roster, enrol a photo, watch a
simulated student check in live (the real face check on a real video note), mark by hand, download
the XLSX. With WEB_SCREENSHOTS=1 it also writes the screenshots of docs/web.md (docs/web/*.png).

Chromium comes from Debian (`apt-get install chromium`); Playwright drives it. A missing browser
skips a developer's run and fails CI (CI=true), like the face fixtures.
"""
from __future__ import annotations

import asyncio
import io
import os
import shutil
from pathlib import Path

import pytest
from openpyxl import load_workbook
from PIL import Image
from playwright.async_api import Page, async_playwright

from engine import Simulator
from integrations.presence.media_reader import read_video_note
from integrations.app import build_app
from integrations.app.panel import context_for_app
from integrations.foundation.crypto import hash_password
from integrations.roster import records
from integrations.settings import load_settings
from integrations.storage.connection import connect_db, disconnect_db
from integrations.web.server import Panel
from tests.conftest import require_faces, fresh_db_uri
from tests.flows.appkit import NEAR, open_session, student_at_code

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = REPO / "docs" / "web"
ADMIN = ("admin@example.edu", "admin-password-1")
pytestmark = pytest.mark.slow


def require_chromium() -> str:
    if not Path(CHROMIUM).is_file():
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


async def shot(page: Page, name: str) -> None:
    """A small screenshot for docs/web.md (only with WEB_SCREENSHOTS=1): 64-colour PNG."""
    if os.environ.get("WEB_SCREENSHOTS") != "1":
        return
    SHOTS.mkdir(parents=True, exist_ok=True)
    raw = await page.screenshot(full_page=True)
    image = Image.open(io.BytesIO(raw)).convert("RGB")
    if image.height > 1400:
        image = image.crop((0, 0, image.width, 1400))
    image.quantize(colors=64).save(SHOTS / f"{name}.png", optimize=True)


async def test_the_panel_in_a_real_browser(tmp_path: Path) -> None:
    executable = require_chromium()
    faces = require_faces()
    settings = load_settings(app_env="test", report_buffer_seconds=0, faces_dir=tmp_path / "faces",
                             flows_dir=REPO / "flows", timezone="UTC")
    connect_db(fresh_db_uri("browser"))
    app = build_app(settings, flows=REPO / "flows", connect=False)  # the real local face verifier
    app.open_storage()
    records.create_admin(ADMIN[0], hash_password(ADMIN[1]))
    await app.start()
    panel = await Panel(context_for_app(app), "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{panel.port}"
    sim = Simulator(app.engine, media_reader=read_video_note)
    bad_csv = tmp_path / "bad_roster.csv"
    bad_csv.write_text("role,id,name,phone,email,password,batch,subject\nstudent,S1,,12,,,PFS-101,\n"
                       "nobody,S2,Name,,,,PFS-101,\n", encoding="utf-8")
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=executable, args=ARGS)
            context = await browser.new_context(viewport={"width": 1180, "height": 760}, accept_downloads=True)
            page = await context.new_page()

            # sign in
            await page.goto(f"{base}/")
            assert page.url.startswith(f"{base}/login")
            await shot(page, "login")
            await page.fill("input[name=email]", ADMIN[0])
            await page.fill("input[name=password]", ADMIN[1])
            await page.click("button[type=submit]")
            await page.wait_for_selector("text=Today's sessions")

            # import the roster: a bad file first (line-numbered errors, nothing written), then the good one
            await page.goto(f"{base}/students/import")
            await page.set_input_files("input[name=file]", str(bad_csv))
            await page.click("form.stack button[type=submit]")
            await page.wait_for_selector("table.errors")
            errors = await page.inner_text("table.errors")
            assert "student name is required" in errors and "role must be" in errors
            await shot(page, "import-errors")
            await page.set_input_files("input[name=file]", str(REPO / "flows/scripts/fixtures/roster.csv"))
            await page.click("form.stack button[type=submit]")
            await page.wait_for_selector("text=Imported: teachers: 2 new")

            # enrol Ravi's reference photo (checked: one face, size, quality)
            await page.goto(f"{base}/students?q=ravi")
            await shot(page, "students")
            await page.click("text=22PFS001")
            await page.set_input_files("input[name=photo]", str(faces / "obama_1.jpg"))
            await page.click("text=Upload photo")
            await page.wait_for_selector("text=Reference photo stored.")
            assert (settings.faces_dir / "PFS-101" / "22PFS001.jpg").is_file()
            await shot(page, "student")

            # the teacher opens a session in the (simulated) teacher bot
            code = await open_session(sim)
            await page.goto(f"{base}/sessions")
            await page.click("td a >> nth=0")
            await page.wait_for_selector("#live-rows tr[data-student='22PFS001'].pending")
            await page.evaluate("window.__stayed = true")  # gone if the page reloads

            # a student checks in: the row turns present without a reload
            ravi = await student_at_code(sim, "ravi")
            await sim.send(ravi, code)
            await sim.send(ravi, NEAR)
            before = len(sim.received(ravi))
            await sim.send(ravi, f"/video {faces / 'note_obama_2.mp4'}")
            await page.wait_for_selector("#live-rows tr[data-student='22PFS001'].present", timeout=60_000)
            assert await page.evaluate("window.__stayed === true")
            assert await page.inner_text("#count-present") == "1"
            assert not await sim.wait_for(ravi, ["Marked present"], before, within=10)
            row = await page.inner_text("#live-rows tr[data-student='22PFS001']")
            assert "present" in row and " m" in row  # time, distance and face score shown

            # a manual mark with a reason
            await page.select_option("select[name=student_id]", "22PFS002")
            await page.fill("input[name=reason]", "phone battery dead")
            await page.click("text=Mark present")
            await page.wait_for_selector("text=Marked present by hand.")
            manual = await page.inner_text("#live-rows tr[data-student='22PFS002']")
            assert "manual" in manual and "phone battery dead" in manual
            await shot(page, "session-live")

            # the XLSX download
            async with page.expect_download() as info:
                await page.click("text=Download XLSX")
            download = await info.value
            path = tmp_path / "report.xlsx"
            await download.save_as(str(path))
            cells = list(load_workbook(path).active.iter_rows(values_only=True))
            header = next(r for r in cells if r and r[0] == "student_id")  # after the report's title block
            status, method = header.index("status"), header.index("method")
            rows = {r[0]: (r[status], r[method]) for r in cells[cells.index(header) + 1:]}
            assert rows["22PFS001"] == ("present", "face") and rows["22PFS002"] == ("present", "manual")
            assert rows["22PFS003"][0] == "absent"

            # the other main pages render in the browser too (and give the docs their pictures)
            for url, name, text in ((f"{base}/", "dashboard", "Today's sessions"),
                                    (f"{base}/teachers", "teachers", "asha.rao@example.edu"),
                                    (f"{base}/history/batch/PFS-101", "history", "History of PFS-101"),
                                    (f"{base}/history/student/22PFS001", "history-student", "Present in 1 of 1"),
                                    (f"{base}/flows", "flows", "check: ok")):
                await page.goto(url)
                await page.wait_for_selector(f"text={text}")
                await shot(page, name)
            await page.goto(f"{base}/sessions")
            await page.click("text=audit >> nth=0")
            await page.wait_for_selector("text=manual_mark")
            await shot(page, "audit")

            # signing out ends the login
            await page.click("text=Sign out")
            await page.wait_for_selector("text=Signed out.")
            await page.goto(f"{base}/sessions")
            assert page.url.startswith(f"{base}/login")
            await browser.close()
    finally:
        await panel.stop()
        await app.stop()
        disconnect_db()
        shutil.rmtree(tmp_path / "faces", ignore_errors=True)
    await asyncio.sleep(0)
