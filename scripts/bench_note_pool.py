#!/usr/bin/env python
"""Does decoding video notes hold up the bot? (issue 13, item 8; run on demand, not a test)

N notes go through the real VerifyQueue + VideoNoteProcessor (frame choice and liveness; the
verifier answers at once, so only decoding is measured, unless ``--local``) while a trivial
asyncio "bot" answers an update due every ``--every`` ms: each update is put on an asyncio.Queue
and a task replies to it. The latency from when the update was due to the reply is what a student
would feel on top of the engine's own work. Runs once per value of ``--processes`` (0 = decode in the verify threads, the
old way; N = a NotePool of N worker processes).

    .venv/bin/python scripts/bench_note_pool.py [--notes 100 --processes 0 1 2 --workers 8 --json]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from integrations.presence.faces.base import FaceResult, FaceVerifier  # noqa: E402
from integrations.presence.note_pool import NotePool  # noqa: E402
from integrations.presence.verify_queue import VerifyJob, VerifyOutcome, VerifyQueue, VideoNoteProcessor  # noqa: E402
from tests.conftest import FACES_DIR  # noqa: E402

NOTES = ["obama_2", "biden_1"]


class InstantVerifier(FaceVerifier):
    """Answers at once: the benchmark measures decoding, not face matching."""

    name = "instant"

    def verify(self, frame_jpeg: bytes, batch: str, student_id: str) -> FaceResult:
        return FaceResult(True, "match", distance=0.4, backend=self.name)

    def store_reference(self, batch: str, student_id: str, photo_jpeg: bytes) -> FaceResult:
        return FaceResult(True, "stored", backend=self.name)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_run(notes: int, processes: int, workers: int, every_ms: float, verifier: FaceVerifier,
                  liveness: str) -> dict:
    data = [(FACES_DIR / f"note_{name}.mp4").read_bytes() for name in NOTES]
    pool = NotePool(processes) if processes else None
    processor = VideoNoteProcessor(verifier, liveness=liveness, pool=pool)
    queue = VerifyQueue(processor, capacity=notes, workers=workers)
    if pool is not None:  # as at start-up: workers spawned and models loaded before the class arrives
        pool.start()
        await asyncio.gather(*(asyncio.to_thread(pool.run, time.sleep, 0.3) for _ in range(processes * 3)))
    else:
        await asyncio.to_thread(processor.analyse, data[0])  # load models in this process

    updates: asyncio.Queue[float] = asyncio.Queue()
    latencies: list[float] = []
    stop = asyncio.Event()

    async def bot() -> None:  # the trivial handler: take an update, reply
        while True:
            sent = await updates.get()
            latencies.append((time.perf_counter() - sent) * 1000)
            updates.task_done()

    async def users() -> None:
        """Updates are due on a fixed schedule; the latency counts from when one was due, so a
        blocked loop (which also delays this coroutine) shows up in full."""
        due = time.perf_counter()
        while not stop.is_set():
            due += every_ms / 1000
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            updates.put_nowait(due)

    done = 0

    async def on_done(outcome: VerifyOutcome) -> None:
        nonlocal done
        done += 1

    bot_task, users_task = asyncio.create_task(bot()), asyncio.create_task(users())
    await asyncio.sleep(0.5)
    idle = list(latencies)
    latencies.clear()
    cpu0, start = time.process_time(), time.perf_counter()
    for i in range(notes):
        assert queue.submit(VerifyJob("S", f"s{i}", "b1", data[i % len(data)], on_done))
    await queue.drain()
    drained = time.perf_counter() - start
    main_cpu = time.process_time() - cpu0
    stop.set()
    await users_task
    await updates.join()
    bot_task.cancel()
    stats = queue.stats()
    await queue.close()
    return {
        "processes": processes, "workers": workers, "notes": notes, "liveness": liveness, "verifier": verifier.name,
        "drain_s": round(drained, 2), "notes_per_s": round(notes / drained, 1),
        "bot_process_cpu_s": round(main_cpu, 2),
        "update_to_reply_ms": {"samples": len(latencies), "p50": round(statistics.median(latencies), 2),
                               "p95": round(pct(latencies, 0.95), 2), "p99": round(pct(latencies, 0.99), 2),
                               "max": round(max(latencies), 1)},
        "idle_p95_ms": round(pct(idle, 0.95), 2) if idle else None,
        "outcomes": stats["outcomes"], "answer_p95_s": stats["total_p95_s"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notes", type=int, default=100)
    ap.add_argument("--processes", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--workers", type=int, default=8, help="VERIFY_WORKERS")
    ap.add_argument("--every", type=float, default=10.0, help="ms between two updates to the bot")
    ap.add_argument("--liveness", default="flag", choices=["off", "flag", "enforce"])
    ap.add_argument("--local", action="store_true", help="use the local dlib verifier (reference obama_1)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not (FACES_DIR / "obama_1.jpg").is_file():
        sys.exit(f"face data not found at {FACES_DIR}")
    verifier: FaceVerifier = InstantVerifier()
    if args.local:
        import shutil
        import tempfile

        from integrations.presence.faces.local import LocalFaceVerifier

        tmp = Path(tempfile.mkdtemp())
        (tmp / "b1").mkdir()
        for i in range(args.notes):
            shutil.copy(FACES_DIR / "obama_1.jpg", tmp / "b1" / f"s{i}.jpg")
        verifier = LocalFaceVerifier(tmp)
    out = {"machine": {"nproc": os.cpu_count(), "python": platform.python_version()},
           "load_avg_before": os.getloadavg(), "runs": []}
    for processes in args.processes:
        out["runs"].append(asyncio.run(one_run(args.notes, processes, args.workers, args.every, verifier,
                                               args.liveness)))
        if not args.json:
            print(json.dumps(out["runs"][-1]), flush=True)
    out["load_avg_after"] = os.getloadavg()
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
