"""AWS Rekognition verifier: ``compare_faces`` of the frame against the S3 reference photo.

Reference photos live at ``s3://{bucket}/students/{batch}/{student_id}.jpg``. One client per
verifier (boto3 clients are thread-safe; creating them is not, and is slow), with botocore's
adaptive retry mode so throttling is absorbed client-side before we report ``throttled``.
"""
from __future__ import annotations

import logging
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
    THROTTLED,
    FaceResult,
    FaceVerifier,
    safe_id,
)

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 5 * 1024 * 1024  # Rekognition's limit for images passed as Bytes

_NO_REFERENCE = {"InvalidS3ObjectException", "NoSuchKey", "NoSuchBucket", "404", "NotFound"}
_NO_FACE = {"InvalidParameterException"}  # Rekognition's answer when the source has no face
_THROTTLED = {
    "ThrottlingException", "ProvisionedThroughputExceededException", "LimitExceededException",
    "TooManyRequestsException", "SlowDown", "RequestLimitExceeded",
}
_BAD_IMAGE = {"InvalidImageFormatException", "ImageTooLargeException"}


def reference_key(batch: str, student_id: str) -> Optional[str]:
    """S3 key of a reference photo, or None when an id is unsafe."""
    b, s = safe_id(batch), safe_id(student_id)
    return None if b is None or s is None else f"students/{b}/{s}.jpg"


def error_reason(exc: BaseException) -> tuple[str, str]:
    """Map a boto exception to (reason, detail); detail is the AWS error code for logs."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _NO_REFERENCE:
            return NO_REFERENCE, code
        if code in _NO_FACE:
            return NO_FACE, code
        if code in _THROTTLED:
            return THROTTLED, code
        if code in _BAD_IMAGE:
            return BAD_IMAGE, code
        return SERVICE_ERROR, code or "ClientError"
    if isinstance(exc, BotoCoreError):
        return SERVICE_ERROR, type(exc).__name__
    return SERVICE_ERROR, type(exc).__name__


def make_clients(
    region: str, endpoint_url: Optional[str] = None, max_attempts: int = 5
) -> tuple[Any, Any]:
    """(rekognition, s3) clients sharing one retry config."""
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=region,
        retries={"mode": "adaptive", "max_attempts": int(max_attempts)},
        connect_timeout=5,
        read_timeout=15,
        max_pool_connections=64,  # one per queue worker at most
    )
    session = boto3.session.Session()
    kwargs: dict[str, Any] = {"config": config, "region_name": region}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    return session.client("rekognition", **kwargs), session.client("s3", **kwargs)


def upload_reference(s3: Any, bucket: str, batch: str, student_id: str, photo_jpeg: bytes) -> FaceResult:
    """Enrol a reference photo in S3 after checking it decodes as an image."""
    key = reference_key(batch, student_id)
    if key is None:
        return FaceResult(False, INVALID_ID, backend="rekognition")
    if not isinstance(photo_jpeg, (bytes, bytearray)) or not photo_jpeg:
        return FaceResult(False, BAD_IMAGE, backend="rekognition")
    if cv2.imdecode(np.frombuffer(photo_jpeg, dtype=np.uint8), cv2.IMREAD_COLOR) is None:
        return FaceResult(False, BAD_IMAGE, backend="rekognition")
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=bytes(photo_jpeg), ContentType="image/jpeg")
    except Exception as exc:
        reason, detail = error_reason(exc)
        log.warning("reference upload failed: %s", detail)
        return FaceResult(False, reason, backend="rekognition", detail=detail)
    return FaceResult(True, STORED, backend="rekognition")


class RekognitionFaceVerifier(FaceVerifier):
    """Match when Rekognition reports a face at or above ``threshold`` percent similarity.

    ``check_reference=True`` does a ``head_object`` first: one more round trip, but a missing photo
    is reported as ``no_reference`` even when the bucket policy hides it behind AccessDenied.
    """

    name = "rekognition"

    def __init__(
        self,
        bucket: str,
        *,
        threshold: float = 80.0,
        region: str = "us-east-1",
        endpoint_url: Optional[str] = None,
        max_attempts: int = 5,
        check_reference: bool = False,
        rekognition: Any = None,
        s3: Any = None,
    ):
        self.bucket = bucket
        self.threshold = float(threshold)
        self.check_reference = check_reference
        if rekognition is None or s3 is None:
            rek, s3c = make_clients(region, endpoint_url, max_attempts)
            rekognition = rekognition or rek
            s3 = s3 or s3c
        self.rekognition = rekognition
        self.s3 = s3

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> "RekognitionFaceVerifier":
        return cls(
            settings.aws_s3_bucket,
            threshold=settings.face_match_threshold,
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            **kwargs,
        )

    def _result(self, matched: bool, reason: str, similarity: Optional[float] = None, detail: str = "") -> FaceResult:
        return FaceResult(matched, reason, similarity, None, self.threshold, self.name, detail)

    def has_reference(self, batch: str, student_id: str) -> bool:
        key = reference_key(batch, student_id)
        if key is None:
            return False
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
            return True
        except Exception:
            return False

    def verify(self, frame_jpeg: bytes, batch: str, student_id: str) -> FaceResult:
        key = reference_key(batch, student_id)
        if key is None:
            return self._result(False, INVALID_ID)
        if not isinstance(frame_jpeg, (bytes, bytearray)) or not frame_jpeg or len(frame_jpeg) > MAX_IMAGE_BYTES:
            return self._result(False, BAD_IMAGE)
        try:
            if self.check_reference:
                self.s3.head_object(Bucket=self.bucket, Key=key)
            response = self.rekognition.compare_faces(
                SourceImage={"Bytes": bytes(frame_jpeg)},
                TargetImage={"S3Object": {"Bucket": self.bucket, "Name": key}},
                SimilarityThreshold=self.threshold,
            )
        except Exception as exc:
            reason, detail = error_reason(exc)
            if reason == SERVICE_ERROR:
                log.warning("rekognition compare_faces failed: %s", detail)
            return self._result(False, reason, detail=detail)
        scores = [float(m.get("Similarity", 0.0)) for m in response.get("FaceMatches") or []]
        best = max(scores) if scores else None
        if best is not None and best >= self.threshold:
            return self._result(True, MATCH, round(best, 2))
        return self._result(False, MISMATCH, None if best is None else round(best, 2))

    def store_reference(self, batch: str, student_id: str, photo_jpeg: bytes) -> FaceResult:
        return upload_reference(self.s3, self.bucket, batch, student_id, photo_jpeg)
