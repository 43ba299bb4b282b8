from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from integrations.presence.faces.base import FaceResult
from integrations.presence.faces.local import LocalFaceVerifier
from integrations.presence.verify_queue import VerifyJob, VerifyOutcome, VerifyQueue, VideoNoteProcessor
from integrations.settings import load_settings


class Collector:
    def __init__(self) -> None:
        self.outcomes: list[VerifyOutcome] = []
        self.jobs: list[VerifyJob] = []

    def job(self, session: str = "S1", student: str = "s1", data: bytes = b"note", **kw) -> VerifyJob:
        async def on_done(outcome: VerifyOutcome) -> None:
            self.outcomes.append(outcome)

        return VerifyJob(session, student, "b1", data, on_done, **kw)

    @property
    def reasons(self) -> list[str]:
        return [o.reason for o in self.outcomes]


def fixed(reason: str, matched: bool = False) -> Callable[[VerifyJob], FaceResult]:
    return lambda job: FaceResult(matched, reason)


async def test_full_queue_refuses_instead_of_dropping() -> None:
    gate = threading.Event()

    def slow(job: VerifyJob) -> FaceResult:
        gate.wait(5)
        return FaceResult(True, "match")

    c = Collector()
    q = VerifyQueue(slow, capacity=2, workers=1)
    accepted = [q.submit(c.job(student=f"s{i}")) for i in range(3)]
    assert accepted == [True, True, False]
    assert q.stats()["depth"] == 2 and q.stats()["rejected"] == 1
    await asyncio.sleep(0.05)  # the worker takes one job: room for one more
    assert q.submit(c.job(student="s9"))
    assert not q.submit(c.job(student="s10"))
    gate.set()
    await q.drain()
    assert sorted(o.reason for o in c.outcomes) == ["match"] * 3
    stats = q.stats()
    assert (stats["submitted"], stats["rejected"], stats["completed"], stats["peak_depth"]) == (3, 2, 3, 2)
    await q.close()


async def test_workers_run_concurrently_but_bounded() -> None:
    lock = threading.Lock()
    running = [0, 0]  # current, peak

    def work(job: VerifyJob) -> FaceResult:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return FaceResult(True, "match")

    c = Collector()
    q = VerifyQueue(work, capacity=50, workers=3)
    ticks = 0

    async def ticker() -> None:  # the bot's loop must keep answering while verifications run
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    start = time.monotonic()
    for i in range(9):
        assert q.submit(c.job(student=f"s{i}"))
    await q.drain()
    elapsed = time.monotonic() - start
    tick_task.cancel()
    assert running[1] == 3
    assert len(c.outcomes) == 9
    assert 0.55 < elapsed < 1.5  # 3 rounds of 0.2 s, not 9
    assert ticks > 20
    assert q.stats()["wait_p95_s"] >= 0.3
    await q.close()


async def test_attempts_limit_per_session_and_student() -> None:
    calls: list[str] = []

    def mismatch(job: VerifyJob) -> FaceResult:
        calls.append(job.student_id)
        return FaceResult(False, "mismatch", distance=0.8)

    c = Collector()
    q = VerifyQueue(mismatch, workers=2, max_attempts=3)
    for _ in range(4):
        q.submit(c.job())
        await q.drain()
    assert c.reasons == ["mismatch", "mismatch", "attempts_exhausted", "attempts_exhausted"]
    assert [o.attempts_left for o in c.outcomes] == [2, 1, 0, 0]
    assert c.outcomes[2].cause == "mismatch" and c.outcomes[2].face.distance == 0.8
    assert c.outcomes[3].face is None  # no verification call once exhausted
    assert len(calls) == 3 and q.attempts("S1", "s1") == 3
    q.submit(c.job(session="S2"))  # another session starts fresh
    q.submit(c.job(student="s2"))  # so does another student
    await q.drain()
    assert c.reasons[-2:] == ["mismatch", "mismatch"]
    q.forget_session("S1")
    assert q.attempts("S1", "s1") == 0 and q.attempts("S2", "s1") == 1
    assert q.stats()["outcomes"] == {"mismatch": 4, "attempts_exhausted": 2}
    await q.close()


async def test_retry_after_mismatch_can_match() -> None:
    results = iter([FaceResult(False, "no_face"), FaceResult(True, "match", distance=0.4)])
    c = Collector()
    q = VerifyQueue(lambda job: next(results), max_attempts=3)
    for _ in range(2):
        q.submit(c.job())
        await q.drain()
    assert c.reasons == ["no_face", "match"]
    assert c.outcomes[1].ok and c.outcomes[1].attempts_used == 1
    await q.close()


@pytest.mark.parametrize("reason", ["throttled", "service_error", "no_reference", "corrupt_video"])
async def test_failures_not_caused_by_the_student_do_not_count(reason: str) -> None:
    c = Collector()
    q = VerifyQueue(fixed(reason), max_attempts=1)
    for _ in range(3):
        q.submit(c.job())
    await q.drain()
    assert c.reasons == [reason] * 3 and q.attempts("S1", "s1") == 0
    await q.close()


async def test_prior_failures_seed_the_counter() -> None:
    c = Collector()
    q = VerifyQueue(fixed("match", True), max_attempts=3)
    q.submit(c.job(prior_failures=3))
    await q.drain()
    assert c.reasons == ["attempts_exhausted"]
    await q.close()


async def test_processor_and_callback_errors_do_not_kill_workers() -> None:
    def boom(job: VerifyJob) -> FaceResult:
        raise RuntimeError("bug")

    async def bad_callback(outcome: VerifyOutcome) -> None:
        raise ValueError("callback bug")

    c = Collector()
    q = VerifyQueue(boom, workers=1)
    q.submit(VerifyJob("S", "x", "b1", b"", bad_callback))
    q.submit(c.job())
    await q.drain()
    assert c.reasons == ["service_error"]
    assert q.stats()["callback_errors"] == 1
    await q.close()


async def test_drain_and_close_finish_in_flight_jobs() -> None:
    def work(job: VerifyJob) -> FaceResult:
        time.sleep(0.05)
        return FaceResult(True, "match")

    c = Collector()
    q = VerifyQueue(work, capacity=20, workers=2)
    for i in range(6):
        q.submit(c.job(student=f"s{i}"))
    await asyncio.sleep(0.01)
    assert q.stats()["in_flight"] == 2
    await q.close()  # refuses new work, but finishes everything accepted
    assert len(c.outcomes) == 6
    assert not q.submit(c.job())
    stats = q.stats()
    assert stats["closed"] and stats["depth"] == 0 and stats["in_flight"] == 0
    assert stats["total_p95_s"] >= 0.05


async def test_from_settings() -> None:
    q = VerifyQueue.from_settings(fixed("match", True), load_settings(verify_queue_capacity=7, verify_workers=2))
    assert (q.capacity, q.workers, q.max_attempts) == (7, 2, 3)
    await q.close()


async def test_video_note_processor_end_to_end(faces_dir: Path, note_bytes) -> None:
    c = Collector()
    q = VerifyQueue(VideoNoteProcessor(LocalFaceVerifier(faces_dir)), workers=2, max_attempts=3)
    for name in ["obama_2", "biden_1", "noface"]:
        q.submit(c.job(student="s1", session=name, data=note_bytes(name)))
    q.submit(c.job(session="corrupt", data=b"\x00" * 100))
    await q.drain()
    got = {(o.reason, round(o.face.distance or 0, 1)) for o in c.outcomes}
    assert got == {("match", 0.4), ("mismatch", 0.9), ("no_face", 0), ("corrupt_video", 0)}
    await q.close()
