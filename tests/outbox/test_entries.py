"""The outbox's own guarantees: one entry per key, atomic claims, leases, racing workers, the CLI."""
from __future__ import annotations

import asyncio
import io
import threading
import time

from bson import ObjectId

from integrations.api.roster import HttpRoster
from integrations.app import build_app
from integrations.app.cli import operations
from integrations.attendance.outbox_worker import OutboxWorker
from integrations.roster.service import RosterService
from integrations.storage import outbox
from integrations.storage.documents import AttendanceRecord
from integrations.storage.indexes import ensure_indexes
from integrations.storage.outbox import ATTENDANCE, DELIVERED, PENDING, OutboxEntry
from tests.fakes.faces import THROTTLED, FakeFaceVerifier
from tests.integrations.conftest import PASSWORD, make_client
from tests.outbox.conftest import REPO, open_session, writes_between

FRAME = b"\xff\xd8fake-jpeg\xff\xd9"


def sid() -> str:
    return str(ObjectId())


# ---------------------------------------------------------------------------------------------
# one entry per (session, student)


def test_indexes_are_declared(db):
    ensure_indexes()
    info = OutboxEntry._get_collection().index_information()
    assert info["key_1"]["unique"] is True
    assert "status_1_kind_1_seq_1" in info and "session_id_1_status_1" in info
    assert info["delivered_at_1"]["expireAfterSeconds"] > 0


def test_duplicate_enqueue_keeps_one_entry(db):
    s = sid()
    first = outbox.enqueue_attendance(s, "S1")
    again = outbox.enqueue_attendance(s, "S1", "present", "face", similarity=90.0)
    assert (first.outcome, again.outcome) == ("queued", "duplicate")
    assert OutboxEntry.objects.count() == 1 and again.entry.seq == first.entry.seq
    assert first.entry.key == f"{s}:S1"


def test_enqueue_from_many_threads_is_one_entry(db):
    s = sid()
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def go() -> None:
        barrier.wait()
        outcomes.append(outbox.enqueue_attendance(s, "S1").outcome)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert OutboxEntry.objects.count() == 1
    assert outcomes.count("queued") == 1 and outcomes.count("duplicate") == 7


