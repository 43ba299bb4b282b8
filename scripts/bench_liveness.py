#!/usr/bin/env python
"""Liveness: what it costs per note, and how well it separates live faces from photos (issue 17).

Run on demand (not a test); the figures go to docs/presence.md and docs/performance.md.

1. ``timing``: milliseconds per note on one core (the process pinned to one CPU, one decoding
   thread), after the models are loaded: the liveness pass alone (what it adds to a face check),
   and the frame choice that existed before, for 384 and 640 px H.264 notes.
2. ``table``: every variant of tests/presence/liveness_variants.py is made and judged: the
   acceptance rate of genuine notes (TAR, judged live) and of spoofs (FAR, judged live), for the
   tuning set, the held-out set and the unseen set, by kind; and every wrong verdict.

    .venv/bin/python scripts/bench_liveness.py [timing] [table] [--runs 15] [--jobs 1] [--json]

H.264 notes need imageio-ffmpeg (``pip install imageio-ffmpeg``); without it notes are mp4v.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from integrations.presence import liveness as lv  # noqa: E402
from integrations.presence.video import extract_frame  # noqa: E402
from tests.conftest import FACES_DIR  # noqa: E402
from tests.presence import liveness_variants as variants  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import cv2
    import dlib

    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "opencv": cv2.__version__, "dlib": dlib.__version__, "codec": variants.default_codec()}


# ------------------------------------------------------------------------------------ timing


def timing(runs: int) -> dict[str, Any]:
    genuine = {v.name: v for v in variants.genuine_variants(FACES_DIR / "live" / "carphone.mp4")}
    spoofs = {v.name: v for v in variants.spoof_variants(FACES_DIR, full=False)}
    notes = {
        "genuine crop384 (384 px)": genuine["genuine/crop384"].make(),
        "genuine crop640 (640 px)": genuine["genuine/crop640"].make(),
        "note_obama_2.mp4 (shipped, 384 px)": (FACES_DIR / "note_obama_2.mp4").read_bytes(),
        "spoof obama_1 tilt print (640 px)": spoofs["spoof/obama_1/tilt/print/640"].make(),
    }
    import cv2

    old, threads = os.sched_getaffinity(0), cv2.getNumThreads()
    os.sched_setaffinity(0, {min(old)})
    cv2.setNumThreads(1)  # as in a pool worker; OpenCV's own threads would not follow the pinning
    try:
        lv.warm_up()
        extract_frame(notes["note_obama_2.mp4 (shipped, 384 px)"])  # builds the frame detector
        out: dict[str, Any] = {}
        for name, data in notes.items():
            lv.check_liveness(data)
            wall, cpu, frame_ms, frame_cpu = [], [], [], []
            for _ in range(runs):
                t, c = time.perf_counter(), time.process_time()
                result = lv.check_liveness(data)
                wall.append((time.perf_counter() - t) * 1000)
                cpu.append((time.process_time() - c) * 1000)
                t, c = time.perf_counter(), time.process_time()
                extract_frame(data)
                frame_ms.append((time.perf_counter() - t) * 1000)
                frame_cpu.append((time.process_time() - c) * 1000)
            out[name] = {
                "live": result.live, "score": result.score, "frames_decoded": result.frames_decoded,
                "frames_sampled": result.frames_sampled,
                "liveness_ms_median": round(statistics.median(wall), 1), "liveness_ms_p95": round(pct(wall, 0.95), 1),
                "liveness_ms_min": round(min(wall), 1),  # the least disturbed run on a shared machine
                "liveness_cpu_ms_median": round(statistics.median(cpu), 1),
                "frame_choice_ms_median": round(statistics.median(frame_ms), 1),
                "frame_choice_ms_min": round(min(frame_ms), 1),
                "frame_choice_cpu_ms_median": round(statistics.median(frame_cpu), 1),
                # CPU time of the liveness pass in units of the frame choice's: the two are measured
                # side by side, so the ratio holds on a busy machine where both are slowed alike
                "liveness_over_frame_choice": round(statistics.median(cpu) / max(statistics.median(frame_cpu), 1e-6), 2),
            }
        return out
    finally:
        os.sched_setaffinity(0, old)
        cv2.setNumThreads(threads)


# ------------------------------------------------------------------------------------ table


def _judge(variant: variants.Variant) -> dict[str, Any]:
    data = variant.make()
    result = lv.check_liveness(data)
    return {"name": variant.name, "genuine": variant.genuine, "kind": variant.kind, "detail": variant.detail,
            "live": result.live, "score": result.score, "flow": result.flow, "shape": result.shape,
            "blinks": result.blinks, "reasons": list(result.reasons), "face_frames": result.face_frames}


_EVERY: list[variants.Variant] = []


def _every() -> list[variants.Variant]:
    """Every variant, in a fixed order (built once per process: the makers do not pickle)."""
    if not _EVERY:
        _EVERY.extend([*variants.all_variants(FACES_DIR), *variants.unseen_variants(FACES_DIR)])
    return _EVERY


def _judge_index(index: int) -> dict[str, Any]:
    return _judge(_every()[index])


def _set_of(variant: variants.Variant) -> str:
    if variant.name.startswith("unseen/"):
        return "unseen"
    return "held_out" if variant.held_out else "tuning"


def table(jobs: int) -> dict[str, Any]:
    every = _every()
    sets = {v.name: _set_of(v) for v in every}
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            rows = list(pool.map(_judge_index, range(len(every))))
    else:
        rows = [_judge(v) for v in every]
    for row in rows:
        row["set"] = sets[row["name"]]

    def rates(selected: list[dict[str, Any]]) -> dict[str, Any]:
        genuine = [r for r in selected if r["genuine"]]
        spoof = [r for r in selected if not r["genuine"]]
        return {
            "genuine": len(genuine), "genuine_live": sum(r["live"] for r in genuine),
            "TAR": round(sum(r["live"] for r in genuine) / len(genuine), 3) if genuine else None,
            "spoof": len(spoof), "spoof_live": sum(r["live"] for r in spoof),
            "FAR": round(sum(r["live"] for r in spoof) / len(spoof), 3) if spoof else None,
            "genuine_min_score": min((r["score"] for r in genuine), default=None),
            "spoof_max_score": max((r["score"] for r in spoof), default=None),
        }

    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        parts = row["name"].split("/")
        if row["genuine"]:
            by_kind[f"genuine: {row['kind']} [{row['set']}]"].append(row)
        else:
            if parts[0] in ("spoof", "unseen") and len(parts) >= 5:
                source, motion, finish, size = parts[-4:]
                by_kind[f"spoof motion: {motion} [{row['set']}]"].append(row)
                by_kind[f"spoof finish: {finish}"].append(row)
                by_kind[f"spoof source: {source}"].append(row)
                by_kind[f"spoof size: {size} px"].append(row)
            else:
                by_kind[f"spoof: {row['kind']} [{row['set']}]"].append(row)
    return {
        "sets": {name: rates([r for r in rows if r["set"] == name]) for name in ("tuning", "held_out", "unseen")},
        "all": rates(rows),
        "by_kind": {k: rates(v) for k, v in sorted(by_kind.items())},
        "wrong": [r for r in rows if r["live"] != r["genuine"]],
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("parts", nargs="*", default=["timing", "table"], choices=["timing", "table"])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--jobs", type=int, default=1, help="processes for the table (timing always uses one core)")
    ap.add_argument("--json", action="store_true", help="one JSON object (with every row)")
    args = ap.parse_args()
    if not (FACES_DIR / "live" / "carphone.mp4").is_file():
        sys.exit(f"face data not found at {FACES_DIR}")
    out: dict[str, Any] = {"machine": machine(), "load_avg_before": os.getloadavg()}
    if "timing" in args.parts:
        out["timing"] = timing(args.runs)
    if "table" in args.parts:
        out["table"] = table(args.jobs)
    out["load_avg_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(out))
        return
    if "table" in out:
        out["table"].pop("rows")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
