"""Video notes: validate the upload, then pick one frame with a face, decoded in memory.

Frame choice: frame 7 (as the original system does: past the first frames where the camera is
still adjusting). If the cheap face detector finds no face there, frames after it are scanned
(bounded by ``max_scan_frames``, detecting on every ``detect_every``-th) and the sharpest frame
with a face wins (variance of the Laplacian over the face box); frame 7 alone is also retried at
up to twice the detection size, for small faces. The detector is dlib's HOG
frontal detector on a downscaled grey image (OpenCV 5 ships no Haar cascades); the frame
returned is full resolution.

Decoding never touches disk: ``cv2.VideoCapture(io.BytesIO(data), cv2.CAP_FFMPEG, [])``. The
BytesIO must stay referenced while the capture is open - OpenCV does not keep it alive and reading
after it is collected crashes the process.
"""
from __future__ import annotations

import io
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, Optional

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # corrupt uploads are normal; keep stderr quiet

import cv2  # noqa: E402
import numpy as np  # noqa: E402

log = logging.getLogger(__name__)

TARGET_FRAME = 7
VIDEO_NOTE_KINDS = frozenset({"video_note"})
DEFAULT_MAX_BYTES = 8 * 1024 * 1024  # VIDEO_MAX_BYTES overrides it
DEFAULT_MAX_SECONDS = 60  # Telegram video notes are at most 60 s; VIDEO_MAX_SECONDS overrides it


@dataclass(frozen=True)
class VideoCheck:
    """Outcome of :func:`validate_video_note` (metadata only, before decoding)."""

    ok: bool
    reason: str  # ok | not_video_note | forwarded | too_large | too_long | corrupt_video
    size_bytes: int = 0
    duration_s: int = 0
    max_bytes: int = 0
    max_seconds: int = 0

    @property
    def message_key(self) -> str:
        return self.reason

    def params(self) -> dict[str, Any]:
        return {
            "size_bytes": self.size_bytes,
            "size_mb": round(self.size_bytes / 1048576, 1),
            "duration_s": self.duration_s,
            "max_bytes": self.max_bytes,
            "max_mb": round(self.max_bytes / 1048576, 1),
            "max_seconds": self.max_seconds,
        }


@dataclass(frozen=True)
class FrameResult:
    """Outcome of :func:`extract_frame`.

    On ``no_face`` the frame at ``index`` (normally 7) is still returned, so a caller whose
    verifier has a better detector (Rekognition) may choose to send it anyway.
    """

    ok: bool
    reason: str  # ok | no_face | corrupt_video | too_long
    frame_jpeg: Optional[bytes] = None
    index: Optional[int] = None
    face_found: bool = False
    sharpness: Optional[float] = None
    frames_decoded: int = 0
    width: int = 0
    height: int = 0

    @property
    def message_key(self) -> str:
        return self.reason


def _limits(max_bytes: Optional[int], max_seconds: Optional[int]) -> tuple[int, int]:
    """The caller's limits (from VIDEO_MAX_BYTES / VIDEO_MAX_SECONDS), else the defaults."""
    return (int(DEFAULT_MAX_BYTES if max_bytes is None else max_bytes),
            int(DEFAULT_MAX_SECONDS if max_seconds is None else max_seconds))


def _as_int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def validate_video_note(
    data: Optional[bytes] = None,
    *,
    kind: str = "video_note",
    forwarded: bool = False,
    duration: Any = 0,
    file_size: Any = 0,
    max_bytes: Optional[int] = None,
    max_seconds: Optional[int] = None,
) -> VideoCheck:
    """Check what Telegram reports before spending CPU on decoding.

    ``data`` may be None to validate before downloading (using ``file_size``); when present, the
    larger of ``len(data)`` and ``file_size`` counts. Only round video notes are accepted: a
    regular video or a gallery upload is not a live selfie.
    """
    max_b, max_s = _limits(max_bytes, max_seconds)
    size = max(len(data) if isinstance(data, (bytes, bytearray, memoryview)) else 0, _as_int(file_size))
    secs = _as_int(duration)

    def result(ok: bool, reason: str) -> VideoCheck:
        return VideoCheck(ok, reason, size, secs, max_b, max_s)

    if kind not in VIDEO_NOTE_KINDS:
        return result(False, "not_video_note")
    if forwarded:
        return result(False, "forwarded")
    if size > max_b:
        return result(False, "too_large")
    if secs > max_s:
        return result(False, "too_long")
    if data is not None and (not isinstance(data, (bytes, bytearray, memoryview)) or len(data) == 0):
        return result(False, "corrupt_video")
    return result(True, "ok")


_detector_lock = threading.Lock()
_detector_obj: Any = None


def _detector() -> Any:
    """The process-wide HOG detector. Building one takes ~0.7 s (model deserialisation), so it
    is built once; dlib documents detectors as unsafe for concurrent use, so calls hold
    ``_detector_lock`` (dlib keeps the GIL anyway, so the lock costs no parallelism)."""
    global _detector_obj
    if _detector_obj is None:
        with _detector_lock:
            if _detector_obj is None:
                import dlib

                _detector_obj = dlib.get_frontal_face_detector()
    return _detector_obj


