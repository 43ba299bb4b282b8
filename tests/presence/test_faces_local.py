from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from integrations.presence.faces import make_verifier
from integrations.presence.faces.local import LocalFaceVerifier
from integrations.presence.video import extract_frame
from integrations.settings import load_settings


@pytest.fixture
def verifier(faces_dir: Path) -> LocalFaceVerifier:
    return LocalFaceVerifier(faces_dir, tolerance=0.6)


def frame(note_bytes, name: str) -> bytes:
    r = extract_frame(note_bytes(name))
    assert r.frame_jpeg
    return r.frame_jpeg


def test_same_person_matches(verifier, note_bytes) -> None:
    r = verifier.verify(frame(note_bytes, "obama_2"), "b1", "s1")
    assert (r.matched, r.reason, r.backend) == (True, "match", "local")
    assert r.distance == pytest.approx(0.40, abs=0.05) and r.threshold == 0.6


def test_other_person_does_not_match(verifier, note_bytes) -> None:
    r = verifier.verify(frame(note_bytes, "biden_1"), "b1", "s1")
    assert (r.matched, r.reason) == (False, "mismatch")
    assert r.distance == pytest.approx(0.89, abs=0.05)
    assert r.counts_as_attempt


def test_no_face_note(verifier, note_bytes) -> None:
    extracted = extract_frame(note_bytes("noface"))
    assert extracted.reason == "no_face"
    r = verifier.verify(extracted.frame_jpeg, "b1", "s1")  # even if a caller sends it anyway
    assert (r.matched, r.reason) == (False, "no_face")


def test_missing_reference(verifier, note_bytes) -> None:
    r = verifier.verify(frame(note_bytes, "obama_2"), "b1", "nobody")
    assert (r.matched, r.reason) == (False, "no_reference")
    assert not r.counts_as_attempt


def test_reference_without_face(faces_dir: Path, verifier, note_bytes, tmp_path: Path) -> None:
    flag = extract_frame(note_bytes("noface")).frame_jpeg
    (faces_dir / "b1" / "s9.jpg").write_bytes(flag)
    r = verifier.verify(frame(note_bytes, "obama_2"), "b1", "s9")
    assert r.reason == "no_reference" and "no face" in r.detail


@pytest.mark.parametrize("batch, student", [("..", "s1"), ("b1", "../b1/s1"), ("b1", ""), ("b/1", "s1"), (None, "s1")])
def test_unsafe_ids_refused(verifier, note_bytes, batch, student) -> None:
    assert verifier.verify(frame(note_bytes, "obama_2"), batch, student).reason == "invalid_id"


@pytest.mark.parametrize("data", [b"", b"not a jpeg", None])
def test_bad_frame_bytes(verifier, data) -> None:
    assert verifier.verify(data, "b1", "s1").reason == "bad_image"


def test_reference_embedding_cached_by_mtime(verifier, faces_dir: Path, shared_faces: Path, note_bytes) -> None:
    img = frame(note_bytes, "obama_2")
    calls: list[int] = []
    real = verifier.embed

    def counting(rgb, upsamples=(0, 1)):
        calls.append(len(upsamples))
        return real(rgb, upsamples)

    verifier.embed = counting  # type: ignore[method-assign]
    verifier.verify(img, "b1", "s1")
    verifier.verify(img, "b1", "s1")
    assert len(calls) == 3  # reference once, frame twice
    ref = faces_dir / "b1" / "s1.jpg"
    shutil.copy(shared_faces / "biden_1.jpg", ref)  # re-enrol: new photo, new mtime/size
    st = ref.stat()
    os.utime(ref, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert verifier.verify(img, "b1", "s1").reason == "mismatch"
    assert len(calls) == 5


def test_store_reference(tmp_path: Path, shared_faces: Path, note_bytes) -> None:
    v = LocalFaceVerifier(tmp_path / "faces")
    assert not v.has_reference("b2", "s2")
    assert v.store_reference("b2", "s2", (shared_faces / "obama_3.jpg").read_bytes()).reason == "stored"
    assert v.has_reference("b2", "s2")
    assert v.verify(frame(note_bytes, "obama_2"), "b2", "s2").matched
    assert v.store_reference("b2", "s3", b"junk").reason == "bad_image"
    flag = extract_frame(note_bytes("noface")).frame_jpeg
    assert v.store_reference("b2", "s3", flag).reason == "no_face"
    assert v.store_reference("..", "s3", flag).reason == "invalid_id"
    assert sorted(p.name for p in (tmp_path / "faces" / "b2").iterdir()) == ["s2.jpg"]


def test_factory_builds_local_by_default(tmp_path: Path) -> None:
    v = make_verifier(load_settings(faces_dir=tmp_path, local_face_tolerance=0.5))
    assert isinstance(v, LocalFaceVerifier) and v.tolerance == 0.5 and v.faces_dir == tmp_path
