"""The note process pool (issue 13, item 8), the operator's verify-video tool and the new settings."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import cv2
import pytest

from integrations.presence import liveness as lv
from integrations.presence.faces.base import FaceResult
from integrations.presence.inspect import inspect_note
from integrations.presence.note_analysis import analyse_note
from integrations.presence.note_pool import NotePool, NotePoolError
from integrations.presence.verify_queue import VerifyJob, VerifyOutcome, VideoNoteProcessor
from integrations.settings import SettingsError, load_settings
from tests.presence import liveness_variants as variants


def crash() -> None:
    """Kills the worker process that runs it, as a decoder crash would."""
    os._exit(3)


def whoami() -> int:
    return os.getpid()


@pytest.fixture(scope="module")
def pool() -> Iterator[NotePool]:
    p = NotePool(1)
    yield p
    p.close()


def test_analysis_runs_in_another_process_and_agrees_with_the_thread(pool: NotePool, note_bytes) -> None:
    assert pool.run(whoami) != os.getpid()
    data = note_bytes("obama_2")
    there = pool.run(analyse_note, data)
    here = analyse_note(data)
    assert there.frame.index == here.frame.index and there.frame.ok
    assert (there.liveness.live, there.liveness.score, there.liveness.reasons) == (
        here.liveness.live, here.liveness.score, here.liveness.reasons)


def test_local_verification_runs_in_the_pool_too(pool: NotePool, faces_dir: Path, note_bytes) -> None:
    from integrations.presence.faces.local import LocalFaceVerifier

    async def on_done(outcome: VerifyOutcome) -> None: ...

    class Spy(LocalFaceVerifier):
        calls = 0

        def verify(self, frame_jpeg: bytes, batch: str, student_id: str) -> FaceResult:
            Spy.calls += 1
            return super().verify(frame_jpeg, batch, student_id)

    here = VideoNoteProcessor(LocalFaceVerifier(faces_dir))(VerifyJob("S", "s1", "b1", note_bytes("obama_2"), on_done))
    spy = Spy(faces_dir)
    there = VideoNoteProcessor(spy, pool=pool)(VerifyJob("S", "s1", "b1", note_bytes("obama_2"), on_done))
    assert (there.matched, there.distance) == (here.matched, here.distance) == (True, here.distance)
    assert there.liveness is not None and there.liveness.score == here.liveness.score  # type: ignore[union-attr]
    assert Spy.calls == 0  # the worker built its own verifier; none ran in this process


def test_a_dead_worker_is_replaced_and_the_job_reported(pool: NotePool, note_bytes) -> None:
    before = pool.restarts
    with pytest.raises(NotePoolError):
        pool.run(crash)
    assert pool.restarts == before + 2  # retried once on a fresh pool
    assert pool.run(analyse_note, note_bytes("obama_2")).frame.ok  # and the next note is fine


def test_processor_reports_a_crashed_worker_as_an_unreadable_video() -> None:
    class Crashing:
        def run(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise NotePoolError("died twice")

        def start(self) -> None: ...

        def close(self) -> None: ...

    class Verifier:
        name = "fixed"

        def verify(self, frame_jpeg: bytes, batch: str, student_id: str) -> FaceResult:
            raise AssertionError("not called")

    async def on_done(outcome: VerifyOutcome) -> None: ...

    processor = VideoNoteProcessor(Verifier(), pool=Crashing())  # type: ignore[arg-type]
    result = processor(VerifyJob("S", "s1", "b1", b"note", on_done))
    assert (result.matched, result.reason) == (False, "corrupt_video")


def test_pool_needs_a_process() -> None:
    with pytest.raises(ValueError):
        NotePool(0)


# ------------------------------------------------------------------------ verify-video


@pytest.fixture(scope="module")
def carphone_reference(shared_faces: Path) -> bytes:
    """A frame from outside the clips tested with it (frames 110+), cropped like the notes."""
    frames, _ = variants.read_frames((shared_faces / "live" / "carphone.mp4").read_bytes())
    square = cv2.resize(frames[110][0:144, 16:160], (384, 384), interpolation=cv2.INTER_CUBIC)
    return cv2.imencode(".jpg", square)[1].tobytes()


def test_inspect_a_genuine_clip(shared_faces: Path, carphone_reference: bytes) -> None:
    (clip,) = [v for v in variants.genuine_variants(shared_faces / "live" / "carphone.mp4", "mp4v")
               if v.name == "genuine/time_0_60"]
    report = inspect_note(clip.make(), carphone_reference)
    assert report["face_found"] and report["match"] and report["live"]
    assert report["verdict"] == "match" and report["accepted"]
    assert report["distance"] < report["threshold"] and report["liveness_score"] >= 0.5
    assert report["frames"] >= 30 and report["reasons"]
    assert set(report["timings_ms"]) == {"models_and_reference", "frame", "liveness", "verify", "total"}


def test_inspect_a_photo_note(shared_faces: Path, note_bytes) -> None:
    photo = (shared_faces / "obama_1.jpg").read_bytes()
    flag = inspect_note(note_bytes("obama_2"), photo)
    assert flag["match"] and not flag["live"] and flag["verdict"] == "match"
    assert flag["liveness_label"] == "liveness doubtful" and "planar_motion" in flag["reasons"]
    enforce = inspect_note(note_bytes("obama_2"), photo, liveness_mode="enforce")
    assert enforce["match"] and enforce["verdict"] == "not_live" and not enforce["accepted"]
    other = inspect_note(note_bytes("biden_1"), photo)
    assert other["match"] is False and other["verdict"] == "mismatch"


def test_inspect_with_an_unusable_reference(note_bytes, shared_faces: Path) -> None:
    no_face = cv2.imencode(".jpg", cv2.imread(str(shared_faces / "obama_1.jpg"))[:40, :40])[1].tobytes()
    report = inspect_note(note_bytes("obama_2"), no_face)
    assert report["reference"] == "no_face" and report["match"] is None
    assert report["verdict"] == "no_reference"


def test_verify_video_command_prints_one_json_object(shared_faces: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import run

    code = run.main(["verify-video", str(shared_faces / "note_obama_2.mp4"),
                     "--reference", str(shared_faces / "obama_1.jpg"), "--liveness", "enforce"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["verdict"] == "not_live" and report["match"] is True and report["live"] is False
    for key in ("face_found", "frames", "distance", "liveness_score", "reasons", "timings_ms"):
        assert key in report


def test_verify_video_command_names_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import run

    assert run.main(["verify-video", str(tmp_path / "none.mp4"), "--reference", str(tmp_path / "x.jpg")]) == 2
    assert "none.mp4" in capsys.readouterr().err


# ------------------------------------------------------------------------ settings


def test_liveness_settings() -> None:
    s = load_settings(_env_file=None)
    assert s.liveness == "flag" and s.verify_processes == max(1, (os.cpu_count() or 2) - 1)
    assert load_settings(_env_file=None, liveness="enforce", verify_processes=0).liveness == "enforce"
    with pytest.raises(SettingsError, match="LIVENESS"):
        load_settings(_env_file=None, liveness="strict")
    with pytest.raises(SettingsError, match="VERIFY_PROCESSES"):
        load_settings(_env_file=None, verify_processes=-1)


def test_env_example_documents_the_new_settings(repo: Path) -> None:
    text = (repo / ".env.example").read_text()
    assert "LIVENESS=flag" in text and "# VERIFY_PROCESSES=" in text
    assert lv.MODES == ("off", "flag", "enforce")
