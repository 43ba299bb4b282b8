"""The face-verifier interface shared by the local (dlib) and Rekognition back-ends."""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from integrations.presence.liveness import LivenessResult

# Reasons a verification can end with. Only MISMATCH and NO_FACE are the student's doing, so
# only those count against FACE_MAX_ATTEMPTS (see verify_queue).
from integrations.foundation.names import MATCH as MATCH
from integrations.foundation.names import MISMATCH as MISMATCH
from integrations.foundation.names import NO_FACE as NO_FACE
from integrations.foundation.names import SERVICE_ERROR as SERVICE_ERROR
from integrations.foundation.names import STUDENT_FACE_FAULTS as STUDENT_FAULTS
from integrations.foundation.names import THROTTLED as THROTTLED

STORED = "stored"  # store_reference succeeded
NO_REFERENCE = "no_reference"  # no reference photo enrolled: the student must see the teacher
BAD_IMAGE = "bad_image"  # the frame bytes are not a decodable image (a bug upstream, not the student)
INVALID_ID = "invalid_id"  # batch/student id unsafe for a path or S3 key
# Set by the note processor (verify_queue.VideoNoteProcessor), not by a verifier:
from integrations.foundation.names import CORRUPT_VIDEO as CORRUPT_VIDEO  # noqa: E402
from integrations.foundation.names import NOT_LIVE as NOT_LIVE  # noqa: E402
from integrations.foundation.names import TOO_SHORT as TOO_SHORT  # noqa: E402

_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}")


def safe_id(value: Any) -> Optional[str]:
    """``value`` as a string if it is safe inside a file path / S3 key, else None (no ``..``, ``/``)."""
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not _SAFE_ID.fullmatch(text) or ".." in text:
        return None
    return text


@dataclass(frozen=True)
class FaceResult:
    """Outcome of :meth:`FaceVerifier.verify`.

    ``similarity`` is Rekognition's percent (higher is closer); ``distance`` is dlib's embedding
    distance (lower is closer); ``threshold`` is the one that applied. ``detail`` is for logs only
    (error codes, never image bytes or credentials). ``liveness`` is the note's liveness verdict,
    attached by the note processor (None when a verifier is called directly).
    """

    matched: bool
    reason: str
    similarity: Optional[float] = None
    distance: Optional[float] = None
    threshold: Optional[float] = None
    backend: str = ""
    detail: str = ""
    liveness: Optional["LivenessResult"] = None

    @property
    def ok(self) -> bool:
        return self.matched

    @property
    def message_key(self) -> str:
        return self.reason

    @property
    def counts_as_attempt(self) -> bool:
        return self.reason in STUDENT_FAULTS

    def params(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("detail")
        data.pop("liveness")
        return data


class FaceVerifier(ABC):
    """Compares a video-note frame with the student's enrolled reference photo.

    Blocking by design: the verification queue runs it in a thread pool. Implementations must be
    safe to call from several threads and must return a result for every input, never raise.
    """

    name: str = "base"

    @abstractmethod
    def verify(self, frame_jpeg: bytes, batch: str, student_id: str) -> FaceResult:
        """Match ``frame_jpeg`` against the reference photo of ``student_id`` in ``batch``."""

    @abstractmethod
    def store_reference(self, batch: str, student_id: str, photo_jpeg: bytes) -> FaceResult:
        """Enrol (or replace) a reference photo; ``reason`` is "stored" on success."""

    def has_reference(self, batch: str, student_id: str) -> bool:  # pragma: no cover - overridden
        return False

    def close(self) -> None:
        """Release clients/models; the default has nothing to release."""
