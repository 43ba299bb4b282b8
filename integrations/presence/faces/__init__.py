"""Face verification back-ends, chosen by the FACE_VERIFIER setting."""
from __future__ import annotations

from typing import Any

from integrations.presence.faces.base import FaceResult, FaceVerifier, safe_id
from integrations.presence.faces.local import LocalFaceVerifier
from integrations.presence.faces.rekognition import RekognitionFaceVerifier

__all__ = ["FaceResult", "FaceVerifier", "make_verifier", "safe_id"]


def make_verifier(settings: Any, **kwargs: Any) -> FaceVerifier:
    """Build the configured verifier ("local" or "rekognition"); boto3 and dlib are imported only when used."""
    kind = getattr(settings, "face_verifier", "local")
    if kind == "rekognition":
        return RekognitionFaceVerifier.from_settings(settings, **kwargs)
    if kind == "local":
        return LocalFaceVerifier.from_settings(settings)
    raise ValueError(f"unknown FACE_VERIFIER {kind!r} (expected 'local' or 'rekognition')")
