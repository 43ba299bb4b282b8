"""Genuine and spoof video notes made on the fly for the liveness tests and benchmarks.

Genuine notes come from ``live/carphone.mp4`` (a real person talking): square crops, padding,
384 and 640 px, re-encoding, time crops, frame-rate changes, mirror, low light. Spoof notes come
from still photos (the test portraits and stills of carphone itself, so a spoof can show the very
person and picture quality of the genuine video) moved as a whole: zoom and sway, perspective tilt,
hand shake, approach, no motion; printed, on-screen, blurred, noisy or JPEG-damaged.

Nothing here is committed media: every note is made from ``shared/faces`` when asked for.
Variants are split into a tuning set and a held-out set; thresholds in
``integrations/presence/liveness.py`` were chosen by looking at the tuning set only.
"""
from __future__ import annotations

import io
import math
import os
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import cv2
import numpy as np

FPS = 30.0
SPOOF_SECONDS = 3.0

# Held out of tuning: genuine variants by name, spoofs by photo source, motion or finish.
HELD_OUT_GENUINE = frozenset({
    "tight384", "pad640", "reencode_twice", "time_30_90", "time_0_45", "time_75_120", "every2nd_15fps",
    "mirror384", "lowlight640",
})
HELD_OUT_SOURCES = frozenset({"obama_3", "biden_1", "carphone_f20"})
HELD_OUT_MOTIONS = frozenset({"shake", "bent"})
HELD_OUT_FINISHES = frozenset({"screen", "noise_jpeg"})


@dataclass(frozen=True)
class Variant:
    """One note to judge. ``make()`` returns the MP4 bytes (made on demand, a few hundred ms)."""

    name: str
    kind: str  # genuine kind (crop, pad, reencode, time, fps, ...) or spoof motion
    genuine: bool
    held_out: bool
    make: Callable[[], bytes]
    detail: str = ""


# -------------------------------------------------------------------------- reading, writing


def read_frames(data: bytes) -> tuple[list[np.ndarray], float]:
    """All frames of an MP4 (BGR) and its frame rate."""
    stream = io.BytesIO(data)  # must outlive the capture
    cap = cv2.VideoCapture(stream, cv2.CAP_FFMPEG, [])
    fps = cap.get(cv2.CAP_PROP_FPS) or FPS
    frames: list[np.ndarray] = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames, float(fps)


def ffmpeg_exe() -> Optional[str]:
    """The ffmpeg of ``imageio-ffmpeg`` when installed (it can write H.264 like Telegram does)."""
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception:  # not installed, or no binary for this platform
        return None


def encode(frames: list[np.ndarray], fps: float = FPS, codec: str = "mp4v", crf: int = 26) -> bytes:
    """Frames -> MP4 bytes. ``codec`` "h264" needs imageio-ffmpeg; "mp4v" is OpenCV's own."""
    h, w = frames[0].shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "note.mp4"
        if codec == "h264":
            exe = ffmpeg_exe()
            if exe is None:
                raise RuntimeError("H.264 needs imageio-ffmpeg")
            cmd = [exe, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
                   "-s", f"{w}x{h}", "-r", f"{fps:.4f}", "-i", "-", "-c:v", "libx264", "-profile:v", "main",
                   "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p", "-movflags", "+faststart",
                   "-threads", "1", str(path)]
            subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True)
        else:
            out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            for frame in frames:
                out.write(frame)
            out.release()
        return path.read_bytes()


def default_codec() -> str:
    """H.264 (what Telegram clients send) when ffmpeg is available, else mp4v."""
    return "h264" if ffmpeg_exe() else "mp4v"


def rng_for(name: str) -> np.random.Generator:
    """A generator seeded by the variant's name: the same note every run."""
    return np.random.default_rng(zlib.crc32(name.encode()))


# -------------------------------------------------------------------------- genuine


