"""Passive liveness from a video note: a photo held up to the camera moves as one plane.

A still photo (printed or on a screen) that is moved, tilted or zoomed in front of the camera
changes between frames by one planar transform (a homography) for every point of the face. A live
face does not: the head is not flat (the nose and the cheeks move against each other when it
turns), the mouth and eyes move against the rest. Two independent measurements of that, both
normalised by the inter-ocular distance (IOD) so they do not depend on resolution or distance:

* **flow**: textured points inside the face are tracked with pyramidal Lucas-Kanade over short
  segments (~0.3 s); a homography is fitted to each segment (least squares, refitted without the
  worst 20 % of tracks) and the
  80th-percentile residual is taken. Precise (sub-pixel) but blind to slow expression changes.
* **shape**: dlib's 68 landmarks on every sampled frame are aligned to their mean by one
  homography fitted on the inner face (brows, eyes, nose, outer lips); what remains after light
  temporal smoothing (landmark jitter is high-frequency) is deformation: talking, blinking,
  turning. Sees expressions, but dlib's landmarks wobble on hard faces (low resolution, open
  mouth), which a photo of such a face also shows.

Their geometric mean, divided by reference values, is ``g``; ``score = g / (1 + g)``, so 0.5 is
the threshold, and a note is live when ``score >= 0.5`` and it is long enough with enough frames
showing a face. A blink (an eye-aspect-ratio dip that recovers) is reported and adds a little.
Each finding is a reason key in :attr:`LivenessResult.reasons`.

Not covered: a video of the student replayed on a screen (it has real motion), a 3D mask, a live
accomplice. See docs/presence.md for the measured acceptance rates and the limits.

This module needs no settings: callers pass the mode and, if they want, other :class:`LivenessParams`.
"""
from __future__ import annotations

import io
import logging
import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

log = logging.getLogger(__name__)

# Modes (the LIVENESS setting). off: not checked; flag: checked, a doubtful note still counts but
# is marked; enforce: a doubtful note is refused and the student asked for a new one.
OFF, FLAG, ENFORCE = "off", "flag", "enforce"
MODES = (OFF, FLAG, ENFORCE)

# Reason keys, in the order they are reported.
TOO_SHORT = "too_short"  # under min_seconds, or fewer than min_frames decoded (a still JPEG, one frame)
FEW_FACE_FRAMES = "few_face_frames"  # a face on fewer than min_face_frames sampled frames
CORRUPT = "corrupt_video"
NON_PLANAR = "non_planar_motion"  # flow: the face does not move as one plane
DEFORMS = "face_deforms"  # shape: landmarks move against each other (mouth, eyes, head turn)
BLINK = "blink"
PLANAR = "planar_motion"  # flow: the face moves as one plane (a photo)
RIGID = "rigid_landmarks"  # shape: landmarks keep their layout
NO_MOTION = "no_motion"  # the face hardly moves (a still picture encoded as a video)
NO_FLOW = "flow_unmeasured"  # too few trackable points: judged on the landmarks alone
NOT_CHECKED = "not_checked"  # mode off

# Groups of the 68 landmarks (dlib order).
_BROWS_TO_OUTER_LIPS = list(range(17, 60))
_LEFT_EYE, _RIGHT_EYE = slice(36, 42), slice(42, 48)
_ANCHOR = list(range(17, 48))
_FACE_OUTLINE = list(range(0, 27))  # jaw and brows: the hull that flow points are taken from


