"""Issue 14 item 16: a face frame kept for a face-service outage is encrypted at rest and deleted
once checked; one that the current SECRET_KEY cannot read is set aside, not retried forever."""
from __future__ import annotations

import pytest
from bson import ObjectId

from integrations.foundation import crypto
from integrations.storage import outbox
from integrations.storage.outbox import FAILED, VERIFICATION, OutboxEntry

FRAME = b"\xff\xd8\xff\xe0 a face, not to be stored in clear \xff\xd9"


@pytest.fixture
def keyed(db):
    crypto.set_secret_box(crypto.SecretBox([crypto.generate_key()]))
    yield
    crypto.set_secret_box(None)


def test_a_kept_frame_is_encrypted_and_dropped_once_checked(keyed):
    s = str(ObjectId())
    outbox.enqueue_verification(s, "S1", "B1", FRAME, error="throttled")
    raw = OutboxEntry._get_collection().find_one({"kind": VERIFICATION})["frame"]
    assert FRAME not in bytes(raw) and b"a face" not in bytes(raw)
    entry = OutboxEntry.objects.get()
    assert outbox.frame_of(entry) == FRAME
    claimed, _ = outbox.claim_head(VERIFICATION, "w")
    assert outbox.finish(claimed, "w", "match")
    assert "frame" not in OutboxEntry._get_collection().find_one({})


def test_a_frame_kept_in_clear_by_an_older_version_is_still_read(keyed):
    s = str(ObjectId())
    outbox.enqueue_verification(s, "S1", "B1", FRAME, error="throttled")
    OutboxEntry._get_collection().update_one({}, {"$set": {"frame": FRAME}})
    assert outbox.frame_of(OutboxEntry.objects.get()) == FRAME


async def test_a_frame_the_key_cannot_read_is_set_aside(keyed):
    from integrations.attendance.outbox_worker import OutboxWorker
    from tests.fakes.faces import FakeFaceVerifier

    s = str(ObjectId())
    outbox.enqueue_verification(s, "S1", "B1", FRAME, error="throttled")
    crypto.set_secret_box(crypto.SecretBox([crypto.generate_key()]))  # SECRET_KEY replaced, not rotated
    verifier = FakeFaceVerifier()
    result = await OutboxWorker(None, verifier, None).run_once()  # type: ignore[arg-type]
    entry = OutboxEntry.objects.get()
    assert (entry.status, entry.last_error, result.failed) == (FAILED, "frame_unreadable", 1)
    assert verifier.calls == [] and entry.frame is None
