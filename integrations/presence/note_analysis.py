"""Everything decoded from one video note, in one call: the frame to verify and the liveness verdict.

This is the CPU-heavy part of a face check (decoding, HOG detection, landmarks, optical flow). It
takes only bytes and plain parameters and returns plain frozen dataclasses, so the verification
queue can run it in a worker process (:mod:`.note_pool`) where it never holds the event loop's GIL.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

from integrations.presence import liveness as lv
from integrations.presence import video
from integrations.presence.faces.local import LocalFaceVerifier
from integrations.presence.video import FrameResult, extract_frame


@dataclass(frozen=True)
class NoteAnalysis:
    """``frame`` as :func:`.video.extract_frame` gives it; ``liveness`` as :func:`.liveness.check_liveness`.

    ``frame_ms`` and ``liveness_ms`` are the time each part took (in the worker, excluding queueing).
    """

    frame: FrameResult
    liveness: lv.LivenessResult
    frame_ms: float = 0.0
    liveness_ms: float = 0.0


def analyse_note(
    data: Any,
    *,
    liveness_mode: str = lv.FLAG,
    max_seconds: Optional[float] = None,
    params: lv.LivenessParams = lv.DEFAULT_PARAMS,
) -> NoteAnalysis:
    """Choose the frame, then judge liveness (or in mode off only check the minimum length).

    Never raises for bad bytes. An undecodable or too long note is not scanned for liveness.
    """
    started = time.perf_counter()
    frame = extract_frame(data, max_seconds=max_seconds)
    frame_ms = (time.perf_counter() - started) * 1000
    if frame.reason in ("corrupt_video", "too_long"):
        live = lv.LivenessResult(False, 0.0, (frame.reason,), False, liveness_mode != lv.OFF,
                                 frames_decoded=frame.frames_decoded)
        return NoteAnalysis(frame, live, round(frame_ms, 1), 0.0)
    started = time.perf_counter()
    live = lv.check_liveness(data, params, mode=liveness_mode)
    return NoteAnalysis(frame, live, round(frame_ms, 1), round((time.perf_counter() - started) * 1000, 1))


_WORKER_VERIFIERS: dict[tuple[str, float], Any] = {}


def verify_in_worker(faces_dir: str, tolerance: float, frame_jpeg: bytes, batch: str, student_id: str) -> Any:
    """The local (dlib) verification, run in a pool worker: one verifier (and reference cache) per
    worker process and folder. Returns a FaceResult."""
    key = (faces_dir, float(tolerance))
    verifier = _WORKER_VERIFIERS.get(key)
    if verifier is None:
        verifier = _WORKER_VERIFIERS[key] = LocalFaceVerifier(faces_dir, tolerance)
    return verifier.verify(frame_jpeg, batch, student_id)


def warm_up() -> None:
    """Load the detector and landmark models (a pool worker's initializer calls this)."""
    video.warm_up()
    lv.warm_up()
