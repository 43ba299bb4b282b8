"""Checks a reference photo before it is enrolled: one face, big, sharp and lit well enough.

Why here: the face verifiers read these photos, so the rules that make a photo usable for them
live beside them. The image's size is read from its header (Pillow opens lazily) and anything
over the pixel limit is refused before a single pixel is decoded (decompression bombs).
"""
from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from integrations.presence.faces.local import _Models

FORMATS = {"JPEG", "PNG"}
_detector_lock = threading.Lock()


@dataclass(frozen=True)
class PhotoRules:
    max_pixels: int = 20_000_000
    min_side: int = 200
    min_face_fraction: float = 0.08  # face width / photo width
    min_sharpness: float = 25.0  # variance of the Laplacian over the face
    brightness: tuple[float, float] = (40.0, 220.0)  # mean grey level over the face
    stored_max_side: int = 1600
    jpeg_quality: int = 90


@dataclass(frozen=True)
class PhotoCheck:
    """``ok`` with the JPEG to store, or ``problem``: a sentence for the person uploading."""

    ok: bool
    problem: str = ""
    jpeg: bytes = b""
    width: int = 0
    height: int = 0
    faces: int = 0


def header_size(data: bytes) -> Optional[tuple[int, int, str]]:
    """(width, height, format) from the header only; None if it is not an image Pillow knows."""
    try:
        with Image.open(io.BytesIO(data)) as img:  # lazy: reads the header, decodes nothing
            return int(img.size[0]), int(img.size[1]), str(img.format or "")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def _faces(rgb: np.ndarray) -> list[object]:
    detector = _Models.get()[0]
    with _detector_lock:
        return list(detector(rgb, 1))


def check_reference_photo(data: bytes, rules: PhotoRules = PhotoRules()) -> PhotoCheck:
    """Validate and normalise an uploaded photo (blocking: run it off the event loop)."""
    size = header_size(data)
    if size is None:
        return PhotoCheck(False, "This file is not a JPEG or PNG image.")
    width, height, fmt = size
    if fmt not in FORMATS:
        return PhotoCheck(False, f"Only JPEG and PNG photos are accepted (this is {fmt or 'unknown'}).")
    if width * height > rules.max_pixels:
        return PhotoCheck(False, f"The photo is {width}×{height} ({width * height / 1e6:.0f} megapixels); "
                                 f"at most {rules.max_pixels / 1e6:.0f} megapixels are accepted.",
                          width=width, height=height)
    if min(width, height) < rules.min_side:
        return PhotoCheck(False, f"The photo is {width}×{height}; it must be at least "
                                 f"{rules.min_side} pixels on each side.", width=width, height=height)
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        return PhotoCheck(False, "The image could not be decoded (damaged file?).", width=width, height=height)
    scale = min(1.0, rules.stored_max_side / max(bgr.shape[:2]))
    if scale < 1.0:
        bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    faces = _faces(rgb)
    if len(faces) != 1:
        problem = ("No face was found in the photo." if not faces
                   else f"{len(faces)} faces were found; the photo must show exactly one person.")
        return PhotoCheck(False, problem, width=width, height=height, faces=len(faces))
    box = faces[0]
    left, top = max(0, box.left()), max(0, box.top())  # type: ignore[attr-defined]
    right, bottom = min(rgb.shape[1], box.right()), min(rgb.shape[0], box.bottom())  # type: ignore[attr-defined]
    if (right - left) < rules.min_face_fraction * rgb.shape[1] or right <= left or bottom <= top:
        return PhotoCheck(False, "The face is too small in the photo; take it closer.", width=width,
                          height=height, faces=1)
    grey = cv2.cvtColor(bgr[top:bottom, left:right], cv2.COLOR_BGR2GRAY)
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    if sharpness < rules.min_sharpness:
        return PhotoCheck(False, "The face is blurred; take a sharper photo.", width=width, height=height, faces=1)
    brightness = float(grey.mean())
    low, high = rules.brightness
    if not low <= brightness <= high:
        return PhotoCheck(False, f"The face is too {'dark' if brightness < low else 'bright'}; take the photo "
                                 "in even light.", width=width, height=height, faces=1)
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, rules.jpeg_quality])
    if not ok:
        return PhotoCheck(False, "The photo could not be re-encoded.", width=width, height=height, faces=1)
    return PhotoCheck(True, jpeg=encoded.tobytes(), width=width, height=height, faces=1)