def _square(frame: np.ndarray, x: int, y: int, side: int, size: int) -> np.ndarray:
    return cv2.resize(frame[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_CUBIC)


def _pad(frame: np.ndarray, size: int) -> np.ndarray:
    h, w = frame.shape[:2]
    side = max(h, w)
    canvas = np.zeros((side, side, 3), np.uint8)
    canvas[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = frame
    return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_CUBIC)


def _jpeg_roundtrip(frame: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def genuine_variants(live_video: Path, codec: Optional[str] = None) -> list[Variant]:
    """Carphone (176x144, 120 frames, 29.97 fps) turned into square notes in several ways."""
    codec = codec or default_codec()
    cache: dict[str, list[np.ndarray]] = {}
    src_fps = FPS

    def src() -> list[np.ndarray]:
        nonlocal src_fps
        if "frames" not in cache:
            cache["frames"], src_fps = read_frames(live_video.read_bytes())
        return cache["frames"]

    def crop(size: int, x: int = 16, y: int = 0, side: int = 144) -> Callable[[], list[np.ndarray]]:
        return lambda: [_square(f, x, y, side, size) for f in src()]

    def lowlight(frames: list[np.ndarray], name: str) -> list[np.ndarray]:
        rng = rng_for(name)
        out = []
        for f in frames:
            dark = f.astype(np.float32) * 0.55 + rng.normal(0, 5, f.shape)
            out.append(np.clip(dark, 0, 255).astype(np.uint8))
        return out

    recipes: list[tuple[str, str, Callable[[], list[np.ndarray]], float, str]] = [
        ("crop384", "square crop", crop(384), 1.0, "144 px square crop, 384 px"),
        ("crop640", "square crop", crop(640), 1.0, "144 px square crop, 640 px"),
        ("tight384", "square crop", crop(384, x=36, y=20, side=112), 1.0, "112 px crop around the face, 384 px"),
        ("pad384", "padded", lambda: [_pad(f, 384) for f in src()], 1.0, "black bars to a square, 384 px"),
        ("pad640", "padded", lambda: [_pad(f, 640) for f in src()], 1.0, "black bars to a square, 640 px"),
        ("reencode_jpeg", "re-encoded", lambda: [_jpeg_roundtrip(f, 30) for f in crop(384)()], 1.0,
         "every frame JPEG q30, then encoded"),
        ("reencode_twice", "re-encoded", lambda: read_frames(encode(crop(384)(), FPS, "mp4v"))[0], 1.0,
         "encoded as mp4v, decoded, encoded again"),
        ("time_0_60", "time crop", lambda: crop(384)()[0:60], 1.0, "frames 0-59 (2 s)"),
        ("time_60_120", "time crop", lambda: crop(384)()[60:120], 1.0, "frames 60-119 (2 s)"),
        ("time_30_90", "time crop", lambda: crop(384)()[30:90], 1.0, "frames 30-89 (2 s)"),
        ("time_0_45", "time crop", lambda: crop(640)()[0:45], 1.0, "frames 0-44 (1.5 s)"),
        ("time_75_120", "time crop", lambda: crop(640)()[75:120], 1.0, "frames 75-119 (1.5 s)"),
        ("fps25", "frame rate", crop(384), 25 / 30, "written at 25 fps (slower)"),
        ("every2nd_15fps", "frame rate", lambda: crop(384)()[::2], 0.5, "every 2nd frame at 15 fps"),
        ("blur384", "camera", lambda: [cv2.GaussianBlur(f, (0, 0), 1.2) for f in crop(384)()], 1.0,
         "Gaussian blur 1.2 px"),
        ("mirror384", "camera", lambda: [cv2.flip(f, 1) for f in crop(384)()], 1.0, "mirrored (front camera)"),
        ("lowlight640", "camera", lambda: lowlight(crop(640)(), "lowlight640"), 1.0, "55 % brightness + sensor noise"),
    ]
    variants = []
    for name, kind, frames_fn, fps_factor, detail in recipes:
        def make(frames_fn: Callable[[], list[np.ndarray]] = frames_fn, fps_factor: float = fps_factor) -> bytes:
            frames = frames_fn()
            return encode(frames, src_fps * fps_factor, codec)

        variants.append(Variant(f"genuine/{name}", kind, True, name in HELD_OUT_GENUINE, make, detail))
    return variants


# -------------------------------------------------------------------------- spoofs


def _face_square(photo: np.ndarray) -> np.ndarray:
    """A square crop of a portrait around its face, as a student would hold it up."""
    import dlib

    grey = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    scale = 2.0 if max(grey.shape) < 400 else 1.0
    faces = dlib.get_frontal_face_detector()(cv2.resize(grey, None, fx=scale, fy=scale), 1)
    h, w = photo.shape[:2]
    if len(faces):
        box = max(faces, key=lambda r: r.area())
        cx, cy = (box.left() + box.right()) / 2 / scale, (box.top() + box.bottom()) / 2 / scale
        side = min(h, w, int(box.width() / scale * 2.4))
    else:
        cx, cy, side = w / 2, h / 2, min(h, w)
    x = int(min(max(0, cx - side / 2), w - side))
    y = int(min(max(0, cy - side / 2), h - side))
    return photo[y:y + side, x:x + side]


def _plane_homography(size: int, t: float, motion: str, rng_state: dict[str, np.ndarray]) -> np.ndarray:
    """Where the photo's corners go at time ``t``: a rigid plane rotated and moved in 3D, seen by a
    pinhole camera. Every motion is one homography per frame by construction."""
    yaw = pitch = roll = 0.0
    tx = ty = 0.0
    dist = 1.0  # distance in units of the focal length
    if motion == "sway":  # like the shipped notes: slow zoom and sway
        dist = 1.0 - 0.12 * t / SPOOF_SECONDS
        tx, ty = 0.03 * math.sin(2 * math.pi * 0.4 * t), 0.02 * math.sin(2 * math.pi * 0.3 * t)
        roll = 2.0 * math.sin(2 * math.pi * 0.35 * t)
    elif motion == "tilt":  # turning the photo to fake a head turn
        yaw = 22.0 * math.sin(2 * math.pi * 0.5 * t)
        pitch = 10.0 * math.sin(2 * math.pi * 0.33 * t + 1.0)
    elif motion == "approach":  # bringing the photo closer while tilting it
        dist = 1.25 - 0.35 * t / SPOOF_SECONDS
        yaw = 12.0 * math.sin(2 * math.pi * 0.4 * t)
    elif motion == "fast":  # quick large movements
        yaw = 15.0 * math.sin(2 * math.pi * 1.5 * t)
        roll = 6.0 * math.sin(2 * math.pi * 1.1 * t)
        tx = 0.06 * math.sin(2 * math.pi * 1.3 * t)
    elif motion == "shake":  # a trembling hand: smoothed random walk in every axis
        walk = rng_state["walk"]
        i = min(len(walk) - 1, int(t * FPS))
        tx, ty, roll, yaw, pitch, dz = walk[i]
        dist = 1.0 + dz
    elif motion == "bent":  # handled by the caller (not planar); sway of the bent sheet
        yaw = 10.0 * math.sin(2 * math.pi * 0.5 * t)
    elif motion == "nod":  # (unseen set) nodding the photo while bringing it closer
        pitch = 18.0 * math.sin(2 * math.pi * 0.7 * t)
        dist = 1.15 - 0.2 * t / SPOOF_SECONDS
    elif motion == "wave":  # (unseen set) a figure of eight with roll and some yaw
        tx, ty = 0.05 * math.sin(2 * math.pi * 0.6 * t), 0.04 * math.sin(2 * math.pi * 1.2 * t)
        roll, yaw = 4.0 * math.sin(2 * math.pi * 0.6 * t), 8.0 * math.cos(2 * math.pi * 0.6 * t)
    elif motion == "handheld":  # (unseen set) a tilt carried out by a trembling hand
        walk = rng_state["walk"]
        i = min(len(walk) - 1, int(t * FPS))
        tx, ty, roll, yaw, pitch, dz = walk[i] * 0.5
        yaw += 18.0 * math.sin(2 * math.pi * 0.45 * t)
        dist = 1.0 + dz
    # motion "static": identity

    f = float(size)  # focal length in pixels
    half = size / 2.0
    corners = np.array([[-half, -half, 0], [half, -half, 0], [half, half, 0], [-half, half, 0]], np.float64)
    ry, rp, rr = (math.radians(a) for a in (yaw, pitch, roll))
    rot_y = np.array([[math.cos(ry), 0, math.sin(ry)], [0, 1, 0], [-math.sin(ry), 0, math.cos(ry)]])
    rot_x = np.array([[1, 0, 0], [0, math.cos(rp), -math.sin(rp)], [0, math.sin(rp), math.cos(rp)]])
    rot_z = np.array([[math.cos(rr), -math.sin(rr), 0], [math.sin(rr), math.cos(rr), 0], [0, 0, 1]])
    pts = corners @ (rot_z @ rot_x @ rot_y).T + np.array([tx * size, ty * size, dist * f])
    proj = pts[:, :2] / pts[:, 2:3] * f + half
    src = np.array([[0, 0], [size, 0], [size, size], [0, size]], np.float32)
    return cv2.getPerspectiveTransform(src, proj.astype(np.float32))


def _shake_walk(rng: np.random.Generator, n: int) -> np.ndarray:
    steps = rng.normal(0, 1, (n, 6))
    walk = np.cumsum(steps, axis=0)
    kernel = np.ones(7) / 7
    walk = np.stack([np.convolve(walk[:, i], kernel, "same") for i in range(6)], axis=1)
    walk -= walk.mean(axis=0)
    walk /= np.maximum(np.abs(walk).max(axis=0), 1e-9)
    return walk * np.array([0.03, 0.03, 3.0, 8.0, 6.0, 0.06])  # tx, ty, roll deg, yaw deg, pitch deg, dz


def _bend(img: np.ndarray, depth: float) -> np.ndarray:
    """A sheet bent around a vertical axis (not planar), seen from the front."""
    h, w = img.shape[:2]
    xs = np.linspace(-1, 1, w)
    # a cylinder: screen x = sin(theta), sheet arc length = theta
    theta = np.arcsin(np.clip(xs, -0.999, 0.999)) * depth + xs * (1 - depth)
    map_x = ((theta + 1) / 2 * (w - 1)).astype(np.float32)
    shade = (0.75 + 0.25 * np.cos(theta * 1.2)).astype(np.float32)
    map_x = np.tile(map_x, (h, 1))
    map_y = np.tile(np.arange(h, dtype=np.float32)[:, None], (1, w))
    bent = cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.clip(bent.astype(np.float32) * shade[None, :, None], 0, 255).astype(np.uint8)


def _finish_photo(photo: np.ndarray, finish: str, rng: np.random.Generator) -> np.ndarray:
    """What the medium does to the picture itself (moves with the photo)."""
    img = photo.astype(np.float32)
    if finish == "print":  # lower contrast, warm paper, fine paper grain, slight ink spread
        img = 40 + img * 0.7
        img *= np.array([0.92, 1.0, 1.06])  # BGR: warmer
        img += rng.normal(0, 4, img.shape[:2])[..., None]
        img = cv2.GaussianBlur(img, (0, 0), 0.8)
    elif finish == "screen":  # a phone screen: moiré bands, blue cast, raised blacks
        h, w = img.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w]
        moire = 10 * np.sin(2 * math.pi * (xx * 0.045 + yy * 0.013))
        img = 25 + img * 0.85 + moire[..., None]
        img *= np.array([1.08, 1.0, 0.92])
    elif finish == "glare":  # (unseen set) glossy print: a bright sheen across it
        h, w = img.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w]
        sheen = 90 * np.exp(-(((xx - 0.65 * w) / (0.18 * w)) ** 2 + ((yy - 0.3 * h) / (0.5 * h)) ** 2))
        img = img * 0.9 + sheen[..., None]
    elif finish == "dim":  # (unseen set) a dim room: dark picture
        img = img * 0.45 + 8
    elif finish == "noise_jpeg":  # a poor printout photographed again
        ok, buf = cv2.imencode(".jpg", np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 20])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _finish_frame(frame: np.ndarray, finish: str, noise: Optional[np.ndarray], rng: np.random.Generator,
                  index: int) -> np.ndarray:
    """What the camera adds per frame (does not move with the photo)."""
    if finish == "blur":
        return cv2.GaussianBlur(frame, (0, 0), 1.8)
    if finish in ("noise", "noise_jpeg", "dim") and noise is not None:
        # sensor noise, different every frame: a random tile of a larger noise field
        h, w = frame.shape[:2]
        y, x = (int(v) for v in rng.integers(0, noise.shape[0] - h, 2))
        return np.clip(frame.astype(np.int16) + noise[y:y + h, x:x + w], 0, 255).astype(np.uint8)
    if finish == "screen":  # refresh flicker
        return cv2.convertScaleAbs(frame, alpha=1 + 0.03 * math.sin(index * 1.7))
    return frame


