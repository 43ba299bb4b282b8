"""The face service (Rekognition) is down after its own retries: the frame is kept in the outbox,
the student is told the video is received and will be checked; when the service is back the
worker verifies it, records attendance through the outbox's attendance path and tells them."""
from __future__ import annotations

import asyncio

from integrations.attendance.outbox_worker import OutboxWorker
from integrations.attendance.reports import build_report
from integrations.foundation.timefmt import as_utc
from integrations.presence.faces.base import FaceResult
from integrations.storage.documents import AttendanceRecord, Session
from integrations.storage.outbox import (
    ATTENDANCE,
    DELIVERED,
    PENDING,
    VERIFICATION,
    OutboxEntry,
    frame_of,
)
from tests.fakes.faces import MATCHED as MATCH
from tests.fakes.faces import MISMATCHED as MISMATCH
from tests.fakes.faces import SERVICE_ERROR, THROTTLED
from tests.outbox.conftest import writes_between

QUEUED_TEXT = "Face checking is offline right now"


async def test_face_service_down_frame_kept_student_told_then_verified_and_recorded(harness, video):
    harness.verifier.then(THROTTLED)
    texts = await harness.check_in("B1-S1", video, ["Video received", QUEUED_TEXT])
    assert not any("Marked present" in t for t in texts)
    assert await harness.sim.state_of(harness.user("B1-S1")) == "check_later"

    entry = OutboxEntry.objects.get()
    assert (entry.kind, entry.status, entry.last_error) == (VERIFICATION, PENDING, "throttled")
    frame = frame_of(entry)
    assert frame[:2] == b"\xff\xd8" and len(frame) < 200_000  # the JPEG frame, not the video
    assert frame == harness.verifier.calls[0][0] and entry.payload["batch"] == "B1"
    assert frame not in bytes(entry.frame)  # encrypted at rest (issue 14 item 16)
    assert AttendanceRecord.objects.count() == 0

    # Still down: it waits, nothing recorded, nobody told anything new.
    harness.verifier.then(SERVICE_ERROR)
    since = len(harness.texts("B1-S1"))
    result = await harness.outbox.run_once()
    assert (result.stopped, result.verified, result.remaining) == ("service_error", 0, 1)
    assert OutboxEntry.objects.get().attempts == 1 and harness.texts("B1-S1", since) == []

    # Back: verified with the kept frame, recorded, sent to the API, student told.
    await asyncio.sleep(0.1)  # so "recorded at the video's time" is not "recorded now"
    harness.verifier.then(MATCH)
    mark = harness.switch.mark()
    result = await harness.outbox.run_once()
    assert (result.verified, result.delivered, result.notices, result.remaining) == (1, 1, 1, 0)
    assert harness.verifier.calls[-1] == (frame, "B1", "B1-S1")
    record = AttendanceRecord.objects.get()
    assert (record.status, record.method, record.similarity, record.synced) == ("present", "face", 99.1, True)
    assert abs((as_utc(record.time) - as_utc(entry.created_at)).total_seconds()) < 0.01  # the video's time
    assert writes_between(harness.api, mark) == [("POST", "B1-S1")]
    done = OutboxEntry.objects.get()
    assert (done.kind, done.status, done.result, done.frame) == (ATTENDANCE, DELIVERED, "synced", None)
    told = harness.texts("B1-S1", since)
    assert len(told) == 1 and told[0].startswith("✅ Marked present for Python at") and "now been checked" in told[0]

    # Nothing twice: no second check, no second write, no second message.
    calls, mark = len(harness.verifier.calls), harness.switch.mark()
    result = await harness.outbox.run_once()
    assert (result.verified, result.delivered, result.notices) == (0, 0, 0)
    assert len(harness.verifier.calls) == calls and writes_between(harness.api, mark) == []
    assert len(harness.texts("B1-S1", since)) == 1


async def test_late_mismatch_tells_the_student_to_see_the_teacher(harness, video):
    harness.verifier.then(THROTTLED)
    await harness.check_in("B1-S1", video, [QUEUED_TEXT])
    harness.verifier.then(MISMATCH)
    since = len(harness.texts("B1-S1"))
    result = await harness.outbox.run_once()
    assert (result.verified, result.delivered, result.notices) == (1, 1, 1)
    told = harness.texts("B1-S1", since)
    assert len(told) == 1 and "did not match" in told[0] and "see your teacher" in told[0]
    record = AttendanceRecord.objects.get()
    assert record.status == "failed" and record.synced  # the teacher's report shows the failed check
    assert Session.objects.get(id=harness.session.id).face_failure_count("B1-S1", harness.user("B1-S1").user_id) == 1


