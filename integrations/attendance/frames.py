"""Keeps the frame of a face check the face service could not do, for the outbox.

The verification queue hands its callback the result only; wrapping the verifier (once, when
the app is assembled) lets the outcome workflow take the frame by student id and park it.
"""
from __future__ import annotations

import collections
import threading
from typing import Optional

from integrations.foundation.names import FACE_SERVICE_DOWN
from integrations.presence.faces.base import FaceResult, FaceVerifier
from integrations.storage.outbox import MAX_FRAME_BYTES


class FrameKeeper(FaceVerifier):
    """Wraps the queue's verifier and remembers the last frame it could not check (service down).

    The verification queue hands ``on_done`` the result only; the hook takes the frame from here
    (by student id) to put it in the outbox. Bounded: at most ``keep`` frames are held.
    """

    def __init__(self, inner: FaceVerifier, keep: int = 256):
        self.inner = inner
        self.name = inner.name
        pool_args = getattr(inner, "pool_args", None)
        if callable(pool_args):  # the local verifier may run in the note pool: keep that possible
            self.pool_args = pool_args
        self.keep = keep
        self._frames: "collections.OrderedDict[str, tuple[str, bytes]]" = collections.OrderedDict()
        self._lock = threading.Lock()

    def verify(self, frame_jpeg: bytes, batch: str, student_id: str) -> FaceResult:
        result = self.inner.verify(frame_jpeg, batch, student_id)
        if result.reason in FACE_SERVICE_DOWN and frame_jpeg and len(frame_jpeg) <= MAX_FRAME_BYTES:
            with self._lock:
                self._frames[str(student_id)] = (str(batch), bytes(frame_jpeg))
                self._frames.move_to_end(str(student_id))
                while len(self._frames) > self.keep:
                    self._frames.popitem(last=False)
        return result

    def take(self, student_id: str) -> Optional[tuple[str, bytes]]:
        """(batch, frame) kept for this student, once."""
        with self._lock:
            return self._frames.pop(str(student_id), None)

    def store_reference(self, batch: str, student_id: str, photo_jpeg: bytes) -> FaceResult:
        return self.inner.store_reference(batch, student_id, photo_jpeg)

    def has_reference(self, batch: str, student_id: str) -> bool:
        return self.inner.has_reference(batch, student_id)

    def close(self) -> None:
        self.inner.close()