def spoof_frames(photo: np.ndarray, size: int, motion: str, finish: str, name: str,
                 seconds: float = SPOOF_SECONDS) -> list[np.ndarray]:
    """``photo`` (square, around the face) held up to the camera: moved as one plane (or bent)."""
    rng = rng_for(name)
    n = int(round(seconds * FPS))
    square = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)
    square = _finish_photo(square, finish, rng)
    if motion == "bent":
        square = _bend(square, 0.35)
    state = {"walk": _shake_walk(rng, n)} if motion in ("shake", "handheld") else {}
    noise = None
    if finish in ("noise", "noise_jpeg", "dim"):
        noise = np.round(rng.standard_normal((2 * size, 2 * size, 3), dtype=np.float32) * 8).astype(np.int16)
    frames = []
    zoom = np.array([[1.15, 0, -0.075 * size], [0, 1.15, -0.075 * size], [0, 0, 1]])
    for i in range(n):
        t = i / FPS
        # the photo is a bit larger than the frame, as when held close; edges may show the wall behind
        hom = _plane_homography(size, t, motion, state)
        frame = cv2.warpPerspective(square, zoom @ hom, (size, size), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=(70, 80, 90))
        frames.append(_finish_frame(frame, finish, noise, rng, i))
    return frames


SPOOF_MOTIONS = ("sway", "tilt", "approach", "fast", "static", "shake", "bent")
SPOOF_FINISHES = ("clean", "print", "blur", "noise", "screen", "noise_jpeg")