async def test_face_back_but_api_down_records_locally_and_syncs_later(harness, video):
    harness.verifier.then(THROTTLED)
    await harness.check_in("B1-S1", video, [QUEUED_TEXT])
    harness.switch.down = True
    harness.verifier.then(MATCH)
    since = len(harness.texts("B1-S1"))
    result = await harness.outbox.run_once()
    assert (result.verified, result.delivered, result.stopped, result.notices) == (1, 0, "api_unavailable", 1)
    assert harness.texts("B1-S1", since)[0].startswith("✅ Marked present for Python")
    entry = OutboxEntry.objects.get()
    assert (entry.kind, entry.status, entry.frame) == (ATTENDANCE, PENDING, None)
    assert not AttendanceRecord.objects.get().synced
    assert (await build_report(harness.services.roster, harness.session, "UTC"))["unsynced_count"] == 1

    harness.switch.down = False
    result = await harness.outbox.run_once()
    assert (result.delivered, result.verified, result.notices) == (1, 0, 0)
    assert AttendanceRecord.objects.get().synced
    assert (await build_report(harness.services.roster, harness.session, "UTC"))["unsynced_count"] == 0


async def test_no_frame_to_keep_falls_back_to_send_again(harness, video):
    """A verifier that crashes leaves no frame (the queue reports service_error): resend."""
    harness.verifier.raise_next = 1
    await harness.check_in("B1-S1", video, ["Please send your video note again in a minute"])
    assert await harness.sim.state_of(harness.user("B1-S1")) == "ask_video"
    assert OutboxEntry.objects.count() == 0


async def test_student_marked_meanwhile_makes_the_late_check_a_no_op(harness, video):
    harness.verifier.then(THROTTLED)
    await harness.check_in("B1-S1", video, [QUEUED_TEXT])
    await harness.services.roster.submit_attendance(harness.session_id, "B1-S1", "present", "manual")
    calls = len(harness.verifier.calls)
    result = await harness.outbox.run_once()
    assert result.verified == 1 and result.notices == 0 and len(harness.verifier.calls) == calls
    assert OutboxEntry.objects.get().result == "already_present"
    assert AttendanceRecord.objects.get().method == "manual"


async def test_no_reference_later_tells_the_student_without_recording(harness, video):
    harness.verifier.then(THROTTLED)
    await harness.check_in("B1-S1", video, [QUEUED_TEXT])
    harness.verifier.then(FaceResult(False, "no_reference"))
    since = len(harness.texts("B1-S1"))
    result = await harness.outbox.run_once()
    assert result.verified == 1 and result.notices == 1
    assert "see your teacher" in harness.texts("B1-S1", since)[0]
    assert AttendanceRecord.objects.count() == 0 and OutboxEntry.objects.get().result == "no_reference"


async def test_message_reaches_a_student_busy_in_another_conversation(harness, video):
    """The later message is flow-wide: it does not disturb what the student is doing now."""
    harness.verifier.then(THROTTLED)
    await harness.check_in("B1-S1", video, [QUEUED_TEXT])
    user = harness.user("B1-S1")
    await harness.sim.send(user, "/start")
    await harness.sim.send(user, "/contact +919000001100")
    assert await harness.sim.state_of(user) == "ask_code"
    since = len(harness.texts("B1-S1"))
    await harness.outbox.run_once()
    assert harness.texts("B1-S1", since)[0].startswith("✅ Marked present for Python")
    assert await harness.sim.state_of(user) == "ask_code"
    conv = await harness.app.engine.store.get(("student", user.chat))
    assert not any(k.startswith("_later") for k in conv.data)  # transient: not stored


async def test_messages_wait_for_a_worker_that_can_send_them(harness, video):
    """A pass without a bot (run.py outbox --retry) verifies; the bot's worker tells the student."""
    harness.verifier.then(THROTTLED)
    await harness.check_in("B1-S1", video, [QUEUED_TEXT])
    since = len(harness.texts("B1-S1"))
    headless = OutboxWorker(harness.services.roster, harness.verifier, None)
    result = await headless.run_once()
    assert (result.verified, result.delivered, result.notices) == (1, 1, 0)
    assert harness.texts("B1-S1", since) == [] and OutboxEntry.objects.get().notice_pending
    result = await harness.outbox.run_once()
    assert result.notices == 1 and harness.texts("B1-S1", since)[0].startswith("✅ Marked present")
    assert not OutboxEntry.objects.get().notice_pending


async def test_a_message_refused_by_a_stopping_engine_is_kept(harness, video):
    harness.verifier.then(THROTTLED)
    await harness.check_in("B1-S1", video, [QUEUED_TEXT])
    await harness.app.engine.drain()  # shutting down: the engine takes no more updates
    result = await harness.outbox.run_once()
    assert (result.verified, result.notices) == (1, 0)
    assert OutboxEntry.objects.get().notice_pending  # the next process's worker will say it