@dataclass(frozen=True)
class LivenessParams:
    """Every constant of the check, in one place. Thresholds were chosen on the tuning half of the
    variants in tests/presence/liveness_variants.py (docs/presence.md has the figures)."""

    # what counts as a note at all (issue 14: a still JPEG or one frame must not match)
    min_seconds: float = 1.0
    min_frames: int = 10
    min_face_frames: int = 8  # sampled frames (at sample_fps) with a face
    # how much is looked at (bounds the cost: see scripts/bench_liveness.py)
    window_s: float = 2.0  # seconds of frames with a face that are analysed
    max_scan_s: float = 5.0  # stop looking for a face after this much of the note
    sample_fps: float = 8.0  # frames analysed per second of video
    work_size: int = 320  # long side of the grey image everything runs on (small notes are upscaled)
    detect_size: int = 256  # HOG detection size (retried at work_size for a small face)
    detect_every: int = 6  # re-detect every N sampled frames; landmarks follow the face in between
    # flow
    flow_lag_s: float = 0.3  # length of one tracked segment
    flow_points: int = 40
    flow_window: int = 11  # Lucas-Kanade window (work pixels) and pyramid levels
    flow_levels: int = 3
    flow_min_points: int = 12
    flow_fb_px: float = 0.5  # forward-backward error above which a track is dropped (work pixels)
    flow_trim: float = 0.2  # share of the worst tracks left out of the homography fit
    flow_quantile: float = 80.0  # of the points' residuals in a segment
    flow_segment_quantile: float = 50.0  # of the segments' values in the note
    # shape
    smooth_s: float = 0.25  # moving average over this long before measuring deformation
    # decision: g = sqrt(flow / flow_ref * shape / shape_ref); live when g >= 1 (score >= 0.5)
    flow_ref: float = 0.020
    shape_ref: float = 0.036
    blink_ratio: float = 0.7  # EAR below this fraction of the note's median EAR ...
    blink_max_s: float = 0.5  # ... for at most this long, then back up, is a blink
    blink_bonus: float = 1.1
    no_motion_iod: float = 0.05  # the face moved less than this (x IOD) over the window: a still

    def replace(self, **changes: Any) -> "LivenessParams":
        data = asdict(self)
        data.update(changes)
        return LivenessParams(**data)


DEFAULT_PARAMS = LivenessParams()


@dataclass(frozen=True)
class LivenessResult:
    """The verdict on one note. ``live`` is the decision; ``score`` (0..1, live from 0.5) and the
    measurements say how sure it is; ``reasons`` are short keys for logs, reports and the operator.

    ``usable`` is False when the note is not a recording at all (under ``min_seconds`` or
    ``min_frames``: a still JPEG, one frame): such a note must not match whatever the mode. A note
    with a face on too few frames is usable but not live (the processor refuses it as ``no_face``).
    """

    live: bool
    score: float
    reasons: tuple[str, ...]
    usable: bool = True
    checked: bool = True
    frames_decoded: int = 0
    duration_s: float = 0.0
    frames_sampled: int = 0
    face_frames: int = 0
    flow: Optional[float] = None  # homography residual of tracked points, x IOD
    shape: Optional[float] = None  # landmark deformation, x IOD
    blinks: int = 0
    motion: Optional[float] = None  # how far the face moved over the window, x IOD
    ms: float = 0.0

    @property
    def doubtful(self) -> bool:
        """Checked and not judged live: what flag mode shows as "liveness doubtful"."""
        return self.checked and not self.live

    @property
    def label(self) -> str:
        """Text for a report or panel cell: "live", "liveness doubtful" or "not checked"."""
        if not self.checked:
            return "not checked"
        return "live" if self.live else "liveness doubtful"

    @property
    def reason(self) -> str:
        """The first reason: the main one."""
        return self.reasons[0] if self.reasons else ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        data["label"] = self.label
        return data


def not_checked(frames_decoded: int = 0, duration_s: float = 0.0) -> LivenessResult:
    """The result in mode off: no verdict either way."""
    return LivenessResult(False, 0.0, (NOT_CHECKED,), True, False, frames_decoded, round(duration_s, 3))


# ------------------------------------------------------------------------------------- models


class _Models:
    """dlib's HOG detector and 68-point shape predictor, loaded once per process (~0.3 s).

    dlib objects are not documented as thread-safe, so calls hold ``lock`` (dlib keeps the GIL
    anyway; the verify queue runs this in a process pool for parallelism)."""

    lock = threading.Lock()
    _loaded: Optional[tuple[Any, Any]] = None

    @classmethod
    def get(cls) -> tuple[Any, Any]:
        if cls._loaded is None:
            with cls.lock:
                if cls._loaded is None:
                    import dlib
                    import face_recognition_models as frm

                    cls._loaded = (
                        dlib.get_frontal_face_detector(),
                        dlib.shape_predictor(frm.pose_predictor_model_location()),
                    )
        return cls._loaded