def warm_up() -> None:
    """Build the detector now (call at start-up) instead of on the first student's note."""
    _detector()


def _face_sharpness(frame: np.ndarray, detect_size: int) -> Optional[float]:
    """Laplacian variance over the largest face box, or None when no face is detected."""
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    h, w = grey.shape[:2]
    scale = min(1.0, detect_size / float(max(h, w)))
    if scale < 1.0:
        grey = cv2.resize(grey, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    detector = _detector()
    with _detector_lock:
        faces = detector(grey, 0)
    if len(faces) == 0:
        return None
    box = max(faces, key=lambda r: r.area())
    gh, gw = grey.shape[:2]
    top, bottom = max(0, box.top()), min(gh, box.bottom())
    left, right = max(0, box.left()), min(gw, box.right())
    crop = grey[top:bottom, left:right] if bottom > top and right > left else grey
    return float(cv2.Laplacian(crop, cv2.CV_64F).var())


def _jpeg(frame: np.ndarray, quality: int) -> Optional[bytes]:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return buf.tobytes() if ok else None


def extract_frame(
    data: Any,
    *,
    target_index: int = TARGET_FRAME,
    max_scan_frames: int = 60,
    detect_every: int = 3,
    max_faces: int = 5,
    detect_size: int = 256,
    max_seconds: Optional[float] = None,
    jpeg_quality: int = 90,
) -> FrameResult:
    """Choose the frame to verify (see module doc). Never raises for bad bytes.

    ``max_seconds`` (optional) re-checks the decoded duration, since the reported one comes from
    the client. A note shorter than ``target_index + 1`` frames uses its last frame as the target.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) == 0:
        return FrameResult(False, "corrupt_video")
    stream = io.BytesIO(bytes(data))  # must outlive `cap`
    cap = None
    try:
        cap = cv2.VideoCapture(stream, cv2.CAP_FFMPEG, [])
        if not cap.isOpened():
            return FrameResult(False, "corrupt_video")
        if max_seconds is not None:
            fps, count = cap.get(cv2.CAP_PROP_FPS), cap.get(cv2.CAP_PROP_FRAME_COUNT)
            if fps > 0 and count > 0 and count / fps > max_seconds + 1:
                return FrameResult(False, "too_long")
        return _choose(cap, target_index, max_scan_frames, detect_every, max_faces, detect_size, jpeg_quality)
    except Exception:  # cv2.error, MemoryError from absurd headers, dlib errors
        log.warning("video note could not be decoded", exc_info=True)
        return FrameResult(False, "corrupt_video")
    finally:
        if cap is not None:
            cap.release()
        del stream


def _choose(
    cap: Any, target: int, max_scan: int, every: int, max_faces: int, detect_size: int, quality: int
) -> FrameResult:
    target = max(0, int(target))
    every = max(1, int(every))
    decoded = 0
    fallback: Optional[tuple[int, np.ndarray]] = None  # frame shown when no face is found
    frame: Optional[np.ndarray] = None
    index = -1
    while decoded <= target:  # retrieve each (~0.1 ms): after a failed grab the last one is gone
        if not cap.grab():
            break
        decoded += 1
        ok, picture = cap.retrieve()
        if ok and picture is not None:
            frame, index = picture, decoded - 1
    if frame is None:
        return FrameResult(False, "corrupt_video", frames_decoded=decoded)
    h, w = frame.shape[:2]
    sharp = _face_sharpness(frame, detect_size)
    if sharp is None and max(h, w) > detect_size:  # a student far from the camera: small face
        sharp = _face_sharpness(frame, min(max(h, w), 2 * detect_size))
    if sharp is not None:
        return FrameResult(True, "ok", _jpeg(frame, quality), index, True, sharp, decoded, w, h)
    fallback = (index, frame)

    best: Optional[tuple[float, int, np.ndarray]] = None
    faces = 0
    while decoded < max(max_scan, target + 1) and faces < max_faces:
        if not cap.grab():
            break
        decoded += 1
        index = decoded - 1
        if (index - target) % every:
            continue
        ok, frame = cap.retrieve()
        if not ok or frame is None:
            continue
        sharp = _face_sharpness(frame, detect_size)
        if sharp is None:
            continue
        faces += 1
        if best is None or sharp > best[0]:
            best = (sharp, index, frame)
    if best is not None:
        sharp, index, frame = best
        return FrameResult(True, "ok", _jpeg(frame, quality), index, True, sharp, decoded, w, h)
    index, frame = fallback
    return FrameResult(False, "no_face", _jpeg(frame, quality), index, False, None, decoded, w, h)


def check_video_note(
    data: Optional[bytes],
    *,
    kind: str = "video_note",
    forwarded: bool = False,
    duration: Any = 0,
    file_size: Any = 0,
    max_bytes: Optional[int] = None,
    max_seconds: Optional[int] = None,
) -> "VideoCheck | FrameResult":
    """Validate then extract; returns the first failing result or the chosen frame."""
    check = validate_video_note(
        data, kind=kind, forwarded=forwarded, duration=duration, file_size=file_size,
        max_bytes=max_bytes, max_seconds=max_seconds,
    )
    if not check.ok:
        return check
    return extract_frame(data, max_seconds=check.max_seconds)
