"""Offline face verifier: dlib HOG detector + 5-point landmarks + ResNet face embedding.

Same models and defaults as the ``face_recognition`` package (which this replaces in a dozen
lines): two photos of one person are usually < 0.6 apart. Reference embeddings are cached by
(path, mtime, size), so re-enrolling a photo invalidates its cache entry without a restart.
dlib keeps the GIL and its network holds scratch buffers, so model calls are serialised by a lock;
throughput is ~10 verifications/s per core at 384 px.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from integrations.presence.faces.base import (
    BAD_IMAGE,
    INVALID_ID,
    MATCH,
    MISMATCH,
    NO_FACE,
    NO_REFERENCE,
    SERVICE_ERROR,
    STORED,
    FaceResult,
    FaceVerifier,
    safe_id,
)

log = logging.getLogger(__name__)


class _Models:
    """dlib models, loaded once per process on first use (~0.2 s, ~30 MB)."""

    _lock = threading.Lock()
    _loaded: Optional[tuple[Any, Any, Any]] = None

    @classmethod
    def get(cls) -> tuple[Any, Any, Any]:
        with cls._lock:
            if cls._loaded is None:
                import dlib
                import face_recognition_models as frm

                cls._loaded = (
                    dlib.get_frontal_face_detector(),
                    dlib.shape_predictor(frm.pose_predictor_five_point_model_location()),
                    dlib.face_recognition_model_v1(frm.face_recognition_model_location()),
                )
            return cls._loaded


class LocalFaceVerifier(FaceVerifier):
    """Reference photos at ``{faces_dir}/{batch}/{student_id}.jpg``; match when distance <= tolerance."""

    name = "local"

    def __init__(self, faces_dir: os.PathLike[str] | str, tolerance: float = 0.6, cache_size: int = 4096):
        self.faces_dir = Path(faces_dir)
        self.tolerance = float(tolerance)
        self._cache: OrderedDict[str, tuple[tuple[int, int], Optional[np.ndarray]]] = OrderedDict()
        self._cache_size = max(1, int(cache_size))
        self._dlib_lock = threading.Lock()
        self._cache_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any) -> "LocalFaceVerifier":
        return cls(settings.faces_dir, settings.local_face_tolerance)

    def pool_args(self) -> tuple[str, float]:
        """What a worker process needs to build the same verifier (see note_analysis.verify_in_worker):
        the embedding holds the GIL for ~90 ms, so with a note pool it runs there too. References
        are files, so a photo enrolled here is seen by the workers (cache keyed by mtime)."""
        return (str(self.faces_dir), self.tolerance)

    # -- embedding -------------------------------------------------------------------------

    def embed(self, rgb: np.ndarray, upsamples: tuple[int, ...] = (0, 1)) -> Optional[np.ndarray]:
        """128-d embedding of the largest face, trying each upsample level until one finds a face.

        Upsampling finds smaller faces but costs ~4x; video-note selfies are large, so 0 first.
        """
        detector, shaper, net = _Models.get()
        with self._dlib_lock:
            for up in upsamples:
                faces = detector(rgb, up)
                if len(faces):
                    box = max(faces, key=lambda r: r.area())
                    shape = shaper(rgb, box)
                    return np.asarray(net.compute_face_descriptor(rgb, shape), dtype=np.float64)
        return None

    @staticmethod
    def _decode(jpeg: Any) -> Optional[np.ndarray]:
        if not isinstance(jpeg, (bytes, bytearray, memoryview)) or len(jpeg) == 0:
            return None
        img = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
        if img is None or img.size == 0:
            return None
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def _path(self, batch: Any, student_id: Any) -> Optional[Path]:
        b, s = safe_id(batch), safe_id(student_id)
        return None if b is None or s is None else self.faces_dir / b / f"{s}.jpg"

    def _reference(self, path: Path) -> tuple[bool, Optional[np.ndarray]]:
        """(exists, embedding); embedding None means the photo has no detectable face."""
        try:
            st = path.stat()
        except OSError:
            return False, None
        key, stamp = str(path), (st.st_mtime_ns, st.st_size)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == stamp:
                self._cache.move_to_end(key)
                return True, hit[1]
        try:
            rgb = self._decode(path.read_bytes())
        except OSError:
            return False, None
        emb = self.embed(rgb, (1, 2)) if rgb is not None else None  # enrolment photos: be thorough
        with self._cache_lock:
            self._cache[key] = (stamp, emb)
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return True, emb

    # -- FaceVerifier ----------------------------------------------------------------------

    def verify(self, frame_jpeg: bytes, batch: str, student_id: str) -> FaceResult:
        def result(matched: bool, reason: str, distance: Optional[float] = None, detail: str = "") -> FaceResult:
            return FaceResult(matched, reason, None, distance, self.tolerance, self.name, detail)

        try:
            path = self._path(batch, student_id)
            if path is None:
                return result(False, INVALID_ID)
            exists, ref = self._reference(path)
            if not exists:
                return result(False, NO_REFERENCE, detail="reference photo missing")
            if ref is None:
                return result(False, NO_REFERENCE, detail="no face in reference photo")
            rgb = self._decode(frame_jpeg)
            if rgb is None:
                return result(False, BAD_IMAGE)
            emb = self.embed(rgb)
            if emb is None:
                return result(False, NO_FACE)
            distance = round(float(np.linalg.norm(emb - ref)), 4)
            return result(distance <= self.tolerance, MATCH if distance <= self.tolerance else MISMATCH, distance)
        except Exception as exc:  # a verifier never raises; the queue still reports something
            log.exception("local face verification failed")
            return result(False, SERVICE_ERROR, detail=type(exc).__name__)

    def has_reference(self, batch: str, student_id: str) -> bool:
        path = self._path(batch, student_id)
        return path is not None and path.is_file()

    def store_reference(self, batch: str, student_id: str, photo_jpeg: bytes) -> FaceResult:
        """Write the photo atomically after checking it decodes and shows a face."""
        path = self._path(batch, student_id)
        if path is None:
            return FaceResult(False, INVALID_ID, backend=self.name)
        rgb = self._decode(photo_jpeg)
        if rgb is None:
            return FaceResult(False, BAD_IMAGE, backend=self.name)
        if self.embed(rgb, (1, 2)) is None:
            return FaceResult(False, NO_FACE, backend=self.name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(bytes(photo_jpeg))
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("could not store reference photo: %s", type(exc).__name__)
            return FaceResult(False, SERVICE_ERROR, backend=self.name, detail=type(exc).__name__)
        return FaceResult(True, STORED, backend=self.name)
