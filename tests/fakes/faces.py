"""The one fake face verifier of the test suite (a fake: never used by the product).

Answers come, in order, from: a frame that carries a ``FAKE-NOTE:`` marker (the reliability
tests send such notes, header-only MP4s from tests/fakes/notes.py that pass the header probe,
and skip decoding), then a script of results, then ``default``.
Every call is recorded (frame bytes, batch, student); ``raise_next`` makes the next calls raise.
"""
from __future__ import annotations

import collections
import threading
from typing import Optional

from integrations.presence.faces.base import (
    MATCH,
    MISMATCH,
    NO_FACE,
    STORED,
    FaceResult,
    FaceVerifier,
)
from tests.fakes.notes import FAKE_MARK, fake_note

FAKE_MATCH = fake_note("match")
FAKE_MISMATCH = fake_note("mismatch")
FAKE_NOFACE = fake_note("noface")

MATCHED = FaceResult(True, MATCH, similarity=99.1, backend="fake")
MISMATCHED = FaceResult(False, MISMATCH, similarity=12.0, backend="fake")
NO_FACE_FOUND = FaceResult(False, NO_FACE, backend="fake")
THROTTLED = FaceResult(False, "throttled", backend="fake", detail="ThrottlingException")
SERVICE_ERROR = FaceResult(False, "service_error", backend="fake", detail="EndpointConnectionError")


class FakeFaceVerifier(FaceVerifier):
    name = "fake"

    def __init__(self, *results: FaceResult, default: FaceResult = MATCHED, has_reference: bool = True):
        self.script: collections.deque[FaceResult] = collections.deque(results)
        self.default = default
        self.calls: list[tuple[bytes, str, str]] = []
        self.raise_next = 0
        self.references = has_reference
        self._lock = threading.Lock()

    def then(self, *results: FaceResult) -> "FakeFaceVerifier":
        self.script.extend(results)
        return self

    def verify(self, frame_jpeg: bytes, batch: str, student_id: str) -> FaceResult:
        with self._lock:
            self.calls.append((bytes(frame_jpeg), batch, student_id))
            if self.raise_next:
                self.raise_next -= 1
                raise RuntimeError("verifier crashed")
            head = bytes(frame_jpeg[:256])
            if FAKE_MARK + b"match" in head:
                return MATCHED
            if FAKE_MARK + b"noface" in head:
                return NO_FACE_FOUND
            if FAKE_MARK + b"mismatch" in head:
                return MISMATCHED
            return self.script.popleft() if self.script else self.default

    def store_reference(self, batch: str, student_id: str, photo_jpeg: bytes) -> FaceResult:
        return FaceResult(True, STORED, backend=self.name)

    def has_reference(self, batch: str, student_id: str) -> bool:
        return self.references

    def last_student(self) -> Optional[str]:
        return self.calls[-1][2] if self.calls else None