def warm_up() -> None:
    """Load the models now (at start-up, or in a pool worker's initializer)."""
    _Models.get()


# ------------------------------------------------------------------------------------- scanning


@dataclass
class NoteScan:
    """What one decoding pass measured; :func:`judge` turns it into a :class:`LivenessResult`."""

    frames_decoded: int = 0
    duration_s: float = 0.0
    frames_sampled: int = 0
    landmarks: list[np.ndarray] = field(default_factory=list)  # (68, 2) per sampled frame with a face
    sample_times: list[float] = field(default_factory=list)  # of those frames
    flow_residuals: list[float] = field(default_factory=list)  # per segment, x IOD
    corrupt: bool = False


def _grey(frame: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    scale = size / float(max(grey.shape[:2]))
    if abs(scale - 1.0) > 1e-3:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=interp)
    return grey, scale


def _iod(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[_LEFT_EYE].mean(axis=0) - points[_RIGHT_EYE].mean(axis=0)))


class _FaceTracker:
    """Landmarks per sampled frame: HOG detection every ``detect_every`` frames, and in between a
    box derived from the previous landmarks (the shape predictor needs only a rough box; ~1 ms
    instead of ~5 ms for a detection)."""

    def __init__(self, params: LivenessParams):
        self.params = params
        self.detector, self.predictor = _Models.get()
        self.count = 0
        self.previous: Optional[np.ndarray] = None
        self.box_from_points: Optional[np.ndarray] = None  # box (cx, cy, w, h) relative to landmarks

    def _detect(self, grey: np.ndarray) -> Optional[Any]:
        import dlib

        p = self.params
        for size in dict.fromkeys((min(p.detect_size, max(grey.shape)), max(grey.shape))):
            small, scale = _grey(grey, size)
            with _Models.lock:
                faces = self.detector(small, 0)
            if len(faces):
                box = max(faces, key=lambda r: r.area())
                return dlib.rectangle(int(box.left() / scale), int(box.top() / scale),
                                      int(box.right() / scale), int(box.bottom() / scale))
        return None

    def _shape(self, grey: np.ndarray, box: Any) -> np.ndarray:
        with _Models.lock:
            shape = self.predictor(grey, box)
        return np.array([(pt.x, pt.y) for pt in shape.parts()], dtype=np.float64)

    @staticmethod
    def _anchor(points: np.ndarray) -> tuple[float, float, float]:
        """Centre and scale from the inner face (brows, nose, eyes): the mean of 31 points barely
        jitters, so boxes made from it do not feed landmark noise back into the next frame."""
        centre = points[_ANCHOR].mean(axis=0)
        return float(centre[0]), float(centre[1]), max(_iod(points), 1.0)

    def landmarks(self, grey: np.ndarray, motion: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
        """Landmarks on ``grey``; ``motion`` (from the flow) moves the previous face onto this frame,
        so the box keeps up with fast movements."""
        import dlib

        detect = self.previous is None or self.box_from_points is None or self.count % self.params.detect_every == 0
        if not detect and self.previous is not None:  # the followed face left the picture: look again
            cx, cy, _ = self._anchor(self.previous)
            detect = not (0 <= cx < grey.shape[1] and 0 <= cy < grey.shape[0])
        self.count += 1
        if detect:
            box = self._detect(grey)
            if box is None:
                self.previous = None
                return None
            points = self._shape(grey, box)
            cx, cy, scale = self._anchor(points)
            self.box_from_points = np.array([
                ((box.left() + box.right()) / 2 - cx) / scale, ((box.top() + box.bottom()) / 2 - cy) / scale,
                box.width() / scale, box.height() / scale,
            ])
        else:
            assert self.previous is not None and self.box_from_points is not None
            cx, cy, scale = self._anchor(self.previous)
            if motion is not None:
                cx, cy = motion @ np.array([cx, cy, 1.0])
                scale *= math.sqrt(abs(float(np.linalg.det(motion[:, :2]))))
            rel = self.box_from_points
            bx, by, w, h = cx + rel[0] * scale, cy + rel[1] * scale, rel[2] * scale, rel[3] * scale
            box = dlib.rectangle(int(round(bx - w / 2)), int(round(by - h / 2)),
                                 int(round(bx + w / 2)), int(round(by + h / 2)))
            points = self._shape(grey, box)
        self.previous = points
        return points


class _FlowSegments:
    """Lucas-Kanade tracks over consecutive sampled frames, cut into segments of ``flow_lag_s``;
    each finished segment gives the homography residual of its points (x IOD)."""

    def __init__(self, params: LivenessParams):
        self.params = params
        self._lk = dict(winSize=(params.flow_window, params.flow_window), maxLevel=params.flow_levels,
                        criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
        self.started_at = 0.0
        self.start: Optional[np.ndarray] = None
        self.points: Optional[np.ndarray] = None
        self.good: Optional[np.ndarray] = None
        self.iod = 0.0
        self.steps = 0
        self.residuals: list[float] = []

    def _seed(self, grey: np.ndarray, landmarks: Optional[np.ndarray], t: float) -> None:
        self.start = self.points = self.good = None
        if landmarks is None:
            return
        hull = cv2.convexHull(landmarks[_FACE_OUTLINE].astype(np.float32)).astype(np.int32)
        mask = np.zeros_like(grey)
        cv2.fillConvexPoly(mask, hull, 255)
        mask = cv2.erode(mask, np.ones((5, 5), np.uint8))
        p = self.params
        corners = cv2.goodFeaturesToTrack(grey, maxCorners=p.flow_points, qualityLevel=0.01, minDistance=4, mask=mask)
        if corners is None or len(corners) < p.flow_min_points:
            return
        self.start = corners.reshape(-1, 2).astype(np.float32)
        self.points = self.start.reshape(-1, 1, 2).copy()
        self.good = np.ones(len(self.start), bool)
        self.iod = _iod(landmarks)
        self.started_at = t

    def advance(self, previous: Optional[np.ndarray], grey: np.ndarray, t: float) -> Optional[np.ndarray]:
        """Move the open segment's points from ``previous`` to ``grey`` (at ``t`` s) and close the
        segment once it is ``flow_lag_s`` long. Returns how the face moved (a 2x3 similarity), which
        the landmark tracker uses to place its box, or None."""
        if previous is None or self.points is None or self.good is None:
            return None
        before = self.points
        nxt, st, _ = cv2.calcOpticalFlowPyrLK(previous, grey, before, None, **self._lk)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(grey, previous, nxt, None, **self._lk)
        fb = np.linalg.norm((back - before).reshape(-1, 2), axis=1)
        moved = (st.ravel() == 1) & (st2.ravel() == 1) & (fb < self.params.flow_fb_px)
        self.good &= moved
        self.points = nxt
        motion = None
        if moved.sum() >= 3:
            motion, _ = cv2.estimateAffinePartial2D(before.reshape(-1, 2)[moved], nxt.reshape(-1, 2)[moved],
                                                    method=cv2.LMEDS)
        if t - self.started_at >= self.params.flow_lag_s - 1e-3:
            self._close()
        return motion

    def seed_if_idle(self, grey: np.ndarray, landmarks: Optional[np.ndarray], t: float) -> None:
        """Start a segment on this frame when none is open."""
        if self.points is None:
            self._seed(grey, landmarks, t)

    def _close(self) -> None:
        assert self.start is not None and self.points is not None and self.good is not None
        if self.good.sum() >= self.params.flow_min_points and self.iod > 0:
            a = self.start[self.good]
            b = self.points.reshape(-1, 2)[self.good]
            residual = _trimmed_homography_residuals(a, b, self.params.flow_trim)
            if residual is not None:
                self.residuals.append(float(np.percentile(residual / self.iod, self.params.flow_quantile)))
        self.start = self.points = self.good = None


def _trimmed_homography_residuals(a: np.ndarray, b: np.ndarray, trim: float) -> Optional[np.ndarray]:
    """Residuals of all points after a least-squares homography refitted without the worst
    ``trim`` fraction (a few bad tracks must not make a photo look non-planar). ~0.2 ms, where
    a least-median-of-squares fit took ~2 ms."""
    src, dst = a.astype(np.float64), b.astype(np.float64)
    hom, _ = cv2.findHomography(src, dst, 0)
    if hom is None:
        return None
    residual = np.linalg.norm(cv2.perspectiveTransform(src.reshape(1, -1, 2), hom)[0] - dst, axis=1)
    keep = residual <= np.quantile(residual, 1.0 - trim)
    if keep.sum() >= 8:
        refit, _ = cv2.findHomography(src[keep], dst[keep], 0)
        if refit is not None:
            hom = refit
            residual = np.linalg.norm(cv2.perspectiveTransform(src.reshape(1, -1, 2), hom)[0] - dst, axis=1)
    return residual


def scan_note(data: Any, params: LivenessParams = DEFAULT_PARAMS, *, analyse: bool = True) -> NoteScan:
    """Decode the start of the note once, in memory, and measure it. Never raises.

    ``analyse=False`` only counts frames and duration (for mode off), stopping as soon as the
    minimums are met.
    """
    scan = NoteScan()
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) == 0:
        scan.corrupt = True
        return scan
    stream = io.BytesIO(bytes(data))  # must outlive `cap` (see video.py)
    cap = None
    try:
        # one decoding thread: the pool runs one note per core, and extra threads only add overhead
        cap = cv2.VideoCapture(stream, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
        if not cap.isOpened():
            scan.corrupt = True
            return scan
        _scan(cap, scan, params, analyse)
    except Exception:  # cv2.error, dlib errors, absurd headers
        log.warning("video note could not be scanned for liveness", exc_info=True)
        scan.corrupt = scan.frames_decoded == 0
    finally:
        if cap is not None:
            cap.release()
        del stream
    return scan


def _frame_rate(cap: Any) -> float:
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if math.isfinite(fps) and 1.0 <= fps <= 240.0 else 30.0


def _scan(cap: Any, scan: NoteScan, p: LivenessParams, analyse: bool) -> None:
    """Decode first, measure after: the sampled frames (small grey images) are kept until the
    window is decoded, then landmarks and flow run over them in one go. Interleaved with the
    decoder, dlib's 100 MB landmark model ran ~2.5x slower (its cache lines evicted each frame)."""
    fps = _frame_rate(cap)
    tracker = _FaceTracker(p) if analyse else None
    flow = _FlowSegments(p) if analyse else None
    next_sample = 0.0
    first_face: Optional[float] = None
    samples: list[tuple[float, np.ndarray]] = []  # from the first frame with a face on
    while True:
        t = scan.frames_decoded / fps
        if not analyse and scan.frames_decoded >= p.min_frames and t >= p.min_seconds:
            break
        if analyse and (t > p.max_scan_s or (first_face is not None and t - first_face > p.window_s)):
            break
        if not cap.grab():
            break
        scan.frames_decoded += 1
        if not analyse or t + 1e-6 < next_sample:
            continue
        next_sample = t + 1.0 / p.sample_fps - 0.5 / fps  # next one ~1/sample_fps later, on a frame
        ok, frame = cap.retrieve()
        if not ok or frame is None:
            continue
        assert tracker is not None and flow is not None
        scan.frames_sampled += 1
        grey, _ = _grey(frame, p.work_size)
        if first_face is None:  # look for the face as frames come, to know where the window starts
            points = tracker.landmarks(grey, None)
            if points is not None:
                first_face = t
                scan.landmarks.append(points)
                scan.sample_times.append(t)
                flow.seed_if_idle(grey, points, t)
                samples.append((t, grey))
        else:
            samples.append((t, grey))
    scan.duration_s = scan.frames_decoded / fps
    if tracker is None or flow is None:
        return
    for (_, previous), (t, grey) in zip(samples, samples[1:]):
        motion = flow.advance(previous, grey, t)
        points = tracker.landmarks(grey, motion)
        if points is not None:
            scan.landmarks.append(points)
            scan.sample_times.append(t)
        flow.seed_if_idle(grey, points, t)
    scan.flow_residuals = flow.residuals


# ------------------------------------------------------------------------------------- judging


def _align(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks (T, 68, 2) mapped onto their mean by one homography each, fitted on the inner face
    (the jaw line slides along the contour in dlib's output, so it is measured, not fitted)."""
    ref = np.median(points, axis=0)
    aligned = points
    for _ in range(2):
        out = []
        for frame in points:
            hom, _ = cv2.findHomography(frame[_BROWS_TO_OUTER_LIPS], ref[_BROWS_TO_OUTER_LIPS], 0)
            if hom is None:
                out.append(frame)
                continue
            out.append(cv2.perspectiveTransform(frame.reshape(1, -1, 2), hom)[0])
        aligned = np.asarray(out)
        ref = aligned.mean(axis=0)
    return aligned, ref


def shape_deformation(points: np.ndarray, smooth: int) -> float:
    """RMS movement of the aligned landmarks around their mean, after a moving average of
    ``smooth`` frames, x IOD. A photo gives ~0.00-0.02, a talking face ~0.05."""
    aligned, ref = _align(points)
    iod = _iod(ref)
    if iod <= 0:
        return 0.0
    k = max(1, min(int(smooth), len(aligned)))
    if k > 1:
        kernel = np.ones(k) / k
        aligned = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="valid"), 0, aligned)
    spread = np.sqrt(((aligned - aligned.mean(axis=0)) ** 2).sum(axis=2))
    return float(np.sqrt((spread ** 2).mean()) / iod)


def eye_aspect_ratio(points: np.ndarray) -> np.ndarray:
    """Mean of both eyes' aspect ratio (Soukupova & Cech, 2016) per frame; ~0.3 open, < 0.2 shut."""
    def one(eye: np.ndarray) -> np.ndarray:
        vertical = np.linalg.norm(eye[:, 1] - eye[:, 5], axis=1) + np.linalg.norm(eye[:, 2] - eye[:, 4], axis=1)
        return vertical / np.maximum(2 * np.linalg.norm(eye[:, 0] - eye[:, 3], axis=1), 1e-9)

    return (one(points[:, _LEFT_EYE]) + one(points[:, _RIGHT_EYE])) / 2


def count_blinks(ear: Sequence[float], times: Sequence[float], ratio: float, max_s: float) -> int:
    """Dips of the EAR below ``ratio`` x its median that last at most ``max_s`` and come back up."""
    values = np.asarray(ear, dtype=np.float64)
    if len(values) < 3:
        return 0
    low = values < ratio * float(np.median(values))
    blinks, i = 0, 1
    while i < len(values) - 1:
        if low[i] and not low[i - 1]:
            j = i
            while j < len(values) and low[j]:
                j += 1
            if j < len(values) and times[j - 1] - times[i] <= max_s:
                blinks += 1
            i = j
        i += 1
    return blinks


def face_motion(points: np.ndarray) -> float:
    """How far the face centre and size moved over the window, x IOD (0 for a still picture)."""
    centres = points.mean(axis=1)
    iods = np.array([_iod(p) for p in points])
    iod = float(np.median(iods))
    if iod <= 0:
        return 0.0
    travel = float(np.linalg.norm(centres.max(axis=0) - centres.min(axis=0)))
    return (travel + float(iods.max() - iods.min())) / iod


def judge(scan: NoteScan, params: LivenessParams = DEFAULT_PARAMS, ms: float = 0.0) -> LivenessResult:
    """Pure decision over a scan (see the module doc)."""
    p = params
    base = dict(frames_decoded=scan.frames_decoded, duration_s=round(scan.duration_s, 3),
                frames_sampled=scan.frames_sampled, face_frames=len(scan.landmarks), ms=round(ms, 1))
    if scan.corrupt:
        return LivenessResult(False, 0.0, (CORRUPT,), False, **base)
    if scan.duration_s + 1e-6 < p.min_seconds or scan.frames_decoded < p.min_frames:
        return LivenessResult(False, 0.0, (TOO_SHORT,), False, **base)
    if len(scan.landmarks) < p.min_face_frames:
        return LivenessResult(False, 0.0, (FEW_FACE_FRAMES,), True, **base)

    points = np.asarray(scan.landmarks, dtype=np.float64)
    shape = shape_deformation(points, int(round(p.smooth_s * p.sample_fps)))
    flow = float(np.percentile(scan.flow_residuals, p.flow_segment_quantile)) if scan.flow_residuals else None
    blinks = count_blinks(eye_aspect_ratio(points), scan.sample_times, p.blink_ratio, p.blink_max_s)
    motion = face_motion(points)

    reasons: list[str] = []
    shape_part = shape / p.shape_ref
    if flow is None:
        g = shape_part
    else:
        g = math.sqrt(max(flow / p.flow_ref, 0.0) * max(shape_part, 0.0))
    if blinks:
        g *= p.blink_bonus
    score = g / (1.0 + g)
    live = score >= 0.5
    if flow is None:
        reasons.append(NO_FLOW)
    elif flow >= p.flow_ref:
        reasons.append(NON_PLANAR)
    if shape >= p.shape_ref:
        reasons.append(DEFORMS)
    if blinks:
        reasons.append(BLINK)
    if not live:
        if motion < p.no_motion_iod and shape < p.shape_ref:
            reasons.insert(0, NO_MOTION)
        if flow is not None and flow < p.flow_ref:
            reasons.append(PLANAR)
        if shape < p.shape_ref:
            reasons.append(RIGID)
    else:  # the stronger evidence first
        order = {NON_PLANAR: flow / p.flow_ref if flow else 0.0, DEFORMS: shape_part, BLINK: 0.0, NO_FLOW: -1.0}
        reasons.sort(key=lambda r: -order.get(r, 0.0))
    return LivenessResult(
        live, round(score, 3), tuple(reasons), True, True, **base,
        flow=None if flow is None else round(flow, 4), shape=round(shape, 4), blinks=blinks,
        motion=round(motion, 3),
    )


def check_liveness(data: Any, params: LivenessParams = DEFAULT_PARAMS, *, mode: str = FLAG) -> LivenessResult:
    """Scan and judge a note. In mode ``off`` only the minimum length and frame count are checked
    (``usable``), and ``checked`` is False. Never raises."""
    started = time.perf_counter()
    if mode not in MODES:
        raise ValueError(f"unknown liveness mode {mode!r} (expected one of {', '.join(MODES)})")
    if mode == OFF:
        scan = scan_note(data, params, analyse=False)
        result = judge_minimums(scan, params)
        if result is not None:
            return result
        return not_checked(scan.frames_decoded, scan.duration_s)
    scan = scan_note(data, params)
    return judge(scan, params, (time.perf_counter() - started) * 1000)


def judge_minimums(scan: NoteScan, params: LivenessParams = DEFAULT_PARAMS) -> Optional[LivenessResult]:
    """The length and frame-count refusal alone (mode off), or None when the note is long enough."""
    base = dict(frames_decoded=scan.frames_decoded, duration_s=round(scan.duration_s, 3))
    if scan.corrupt:
        return LivenessResult(False, 0.0, (CORRUPT,), False, False, **base)
    if scan.duration_s + 1e-6 < params.min_seconds or scan.frames_decoded < params.min_frames:
        return LivenessResult(False, 0.0, (TOO_SHORT,), False, False, **base)
    return None
