"""The attendance API is down: the face-matched attendance waits in the outbox, the student is told
it is recorded and will sync, the report counts it as unsynced; when the API is back the worker
delivers it once, in order, and the record is synced."""
from __future__ import annotations

import pytest

from integrations.api.roster import HttpRoster
from integrations.attendance.outbox_worker import OutboxWorker
from integrations.attendance.reports import build_report
from integrations.roster.service import RosterService
from integrations.storage import outbox
from integrations.storage.documents import AttendanceRecord, Teacher
from integrations.storage.outbox import (
    ATTENDANCE,
    DELIVERED,
    FAILED,
    PENDING,
    OutboxEntry,
)
from tests.integrations.conftest import make_client
from tests.outbox.conftest import open_session, writes_between


async def test_api_down_student_is_told_recorded_and_report_shows_unsynced(harness, video):
    harness.switch.down = True
    await harness.check_in("B1-S1", video, ["✅ Marked present for Python at", "will be synced"])
    assert await harness.sim.state_of(harness.user("B1-S1")) == "synced_later"

    entry = OutboxEntry.objects.get()
    assert (entry.kind, entry.status, entry.key) == (ATTENDANCE, PENDING, f"{harness.session_id}:B1-S1")
    assert entry.last_error == "api_unavailable" and entry.chat_id == harness.user("B1-S1").chat
    record = AttendanceRecord.objects.get()
    assert record.status == "present" and not record.synced

    report = await build_report(harness.services.roster, harness.session, "UTC")
    assert report["unsynced_count"] == 1 and report["present_count"] == 1

    # Still down: a pass tries, keeps the entry, and says why.
    result = await harness.outbox.run_once()
    assert result.stopped == "api_unavailable" and result.delivered == 0 and result.remaining == 1
    entry.reload()
    assert entry.status == PENDING and entry.attempts == 1 and entry.claimed_by is None

    # Back: delivered once, the record synced, the report clean.
    harness.switch.down = False
    mark = harness.switch.mark()
    result = await harness.outbox.run_once()
    assert (result.delivered, result.remaining, result.stopped) == (1, 0, "")
    assert writes_between(harness.api, mark) == [("POST", "B1-S1")]
    assert "B1-S1" in harness.api.attendance[harness.session_id]["students"]
    entry.reload()
    assert entry.status == DELIVERED and entry.result == "synced" and entry.delivered_at is not None
    assert AttendanceRecord.objects.get().synced
    report = await build_report(harness.services.roster, harness.session, "UTC")
    assert report["unsynced_count"] == 0 and report["present_count"] == 1

    # Nothing is sent twice.
    mark = harness.switch.mark()
    assert (await harness.outbox.run_once()).delivered == 0
    assert writes_between(harness.api, mark) == []


async def test_api_up_nothing_is_queued(harness, video):
    await harness.check_in("B1-S1", video, ["✅ Marked present for Python at"])
    assert await harness.sim.state_of(harness.user("B1-S1")) == "marked"
    assert OutboxEntry.objects.count() == 0 and AttendanceRecord.objects.get().synced


# ---------------------------------------------------------------------------------------------
# order, no duplicates, idempotency (against the roster and the fake API directly)


def _fail_live(roster: RosterService, sid: str, student: str) -> None:
    """What the hook does when the API refuses a face-matched student."""
    with pytest.raises(Exception):
        roster.backend.submit(sid, student, "present", similarity=97.0)
    outbox.enqueue_attendance(sid, student, "present", "face", similarity=97.0, subject="Python")


async def test_delivered_in_creation_order_and_a_failure_stops_the_pass(roster, switch, api):
    sid = str(open_session(roster).id)
    switch.down = True
    order = ["B2-S1", "B1-S2", "B1-S1", "B2-S2"]
    for student in order:
        _fail_live(roster, sid, student)
    assert [e.student_id for e in OutboxEntry.objects.order_by("seq")] == order
    worker = OutboxWorker(roster)

    # The API is back except for the second student's writes: the pass stops there, so the
    # third and fourth do not overtake it.
    switch.down, switch.down_for = False, {"B1-S2"}
    mark = switch.mark()
    result = await worker.run_once()
    assert (result.delivered, result.stopped, result.remaining) == (1, "api_unavailable", 3)
    sent = [s for _, s in writes_between(api, mark)]
    assert "B1-S1" not in sent and "B2-S2" not in sent and sent[0] == "B2-S1"

    switch.down_for = set()
    mark = switch.mark()
    result = await worker.run_once()
    assert (result.delivered, result.remaining) == (3, 0)
    assert writes_between(api, mark) == [("PUT", "B1-S2"), ("PUT", "B1-S1"), ("PUT", "B2-S2")]
    assert set(api.attendance[sid]["students"]) == set(order)
    assert AttendanceRecord.objects(synced=False).count() == 0


