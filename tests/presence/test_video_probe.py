"""Issue 14 item 2: a note's container, codec and frame sizes come from its headers, not a decoder."""
from __future__ import annotations

import io
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from integrations.presence.video_probe import probe, sps_size
from tests.fakes.notes import fake_note, mjpg_avi_bomb, mp4_note, sps


def _written(tmp_path: Path, fourcc: str, side: int, ext: str = "mp4") -> bytes:
    path = tmp_path / f"note.{ext}"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 30, (side, side))
    for i in range(3):
        writer.write(np.full((side, side, 3), i * 40, np.uint8))
    writer.release()
    return path.read_bytes()


def test_real_video_notes_pass(shared_faces: Path) -> None:
    for name in ("note_obama_2.mp4", "note_biden_1.mp4", "note_noface.mp4"):
        result = probe((shared_faces / name).read_bytes())
        assert (result.ok, result.codec, result.width, result.height) == (True, "avc1", 384, 384), name


def test_notes_written_by_opencv_pass_when_small(tmp_path: Path) -> None:
    assert probe(_written(tmp_path, "mp4v", 320)).ok
    big = probe(_written(tmp_path, "mp4v", 1600))
    assert (big.ok, big.reason, big.width) == (False, "too_big_frame", 1600)


@pytest.mark.parametrize("make, reason", [
    (lambda tmp: mjpg_avi_bomb(tmp), "unsupported_container"),
    (lambda tmp: _written(tmp, "MJPG", 32), "unsupported_codec"),  # MJPEG in MP4, tagged mp4v
    (lambda tmp: mp4_note(sps_size=(16000, 16000)), "too_big_frame"),
    (lambda tmp: mp4_note(inband_sps=(16000, 16000)), "too_big_frame"),
    (lambda tmp: mp4_note(width=16000, height=16000), "too_big_frame"),
    (lambda tmp: b"\x00\x00\x00\x18ftypisom" + b"\xff" * 64, "corrupt_video"),
    (lambda tmp: b"", "corrupt_video"),
])
def test_what_a_video_note_never_is_is_refused(tmp_path: Path, make, reason) -> None:
    data = make(tmp_path)
    started = time.perf_counter()
    result = probe(data)
    assert (result.ok, result.reason) == (False, reason)
    assert time.perf_counter() - started < 0.5


def test_opencv_reports_the_containers_size_not_the_decoders() -> None:
    """Why the probe reads the SPS: properties read before decoding trust the container."""
    data = mp4_note(sps_size=(16000, 16000))
    stream = io.BytesIO(data)
    cap = cv2.VideoCapture(stream, cv2.CAP_FFMPEG, [])
    assert cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 384
    cap.release()
    assert probe(data).width == 16000


def test_the_sps_parser_reads_what_an_encoder_wrote() -> None:
    assert sps_size(sps(640, 640)) == (640, 640)
    assert sps_size(sps(16000, 16000)) == (16000, 16000)
    assert probe(fake_note("match")).ok  # the tests' fake notes are well-formed headers