def spoof_sources(faces: Path) -> dict[str, Callable[[], np.ndarray]]:
    """Still pictures to hold up (square crops around the face, made once): the test portraits and
    two stills of carphone."""
    cache: dict[str, np.ndarray] = {}

    def picture(name: str) -> Callable[[], np.ndarray]:
        def load() -> np.ndarray:
            if name not in cache:
                if name.startswith("carphone_f"):
                    frames, _ = read_frames((faces / "live" / "carphone.mp4").read_bytes())
                    photo = frames[int(name[len("carphone_f"):])]
                else:
                    photo = cv2.imread(str(faces / f"{name}.jpg"))
                cache[name] = _face_square(photo)
            return cache[name]
        return load

    return {name: picture(name) for name in ("obama_1", "obama_2", "obama_3", "biden_1", "carphone_f60", "carphone_f20")}


def spoof_variants(faces: Path, codec: Optional[str] = None, *, full: bool = True) -> list[Variant]:
    """Every source x motion, with finishes and sizes rotated so each appears with each motion.

    ``full=False`` gives a smaller set (one finish per motion and source) for the test suite.
    """
    codec = codec or default_codec()
    sources = spoof_sources(faces)
    variants = []
    for s_i, (source, load) in enumerate(sources.items()):
        for m_i, motion in enumerate(SPOOF_MOTIONS):
            picks = [SPOOF_FINISHES[(s_i + m_i) % len(SPOOF_FINISHES)]]
            if full:
                picks.append(SPOOF_FINISHES[(s_i + m_i + 3) % len(SPOOF_FINISHES)])
            for f_i, finish in enumerate(picks):
                size = 640 if (s_i + m_i + f_i) % 2 else 384
                name = f"spoof/{source}/{motion}/{finish}/{size}"
                held = source in HELD_OUT_SOURCES or motion in HELD_OUT_MOTIONS or finish in HELD_OUT_FINISHES

                def make(load: Callable[[], np.ndarray] = load, size: int = size, motion: str = motion,
                         finish: str = finish, name: str = name) -> bytes:
                    return encode(spoof_frames(load(), size, motion, finish, name), FPS, codec)

                variants.append(Variant(name, motion, False, held, make, f"{source}, {finish}, {size} px"))
    return variants


