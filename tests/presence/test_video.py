from __future__ import annotations

import cv2
import numpy as np
import pytest

from integrations.presence import video
from integrations.presence.video import check_video_note, extract_frame, validate_video_note

MB = 1024 * 1024


# -- validation (metadata only) ----------------------------------------------------------


def test_valid_note_passes() -> None:
    r = validate_video_note(b"x" * 100, duration=3, max_bytes=MB, max_seconds=60)
    assert (r.ok, r.reason) == (True, "ok")


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"kind": "video"}, "not_video_note"),
        ({"kind": "photo"}, "not_video_note"),
        ({"forwarded": True}, "forwarded"),
        ({"file_size": 9 * MB}, "too_large"),
        ({"duration": 61}, "too_long"),
    ],
)
def test_validation_refusals(kwargs: dict, reason: str) -> None:
    args = {"duration": 3, "max_bytes": 8 * MB, "max_seconds": 60, **kwargs}
    r = validate_video_note(b"x" * 10, **args)
    assert (r.ok, r.reason, r.message_key) == (False, reason, reason)


def test_size_counts_actual_bytes_and_params() -> None:
    r = validate_video_note(b"x" * (2 * MB), file_size=10, max_bytes=MB, max_seconds=60)
    assert r.reason == "too_large"
    assert r.params()["size_mb"] == 2.0 and r.params()["max_mb"] == 1.0


def test_validate_before_download_and_defaults_from_settings() -> None:
    r = validate_video_note(None, file_size=9 * MB, duration=5)
    assert (r.reason, r.max_bytes, r.max_seconds) == ("too_large", 8 * MB, 60)
    assert validate_video_note(None, file_size=1000, duration="nonsense").ok


def test_empty_bytes_are_corrupt() -> None:
    assert validate_video_note(b"", max_bytes=MB, max_seconds=60).reason == "corrupt_video"


# -- frame extraction ----------------------------------------------------------------------


def _decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def test_frame_7_with_a_face(note_bytes) -> None:
    r = extract_frame(note_bytes("obama_2"))
    assert (r.ok, r.reason, r.index, r.face_found) == (True, "ok", 7, True)
    assert r.frames_decoded == 8  # stops as soon as frame 7 has a face
    assert _decode(r.frame_jpeg).shape == (384, 384, 3) and (r.width, r.height) == (384, 384)


def test_no_face_scans_a_bounded_number_of_frames(note_bytes) -> None:
    r = extract_frame(note_bytes("noface"), max_scan_frames=30)
    assert (r.ok, r.reason, r.face_found, r.index) == (False, "no_face", False, 7)
    assert r.frames_decoded == 30
    assert r.frame_jpeg  # frame 7 is still there for a caller that wants it


def test_falls_back_to_sharpest_face_frame(note_bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    real = video._face_sharpness
    calls: list[int] = []

    def no_face_in_frame_7(frame, size):  # pretend frame 7 is blurred / turned away
        calls.append(size)
        return None if len(calls) <= 2 else real(frame, size)

    monkeypatch.setattr(video, "_face_sharpness", no_face_in_frame_7)
    r = extract_frame(note_bytes("obama_2"), detect_every=3, max_faces=4)
    assert r.ok and r.face_found and r.index in {10, 13, 16, 19}
    assert r.sharpness and r.sharpness > 0
    assert calls == [256, 384, 256, 256, 256, 256]  # frame 7 twice (small-face retry), then 4 faces


def test_short_note_uses_last_frame(tmp_path, shared_faces) -> None:
    photo = cv2.imread(str(shared_faces / "obama_2.jpg"))
    side = min(photo.shape[:2])
    img = cv2.resize(photo[:side, :side], (320, 320))  # square crop from the top keeps the face
    path = tmp_path / "short.mp4"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (320, 320))
    for _ in range(3):
        out.write(img)
    out.release()
    r = extract_frame(path.read_bytes())
    assert r.ok and r.index == 2


@pytest.mark.parametrize("data", [b"", b"\x00" * 1000, b"not a video at all" * 50, None, "text", 123])
def test_garbage_never_raises(data) -> None:
    r = extract_frame(data)
    assert (r.ok, r.reason) == (False, "corrupt_video")


def test_truncated_and_non_video_bytes(note_bytes, shared_faces) -> None:
    assert extract_frame(note_bytes("obama_2")[:5000]).reason == "corrupt_video"
    # FFmpeg reads a JPEG as a one-frame video; Telegram never sends one as a video note, and a
    # still photo is no weaker than a note filmed from a photo, so it is simply not an error.
    still = extract_frame((shared_faces / "obama_1.jpg").read_bytes())
    assert still.reason in {"ok", "corrupt_video"} and still.index in {0, None}


def test_decoded_duration_rechecked(note_bytes) -> None:
    assert extract_frame(note_bytes("obama_2"), max_seconds=1).reason == "too_long"
    assert extract_frame(note_bytes("obama_2"), max_seconds=3).ok


def test_check_video_note_combines_both(note_bytes) -> None:
    data = note_bytes("obama_2")
    assert check_video_note(data, forwarded=True).reason == "forwarded"
    r = check_video_note(data, duration=3, file_size=len(data))
    assert r.ok and r.index == 7
    assert check_video_note(data, duration=3, max_seconds=2).reason == "too_long"