async def test_duplicate_enqueue_is_one_entry_and_one_delivery(roster, switch, api):
    sid = str(open_session(roster).id)
    switch.down = True
    _fail_live(roster, sid, "B1-S1")
    again = outbox.enqueue_attendance(sid, "B1-S1", "present", "face")
    assert again.outcome == "duplicate" and OutboxEntry.objects.count() == 1
    switch.down = False
    mark = switch.mark()
    assert (await OutboxWorker(roster).run_once()).delivered == 1
    assert writes_between(api, mark) == [("POST", "B1-S1")]
    assert AttendanceRecord.objects.count() == 1


async def test_entry_of_an_already_synced_student_is_a_no_op(roster, switch, api):
    sid = str(open_session(roster).id)
    switch.down = True
    _fail_live(roster, sid, "B1-S1")
    switch.down = False
    roster.backend.submit(sid, "B1-S1", "present")  # the student retried and it went through
    assert AttendanceRecord.objects.get().synced
    mark = switch.mark()
    result = await OutboxWorker(roster).run_once()
    assert result.delivered == 1 and writes_between(api, mark) == []
    assert OutboxEntry.objects.get().result == "already_synced"


async def test_report_sync_first_then_outbox_is_a_no_op(harness, video):
    """The report sends pending records itself; the outbox then has nothing left to send."""
    harness.switch.down = True
    await harness.check_in("B1-S1", video, ["will be synced"])
    harness.switch.down = False
    report = await build_report(harness.services.roster, harness.session, "UTC")
    assert report["unsynced_count"] == 0
    mark = harness.switch.mark()
    assert (await harness.outbox.run_once()).delivered == 1
    assert writes_between(harness.api, mark) == [] and OutboxEntry.objects.get().result == "already_synced"


async def test_a_session_only_problem_holds_that_session_alone(roster, switch, api):
    sid = str(open_session(roster).id)
    orphan_teacher = Teacher(email="gone@example.edu", name="Gone").save()  # not logged in anywhere
    other = str(open_session(roster, otp="111111", teacher=orphan_teacher).id)
    switch.down = True
    _fail_live(roster, other, "B1-S1")  # older, but its teacher cannot be reached
    _fail_live(roster, sid, "B1-S2")
    switch.down = False
    result = await OutboxWorker(roster).run_once()
    assert (result.delivered, result.held, result.remaining) == (1, 1, 1)
    held = OutboxEntry.objects.get(session_id=other)
    assert held.status == PENDING and held.last_error == "unknown_teacher"
    assert "B1-S2" in api.attendance[sid]["students"]


async def test_an_entry_that_can_never_be_delivered_is_set_aside(roster, switch):
    from bson import ObjectId

    sid = str(open_session(roster).id)
    outbox.enqueue_attendance(str(ObjectId()), "B1-S1")  # a session that does not exist
    switch.down = True
    _fail_live(roster, sid, "B1-S2")
    switch.down = False
    result = await OutboxWorker(roster).run_once()
    assert (result.failed, result.delivered, result.remaining) == (1, 1, 0)
    assert OutboxEntry.objects(status=FAILED).get().last_error == "unknown_session"


async def test_api_down_for_a_failed_face_check_is_queued_too(harness, video):
    """attempts_exhausted records "failed"; with the API down that used to crash the callback."""
    from integrations.presence.faces.base import FaceResult

    harness.verifier.then(*[FaceResult(False, "mismatch", similarity=10.0)] * 3)
    harness.switch.down = True
    user = "B1-S1"
    await harness.check_in(user, video, ["did not match"])
    for expect in (["did not match"], ["Please see your teacher"]):
        since = len(harness.texts(user))
        await harness.sim.send(harness.user(user), f"/video {video}")
        assert not await harness.sim.wait_for(harness.user(user), expect, since, 60)
    await harness.services.verify_queue.drain()
    assert AttendanceRecord.objects.get().status == "failed"
    assert OutboxEntry.objects.get().payload["status"] == "failed"
    harness.switch.down = False
    assert (await harness.outbox.run_once()).delivered == 1
    assert harness.api.attendance[harness.session_id]["students"]["B1-S1"]["status"] == "failed"


async def test_two_processes_share_the_outbox(roster, switch, api, db, box):
    """A second roster (another process's) delivers what the first queued."""
    sid = str(open_session(roster).id)
    switch.down = True
    _fail_live(roster, sid, "B1-S1")
    switch.down = False
    other = RosterService(HttpRoster(make_client(api)))
    try:
        assert (await OutboxWorker(other).run_once()).delivered == 1
    finally:
        other.close()
    assert AttendanceRecord.objects.get().synced