def shipped_notes(faces: Path) -> list[Variant]:
    """The photo-made notes in shared/faces that contain a face (looked at while tuning)."""
    return [
        Variant(f"shipped/{p.stem}", "shipped note", False, False, p.read_bytes, "zoom and sway, H.264")
        for p in sorted(faces.glob("note_*.mp4")) if p.stem != "note_noface"
    ]


# A third set, written after the thresholds were chosen and not looked at before the final
# evaluation: new crops, compression and timing for the genuine video; new motions and finishes
# for the photos (every source, including the tuning ones).
UNSEEN_MOTIONS = ("nod", "wave", "handheld")
UNSEEN_FINISHES = ("glare", "dim", "clean", "print")


def unseen_variants(faces: Path, codec: Optional[str] = None) -> list[Variant]:
    codec = codec or default_codec()
    live = faces / "live" / "carphone.mp4"
    cache: dict[str, tuple[list[np.ndarray], float]] = {}

    def src() -> tuple[list[np.ndarray], float]:
        if "f" not in cache:
            cache["f"] = read_frames(live.read_bytes())
        return cache["f"]

    def genuine(name: str, detail: str, build: Callable[[list[np.ndarray]], list[np.ndarray]],
                fps_factor: float = 1.0, crf: int = 26) -> Variant:
        def make() -> bytes:
            frames, fps = src()
            return encode(build(frames), fps * fps_factor, codec, crf=crf)
        return Variant(f"unseen/genuine/{name}", "unseen genuine", True, True, make, detail)

    def dim(frames: list[np.ndarray]) -> list[np.ndarray]:
        rng = rng_for("unseen-dim")
        return [np.clip(f.astype(np.float32) * 0.7 + rng.normal(0, 3, f.shape), 0, 255).astype(np.uint8)
                for f in frames]

    out = [
        genuine("left640_crf34", "144 px crop at the left edge, 640 px, heavy compression (CRF 34)",
                lambda fr: [_square(f, 0, 0, 144, 640) for f in fr], crf=34),
        genuine("right384_10_80", "crop at the right edge, 384 px, frames 10-79",
                lambda fr: [_square(f, 32, 0, 144, 384) for f in fr[10:80]]),
        genuine("tight640_mirror", "120 px crop around the face, mirrored, 640 px",
                lambda fr: [cv2.flip(_square(f, 30, 12, 120, 640), 1) for f in fr]),
        genuine("dim384_20fps", "dimmer with noise, every 3rd frame dropped (20 fps)",
                lambda fr: dim([_square(f, 16, 0, 144, 384) for i, f in enumerate(fr) if i % 3 != 2]), 2 / 3),
        genuine("pad384_40_100", "padded, 384 px, frames 40-99",
                lambda fr: [_pad(f, 384) for f in fr[40:100]]),
    ]
    sources = spoof_sources(faces)
    for s_i, (source, load) in enumerate(sources.items()):
        for m_i, motion in enumerate(UNSEEN_MOTIONS):
            finish = UNSEEN_FINISHES[(s_i + m_i) % len(UNSEEN_FINISHES)]
            size = 640 if (s_i + m_i) % 2 else 384
            name = f"unseen/spoof/{source}/{motion}/{finish}/{size}"

            def make(load: Callable[[], np.ndarray] = load, size: int = size, motion: str = motion,
                     finish: str = finish, name: str = name) -> bytes:
                return encode(spoof_frames(load(), size, motion, finish, name), FPS, codec)

            out.append(Variant(name, motion, False, True, make, f"{source}, {finish}, {size} px"))
    return out


def all_variants(faces: Path, codec: Optional[str] = None, *, full: bool = True) -> list[Variant]:
    return [*genuine_variants(faces / "live" / "carphone.mp4", codec), *spoof_variants(faces, codec, full=full),
            *shipped_notes(faces)]


def iter_made(variants: list[Variant]) -> Iterator[tuple[Variant, bytes]]:
    for variant in variants:
        yield variant, variant.make()


if __name__ == "__main__":  # write every variant to a folder, to look at them
    import sys

    root = Path(__file__).resolve().parents[2]
    faces_root = next(p for p in (root.parent / "shared" / "faces", Path("/work/shared/faces")) if p.is_dir())
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "variants")
    for variant, data in iter_made(all_variants(faces_root)):
        path = target / (variant.name.replace("/", "__") + ".mp4")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(path, len(data), "held out" if variant.held_out else "tuning", os.linesep, end="")