def test_order_is_creation_order(db):
    s = sid()
    seqs = [outbox.enqueue_attendance(s, f"S{i}").entry.seq for i in range(5)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5


def test_attendance_supersedes_a_pending_verification_but_not_the_reverse(db):
    s = sid()
    outbox.enqueue_verification(s, "S1", "B1", FRAME)
    upgraded = outbox.enqueue_attendance(s, "S1")
    assert upgraded.outcome == "upgraded"
    entry = OutboxEntry.objects.get()
    assert entry.kind == ATTENDANCE and entry.frame is None
    assert outbox.enqueue_verification(s, "S1", "B1", FRAME).outcome == "duplicate"
    assert OutboxEntry.objects.get().kind == ATTENDANCE


def test_a_delivered_entry_is_rearmed_at_the_end_of_the_queue(db):
    s = sid()
    first = outbox.enqueue_attendance(s, "S1")
    entry, _ = outbox.claim_head(ATTENDANCE, "w")
    assert outbox.finish(entry, "w", "synced")
    later = outbox.enqueue_attendance(s, "S2")
    again = outbox.enqueue_attendance(s, "S1")
    assert again.outcome == "rearmed" and again.entry.status == PENDING
    assert again.entry.seq > later.entry.seq > first.entry.seq and OutboxEntry.objects.count() == 2


# ---------------------------------------------------------------------------------------------
# claims


def test_a_claim_is_won_once_and_only_the_claimer_finishes(db):
    outbox.enqueue_attendance(sid(), "S1")
    entry, busy = outbox.claim_head(ATTENDANCE, "A")
    assert entry is not None and not busy and entry.attempts == 1
    assert outbox.claim_head(ATTENDANCE, "B") == (None, True)  # the head is A's: B must not overtake
    assert not outbox.finish(entry, "B", "synced")
    assert outbox.finish(entry, "A", "synced")
    assert OutboxEntry.objects.get().status == DELIVERED
    assert outbox.claim_head(ATTENDANCE, "B") == (None, False)


def test_claims_from_many_threads_one_winner(db):
    outbox.enqueue_attendance(sid(), "S1")
    won: list[str] = []
    barrier = threading.Barrier(8)

    def go(name: str) -> None:
        barrier.wait()
        entry, _ = outbox.claim_head(ATTENDANCE, name)
        if entry is not None:
            won.append(name)

    threads = [threading.Thread(target=go, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and OutboxEntry.objects.get().claimed_by == won[0]


def test_a_dead_workers_lease_expires(db):
    outbox.enqueue_attendance(sid(), "S1")
    dead, _ = outbox.claim_head(ATTENDANCE, "dead", lease_s=0.2)
    assert outbox.claim_head(ATTENDANCE, "alive") == (None, True)
    time.sleep(0.25)
    entry, busy = outbox.claim_head(ATTENDANCE, "alive")
    assert entry is not None and not busy and entry.attempts == 2
    assert not outbox.finish(dead, "dead", "synced")  # too late: it is not the dead worker's any more


async def test_two_workers_racing_deliver_each_entry_once(roster, switch, api, db, box):
    s = str(open_session(roster).id)
    students = ["B1-S1", "B1-S2", "B2-S1", "B2-S2"]
    switch.down = True
    for student in students:
        try:
            roster.backend.submit(s, student, "present")
        except Exception:
            outbox.enqueue_attendance(s, student)
    switch.down = False
    api.latency["/attendance"] = 0.1  # deliveries overlap
    other = RosterService(HttpRoster(make_client(api)))  # as if in another process
    try:
        mark = switch.mark()
        a, b = OutboxWorker(roster, worker_id="A"), OutboxWorker(other, worker_id="B")
        results = await asyncio.gather(a.run_once(), b.run_once(), a.run_once(), b.run_once())
    finally:
        other.close()
    assert sum(r.delivered for r in results) == len(students)
    writes = writes_between(api, mark)
    assert sorted(st for _, st in writes) == sorted(students)  # each student sent exactly once
    assert [st for _, st in writes] == students  # and in the order they were queued
    assert OutboxEntry.objects(status=DELIVERED).count() == len(students)
    assert AttendanceRecord.objects(synced=True).count() == len(students)


# ---------------------------------------------------------------------------------------------
# the worker's life in Services


async def test_the_app_starts_and_stops_the_worker(db, settings, roster):
    app = build_app(settings, flows=[str(REPO / "flows" / "student.yaml")], roster=roster,
                    verifier=FakeFaceVerifier(), connect=False)
    await app.start()
    worker = app.outbox
    assert isinstance(worker, OutboxWorker) and worker.running
    await asyncio.sleep(0.05)
    assert worker.passes == 1  # a first pass right away delivers what a previous run left
    await app.stop()
    assert not worker.running


async def test_the_worker_backs_off_while_a_service_is_down(roster, switch):
    s = str(open_session(roster).id)
    switch.down = True
    outbox.enqueue_attendance(s, "B1-S1")
    worker = OutboxWorker(roster, interval=0.02, max_interval=0.08)
    worker.start()
    try:
        await _until(lambda: worker.passes >= 4)
        assert list(worker.delays)[:4] == [0.04, 0.08, 0.08, 0.08]  # doubling, capped
        switch.down = False
        await _until(lambda: OutboxEntry.objects.get().status == DELIVERED)
        await _until(lambda: worker.delays[-1] == 0.02)  # back to the normal pace
    finally:
        await worker.stop()
    assert not worker.running


async def _until(check, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# python run.py outbox [--retry]


def test_outbox_command_lists_and_retries_without_secrets(roster, switch, api, settings, box, monkeypatch):
    verifier = FakeFaceVerifier(THROTTLED)  # the face service is down on the first --retry
    monkeypatch.setattr(operations, "make_verifier", lambda settings: verifier)
    s = str(open_session(roster).id)
    switch.down = True
    for student in ("B1-S1", "B1-S2"):
        try:
            roster.backend.submit(s, student, "present")
        except Exception:
            outbox.enqueue_attendance(s, student)
    outbox.enqueue_attendance(str(ObjectId()), "ZZ-9")  # a session that is gone
    outbox.enqueue_verification(s, "B2-S1", "B2", FRAME, error="throttled", chat_id=9001, subject="Python")

    out = io.StringIO()
    assert operations.outbox_command(settings, False, out=out, connect=False) == 0
    listing = out.getvalue()
    assert "outbox: 4 pending (3 attendance, 1 verification), 0 failed" in listing
    assert f"{s}" in listing and "B1-S1" in listing and "api_unavailable" in listing and "throttled" in listing

    # Still down: one pass, nothing delivered, exit 1.
    out = io.StringIO()
    assert operations.outbox_command(settings, True, out=out, connect=False) == 1
    assert "retry: delivered 0" in out.getvalue() and "stopped: throttled, api_unavailable" in out.getvalue()

    switch.down = False
    out = io.StringIO()
    code = operations.outbox_command(settings, True, out=out, connect=False)
    text = out.getvalue()
    assert "retry: delivered 3, verified 1, failed 1" in text, text
    assert code == 0 and "unknown_session" in text  # the gone session is listed as failed
    assert set(api.attendance[s]["students"]) == {"B1-S1", "B1-S2", "B2-S1"}
    assert "1 message(s) to students waiting for the bot" in text  # B2-S1 hears it from the bot

    everything = listing + text
    secrets = {PASSWORD} | {c.token for c in api.calls() if c.token}
    assert not any(secret in everything for secret in secrets)
    assert "eyJ" not in everything and "gAAAA" not in everything and "fake-jpeg" not in everything
