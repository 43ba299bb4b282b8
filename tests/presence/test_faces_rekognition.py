from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from moto import mock_aws

from integrations.presence.faces import make_verifier
from integrations.presence.faces.rekognition import (
    RekognitionFaceVerifier, make_clients, reference_key, upload_reference,
)
from integrations.settings import load_settings

BUCKET = "attendance-faces"
FRAME = b"\xff\xd8fake-jpeg-frame"


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def rek():
    config = Config(retries={"mode": "standard", "max_attempts": 1})
    client = boto3.client("rekognition", region_name="us-east-1", config=config)
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def expected(key: str = "students/b1/s1.jpg", threshold: float = 80.0) -> dict:
    return {
        "SourceImage": {"Bytes": FRAME},
        "TargetImage": {"S3Object": {"Bucket": BUCKET, "Name": key}},
        "SimilarityThreshold": threshold,
    }


def verifier(rek_client, s3_client=None, **kw) -> RekognitionFaceVerifier:
    return RekognitionFaceVerifier(BUCKET, rekognition=rek_client, s3=s3_client or object(), **kw)


def test_match(rek) -> None:
    client, stub = rek
    stub.add_response(
        "compare_faces",
        {"FaceMatches": [{"Similarity": 97.123, "Face": {"Confidence": 99.9}}], "UnmatchedFaces": []},
        expected(),
    )
    r = verifier(client).verify(FRAME, "b1", "s1")
    assert (r.matched, r.reason, r.similarity, r.threshold, r.backend) == (True, "match", 97.12, 80.0, "rekognition")


def test_mismatch(rek) -> None:
    client, stub = rek
    stub.add_response("compare_faces", {"FaceMatches": [], "UnmatchedFaces": [{"Confidence": 99.0}]}, expected())
    r = verifier(client).verify(FRAME, "b1", "s1")
    assert (r.matched, r.reason, r.similarity) == (False, "mismatch", None)


@pytest.mark.parametrize(
    "code, reason",
    [
        ("InvalidS3ObjectException", "no_reference"),
        ("InvalidParameterException", "no_face"),
        ("ThrottlingException", "throttled"),
        ("ProvisionedThroughputExceededException", "throttled"),
        ("InvalidImageFormatException", "bad_image"),
        ("AccessDeniedException", "service_error"),
        ("InternalServerError", "service_error"),
    ],
)
def test_error_mapping(rek, code: str, reason: str) -> None:
    client, stub = rek
    stub.add_client_error("compare_faces", service_error_code=code, http_status_code=400, expected_params=expected())
    r = verifier(client).verify(FRAME, "b1", "s1")
    assert (r.matched, r.reason, r.detail) == (False, reason, code)


def test_input_refused_without_calling_aws(rek) -> None:
    client, _ = rek  # no stubbed responses: any call would fail the test
    v = verifier(client)
    assert v.verify(b"", "b1", "s1").reason == "bad_image"
    assert v.verify(b"x" * (5 * 1024 * 1024 + 1), "b1", "s1").reason == "bad_image"
    assert v.verify(FRAME, "../b1", "s1").reason == "invalid_id"


def test_check_reference_with_moto_s3(rek, s3, shared_faces: Path) -> None:
    client, stub = rek
    v = verifier(client, s3, check_reference=True)
    r = v.verify(FRAME, "b1", "s1")  # head_object 404 from moto: no Rekognition call made
    assert (r.reason, r.detail) == ("no_reference", "404")
    assert upload_reference(s3, BUCKET, "b1", "s1", (shared_faces / "obama_1.jpg").read_bytes()).reason == "stored"
    stub.add_response("compare_faces", {"FaceMatches": [{"Similarity": 91.0}]}, expected())
    assert v.verify(FRAME, "b1", "s1").matched


def test_upload_reference_against_moto(s3, shared_faces: Path) -> None:
    photo = (shared_faces / "obama_1.jpg").read_bytes()
    v = RekognitionFaceVerifier(BUCKET, rekognition=object(), s3=s3)
    assert not v.has_reference("b1", "s1")
    assert v.store_reference("b1", "s1", photo).reason == "stored"
    head = s3.head_object(Bucket=BUCKET, Key="students/b1/s1.jpg")
    assert head["ContentType"] == "image/jpeg" and head["ContentLength"] == len(photo)
    assert v.has_reference("b1", "s1")
    assert v.store_reference("b1", "s2", b"not an image").reason == "bad_image"
    assert v.store_reference("b1", "a/b", photo).reason == "invalid_id"
    assert upload_reference(s3, "no-such-bucket", "b1", "s1", photo).reason == "no_reference"


def test_reference_key() -> None:
    assert reference_key("B-2024", "21A91A0501") == "students/B-2024/21A91A0501.jpg"
    assert reference_key("b", "..") is None


def test_clients_use_adaptive_retries_and_endpoint() -> None:
    rek, s3 = make_clients("eu-west-1", "http://localhost:5000", max_attempts=7)
    for client in (rek, s3):
        assert client.meta.config.retries["mode"] == "adaptive"
        assert client.meta.config.retries["total_max_attempts"] == 8  # botocore: retries + first try
        assert client.meta.endpoint_url == "http://localhost:5000"
        assert client.meta.region_name == "eu-west-1"


def test_factory_builds_rekognition_once() -> None:
    settings = load_settings(face_verifier="rekognition", face_match_threshold=90, aws_s3_bucket="bkt")
    v = make_verifier(settings)
    assert isinstance(v, RekognitionFaceVerifier)
    assert (v.bucket, v.threshold) == ("bkt", 90.0)
    assert v.rekognition.meta.config.retries["mode"] == "adaptive"
