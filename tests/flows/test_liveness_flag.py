"""Issue 17.2: with LIVENESS=flag a doubtful note is recorded present and shown as "liveness
doubtful" in the teacher's report, the CSV, the XLSX, the JSON export and the web panel's live rows."""
from __future__ import annotations

import csv
import io

import openpyxl

from integrations.attendance import exports
from integrations.presence import liveness as lv
from integrations.presence.faces.base import FaceResult
from integrations.presence.verify_queue import VideoNoteProcessor
from integrations.roster import records
from integrations.storage.documents import AttendanceRecord, Session
from integrations.web import queries
from tests.conftest import require_faces
from tests.fakes.faces import FakeFaceVerifier

from .appkit import ASHA, NEAR, make_app, open_session, student_at_code

DOUBTFUL = lv.LivenessResult(False, 0.21, (lv.PLANAR,))
LIVE = lv.LivenessResult(True, 0.83, ())


def rows_of(data: bytes) -> dict[str, dict[str, str]]:
    return {r["student_id"]: r for r in csv.DictReader(io.StringIO(data.decode("utf-8-sig")))}


async def check_in(sim, name: str, code: str, note: str) -> None:  # noqa: ANN001
    user = await student_at_code(sim, name)
    await sim.send(user, code)
    await sim.send(user, NEAR)
    before = len(sim.received(user))
    await sim.send(user, f"/video {note}")
    assert not await sim.wait_for(user, ["Marked present"], before, within=20), sim.texts(user, before)


async def test_a_doubtful_note_is_present_and_flagged_everywhere_the_teacher_looks() -> None:
    verdicts = {"22PFS001": DOUBTFUL, "22PFS002": LIVE}  # Lata's note was not judged (LIVENESS=off then)

    def processor(job):  # noqa: ANN001, ANN202 - a face check whose note analysis is given
        return FaceResult(True, "match", distance=0.3, threshold=0.6, backend="local",
                          liveness=verdicts.get(job.student_id))

    app, sim = make_app(processor=processor)
    await app.start()
    code = await open_session(sim)
    for name in ("ravi", "sita", "lata"):
        await check_in(sim, name, code, "flows/scripts/media/hello.mp4")
    stored = {r.student_id: (r.status, r.live, r.liveness_score) for r in AttendanceRecord.objects}
    assert stored == {"22PFS001": ("present", False, 0.21), "22PFS002": ("present", True, 0.83),
                      "22PFS004": ("present", None, None)}

    session = Session.objects.first()
    live_rows = {r.student_id: r for r in queries.live(session.id).rows}  # the panel's live page
    assert (live_rows["22PFS001"].live, live_rows["22PFS002"].live, live_rows["22PFS004"].live) == (False, True, None)

    before = len(sim.received(ASHA))
    await sim.send(ASHA, "/close")
    assert not await sim.wait_for(ASHA, ["Present 3/4", "Liveness doubtful (marked present, may be a photo): 1: "
                                         "Ravi Kumar (22PFS001)"], before, within=10), sim.texts(ASHA, before)
    document = next(item.action for item in sim.received(ASHA)[before:] if hasattr(item.action, "filename"))
    rows = rows_of(document.data)
    assert {sid: (r["liveness"], r["liveness_score"]) for sid, r in rows.items() if r["status"] == "present"} == {
        "22PFS001": ("doubtful", "0.21"), "22PFS002": ("live", "0.83"), "22PFS004": ("", "")}

    report = await app.services.roster.report(str(session.id))
    sheet = openpyxl.load_workbook(io.BytesIO(exports.report_xlsx(report))).active
    cells = [[c.value for c in row] for row in sheet.iter_rows()]
    header = next(row for row in cells if row and row[0] == "student_id")
    ravi = next(row for row in cells if row and row[0] == "22PFS001")
    assert ravi[header.index("liveness")] == "doubtful"
    hindi = rows_of(records.report_csv(report, {"liveness": "जीवंतता", "doubtful": "संदिग्ध"}))
    assert hindi["22PFS001"]["जीवंतता"] == "संदिग्ध"
    await app.stop()


async def test_a_photo_note_goes_through_in_flag_mode_and_is_recorded_doubtful() -> None:
    """The real note analysis on a shared photo-made note (a still portrait moved as a plane)."""
    note = require_faces() / "note_obama_2.mp4"
    app, sim = make_app(processor=VideoNoteProcessor(FakeFaceVerifier(), liveness=lv.FLAG))
    await app.start()
    code = await open_session(sim)
    await check_in(sim, "ravi", code, str(note))
    record = AttendanceRecord.objects.get(student_id="22PFS001")
    assert record.status == "present" and record.live is False and record.liveness_score < 0.5
    await app.stop()
