"""An operator's look at one video note: face, match against a photo, liveness, timings.

``python run.py verify-video NOTE.mp4 --reference PHOTO.jpg`` prints :func:`inspect_note`'s dict
as JSON. It runs the same analysis and rules as the verification queue, so ``verdict`` is what a
student sending this note would be told, and also reports what those rules skip (the match of a
note that liveness refused, the liveness of a note that did not match), so a disputed case can be
understood in one go.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from integrations.presence import liveness as lv
from integrations.presence.faces.base import NO_REFERENCE, FaceResult, FaceVerifier
from integrations.presence.faces.local import LocalFaceVerifier
from integrations.presence.note_analysis import analyse_note, warm_up
from integrations.presence.verify_queue import VideoNoteProcessor

INSPECT_BATCH, INSPECT_ID = "inspect", "reference"


def inspect_note(
    data: bytes,
    reference: bytes,
    verifier: Optional[FaceVerifier] = None,
    *,
    liveness_mode: str = lv.FLAG,
    tolerance: float = 0.6,
    max_seconds: Optional[float] = None,
    require_face: bool = True,
    params: lv.LivenessParams = lv.DEFAULT_PARAMS,
) -> dict[str, Any]:
    """Analyse ``data`` (a video note) against ``reference`` (a photo's bytes). Never raises for bad input.

    ``verifier`` is enrolled with the photo as ``inspect/reference``, so pass a scratch one; by
    default a local (dlib) verifier over a temporary folder with ``tolerance`` is used.
    """
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="inspect-") as scratch:
        if verifier is None:
            verifier = LocalFaceVerifier(Path(scratch), tolerance)
        return _inspect(data, reference, verifier, liveness_mode, max_seconds, require_face, params, started)


def _inspect(data: bytes, reference: bytes, verifier: FaceVerifier, mode: str, max_seconds: Optional[float],
             require_face: bool, params: lv.LivenessParams, started: float) -> dict[str, Any]:
    # The models load on first use; time that apart so the per-note figures mean something.
    t = time.perf_counter()
    warm_up()
    enrolled = verifier.store_reference(INSPECT_BATCH, INSPECT_ID, reference)
    enrol_ms = (time.perf_counter() - t) * 1000

    analysis = analyse_note(data, liveness_mode=mode, max_seconds=max_seconds, params=params)
    frame, live = analysis.frame, analysis.liveness

    face: Optional[FaceResult] = None
    verify_ms = 0.0
    if frame.frame_jpeg is not None and enrolled.ok:
        t = time.perf_counter()
        face = verifier.verify(frame.frame_jpeg, INSPECT_BATCH, INSPECT_ID)
        verify_ms = (time.perf_counter() - t) * 1000

    def verify(_: bytes) -> FaceResult:
        return face if face is not None else FaceResult(False, NO_REFERENCE, backend=verifier.name,
                                                         detail=enrolled.reason)

    rules = VideoNoteProcessor(verifier, require_face=require_face, max_seconds=max_seconds, liveness=mode)
    verdict = rules.decide(analysis, verify)
    return {
        "verdict": verdict.reason,  # what the student would be told (a message key)
        "accepted": verdict.matched,
        "liveness_mode": mode,
        "face_found": frame.face_found,
        "frame_index": frame.index,
        "frames": live.frames_decoded or frame.frames_decoded,  # decoded; the scan stops after its window
        "duration_s": live.duration_s,  # of the decoded part
        "face_frames": live.face_frames,
        "frames_sampled": live.frames_sampled,
        "width": frame.width,
        "height": frame.height,
        "reference": enrolled.reason,  # "stored", or why the photo cannot be used (no_face, bad_image)
        "match": None if face is None else face.matched,
        "match_reason": None if face is None else face.reason,
        "distance": None if face is None else face.distance,
        "similarity": None if face is None else face.similarity,
        "threshold": None if face is None else face.threshold,
        "backend": verifier.name,
        "live": live.live,
        "liveness_score": live.score,
        "liveness_label": live.label,
        "reasons": list(live.reasons),
        "liveness": {k: v for k, v in live.to_dict().items() if k in ("flow", "shape", "blinks", "motion", "usable")},
        "timings_ms": {
            "models_and_reference": round(enrol_ms, 1),
            "frame": analysis.frame_ms,
            "liveness": analysis.liveness_ms,
            "verify": round(verify_ms, 1),
            "total": round((time.perf_counter() - started) * 1000, 1),
        },
    }
