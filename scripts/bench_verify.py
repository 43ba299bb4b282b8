#!/usr/bin/env python
"""Benchmark presence verification (run on demand, not a test).

1. frame extraction ms per video note, pinned to one CPU core;
2. local (dlib) verifications per second on one core, reference embedding cached;
3. N notes through VerifyQueue with a Rekognition-like call simulated by ``time.sleep``:
   time to drain and p95 time from submit to answer (on_done).

    .venv/bin/python scripts/bench_verify.py [--notes 1000 --workers 64 --sleep 1.0]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from integrations.presence.faces.base import FaceResult  # noqa: E402
from integrations.presence.faces.local import LocalFaceVerifier  # noqa: E402
from integrations.presence.verify_queue import VerifyJob, VerifyOutcome, VerifyQueue  # noqa: E402
from integrations.presence.video import extract_frame  # noqa: E402

FACES = ROOT / ".." / "shared" / "faces"
NOTES = ["obama_2", "biden_1", "noface"]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "platform": platform.platform()}


def one_core() -> set[int]:
    """Pin this thread (and threads it starts, e.g. FFmpeg's) to one core; returns the old set."""
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(old)})
    return old


def bench_extract(runs: int) -> dict:
    out = {}
    for name in NOTES:
        data = (FACES / f"note_{name}.mp4").read_bytes()
        extract_frame(data)  # warm-up (dlib detector, FFmpeg)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            r = extract_frame(data)
            times.append((time.perf_counter() - t) * 1000)
        out[name] = {"reason": r.reason, "index": r.index, "median_ms": round(statistics.median(times), 1),
                     "p95_ms": round(pct(times, 0.95), 1)}
    return out


def bench_local(runs: int) -> dict:
    tmp = Path(tempfile.mkdtemp())
    try:
        (tmp / "b1").mkdir()
        shutil.copy(FACES / "obama_1.jpg", tmp / "b1" / "s1.jpg")
        v = LocalFaceVerifier(tmp)
        frame = extract_frame((FACES / "note_obama_2.mp4").read_bytes()).frame_jpeg
        t = time.perf_counter()
        first = v.verify(frame, "b1", "s1")
        cold_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        for _ in range(runs):
            v.verify(frame, "b1", "s1")
        per_s = runs / (time.perf_counter() - t)
        return {"first_call_ms_incl_model_and_reference": round(cold_ms), "verifications_per_s": round(per_s, 1),
                "distance": first.distance}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def bench_queue(notes: int, workers: int, sleep_s: float, spread_s: float, extract: bool = True) -> dict:
    data = {name: (FACES / f"note_{name}.mp4").read_bytes() for name in NOTES}

    def process(job: VerifyJob) -> FaceResult:
        ok, reason = True, "match"
        if extract:
            frame = extract_frame(job.data)  # real work
            ok, reason = frame.ok, ("match" if frame.ok else frame.reason)
        time.sleep(sleep_s)  # the Rekognition round trip
        return FaceResult(ok, reason)

    answers: list[float] = []

    async def on_done(outcome: VerifyOutcome) -> None:
        answers.append(time.monotonic())

    q = VerifyQueue(process, capacity=notes, workers=workers, max_attempts=3)
    submitted: list[float] = []
    start = time.monotonic()
    lag = 0.0
    for i in range(notes):
        if spread_s:
            due = start + spread_s * i / notes
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        job = VerifyJob("S", f"s{i}", "b1", data[NOTES[i % 2]], on_done)  # notes with faces
        submitted.append(job.submitted_at)
        assert q.submit(job)
    t = time.monotonic()
    await asyncio.sleep(0.05)
    lag = time.monotonic() - t - 0.05  # event-loop lag while the pool is saturated
    await q.drain()
    drained = time.monotonic() - start
    stats = q.stats()
    await q.close()
    return {"notes": notes, "workers": workers, "sleep_s": sleep_s, "arrivals_over_s": spread_s, "extract": extract,
            "drain_s": round(drained, 2), "answer_p95_s": stats["total_p95_s"], "wait_p95_s": stats["wait_p95_s"],
            "peak_depth": stats["peak_depth"], "outcomes": stats["outcomes"], "loop_lag_ms": round(lag * 1000, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notes", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=64)
    ap.add_argument("--sleep", type=float, default=1.0, help="simulated Rekognition call, seconds")
    ap.add_argument("--spread", type=float, default=0.0, help="spread arrivals over this many seconds (0: burst)")
    ap.add_argument("--extract-runs", type=int, default=50)
    ap.add_argument("--local-runs", type=int, default=30)
    ap.add_argument("--no-extract", action="store_true", help="queue run without frame extraction (sleep only)")
    ap.add_argument("--skip-one-core", action="store_true", help="only the queue run")
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    args = ap.parse_args()
    if not (FACES / "obama_1.jpg").is_file():
        sys.exit(f"face data not found at {FACES.resolve()}")

    result: dict = {"machine": machine(), "load_avg_before": os.getloadavg()}
    if not args.skip_one_core:
        old = one_core()
        try:
            result["extract_one_core"] = bench_extract(args.extract_runs)
            result["local_one_core"] = bench_local(args.local_runs)
        finally:
            os.sched_setaffinity(0, old)
    extract_warm = extract_frame((FACES / "note_obama_2.mp4").read_bytes())  # detector built before timing
    assert extract_warm.ok
    result["queue"] = asyncio.run(
        bench_queue(args.notes, args.workers, args.sleep, args.spread, extract=not args.no_extract)
    )
    result["load_avg_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(result))
        return
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
