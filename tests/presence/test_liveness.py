"""Passive liveness (issue 17) and the minimum length of a note (issue 14, item 5).

The measurements are checked on synthetic landmark tracks (exact planar motion vs. a moving mouth),
then the whole check on real media: the genuine carphone video made into notes several ways, and
photos held up to the camera made into notes (liveness_variants.py). Notes are written as mp4v so
the results do not depend on whether an H.264 encoder is installed.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from integrations.presence import liveness as lv
from integrations.presence.faces.base import FaceResult
from integrations.presence.note_analysis import analyse_note
from integrations.presence.verify_queue import VerifyJob, VerifyOutcome, VerifyQueue, VideoNoteProcessor
from tests.presence import liveness_variants as variants

CODEC = "mp4v"


# ------------------------------------------------------------------------ fixtures and helpers


@pytest.fixture(scope="module")
def template(shared_faces: Path) -> np.ndarray:
    """dlib's 68 landmarks of a real face (obama_1.jpg), in pixels."""
    detector, predictor = lv._Models.get()
    grey = cv2.cvtColor(cv2.imread(str(shared_faces / "obama_1.jpg")), cv2.COLOR_BGR2GRAY)
    box = max(detector(grey, 1), key=lambda r: r.area())
    shape = predictor(grey, box)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def planar_track(points: np.ndarray, frames: int, rng: np.random.Generator, jitter: float = 0.0) -> np.ndarray:
    """The landmarks of a photo moved and tilted: one random homography per frame."""
    centre = points.mean(axis=0)
    out = []
    for i in range(frames):
        angle, scale = 0.1 * np.sin(i / 4), 1 + 0.1 * np.sin(i / 7)
        persp = rng.normal(0, 4e-4, 2)
        hom = np.array([[scale * np.cos(angle), -scale * np.sin(angle), 5 * np.sin(i / 3)],
                        [scale * np.sin(angle), scale * np.cos(angle), 3 * np.cos(i / 5)],
                        [persp[0], persp[1], 1.0]])
        moved = cv2.perspectiveTransform((points - centre).reshape(1, -1, 2), hom)[0] + centre
        out.append(moved + rng.normal(0, jitter, moved.shape))
    return np.asarray(out)


def talking(track: np.ndarray, amplitude: float) -> np.ndarray:
    """The same track with the lower lip and chin going up and down (speech), x IOD."""
    out = track.copy()
    iod = lv._iod(track[0])
    lower = [6, 7, 8, 9, 10, 55, 56, 57, 58, 59, 64, 65, 66, 67]
    for i in range(len(out)):
        out[i, lower, 1] += amplitude * iod * (1 + np.sin(i * 0.9)) / 2
    return out


def note_from_frames(frames: list[np.ndarray], fps: float = 30.0) -> bytes:
    return variants.encode(frames, fps, CODEC)


def photo_frames(shared_faces: Path, count: int, size: int = 384) -> list[np.ndarray]:
    photo = cv2.imread(str(shared_faces / "obama_2.jpg"))
    side = min(photo.shape[:2])
    square = cv2.resize(photo[:side, :side], (size, size))
    return [square] * count


class FixedVerifier:
    """Stands in for a face verifier: always the same answer, and counts its calls."""

    name = "fixed"

    def __init__(self, matched: bool = True) -> None:
        self.matched = matched
        self.calls = 0

    def verify(self, frame_jpeg: bytes, batch: str, student_id: str) -> FaceResult:
        self.calls += 1
        return FaceResult(self.matched, "match" if self.matched else "mismatch", distance=0.4)


def job(data: bytes) -> VerifyJob:
    async def on_done(outcome: VerifyOutcome) -> None:
        return None

    return VerifyJob("S", "s1", "b1", data, on_done)


# ------------------------------------------------------------------------ the measurements


def test_a_photo_moved_as_a_plane_does_not_deform(template: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    still = planar_track(template, 24, rng)
    assert lv.shape_deformation(still, 2) < 0.002  # exact homographies leave nothing
    noisy = planar_track(template, 24, rng, jitter=0.01 * lv._iod(template))
    assert lv.shape_deformation(noisy, 2) < lv.DEFAULT_PARAMS.shape_ref / 2  # smoothing eats jitter


def test_a_moving_mouth_deforms_whatever_the_plane_does(template: np.ndarray) -> None:
    rng = np.random.default_rng(2)
    track = planar_track(template, 24, rng)
    assert lv.shape_deformation(talking(track, 0.5), 2) > lv.DEFAULT_PARAMS.shape_ref


def test_trimmed_homography_ignores_a_few_bad_tracks() -> None:
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 300, (40, 2))
    hom = np.array([[1.05, 0.04, 3.0], [-0.03, 0.97, -2.0], [2e-4, -1e-4, 1.0]])
    b = cv2.perspectiveTransform(a.reshape(1, -1, 2), hom)[0]
    b[:4] += 25.0  # four tracks jumped to the background
    residual = lv._trimmed_homography_residuals(a, b, 0.2)
    assert residual is not None
    assert np.percentile(residual, 80) < 0.01
    b_live = b + rng.normal(0, 3.0, b.shape)  # every point moving on its own
    live_residual = lv._trimmed_homography_residuals(a, b_live, 0.2)
    assert live_residual is not None and np.percentile(live_residual, 80) > 2.0


def test_blinks_are_short_dips_that_recover() -> None:
    times = [i / 8 for i in range(24)]
    open_eyes = [0.32 + 0.005 * np.sin(i) for i in range(24)]
    assert lv.count_blinks(open_eyes, times, 0.7, 0.5) == 0
    blink = list(open_eyes)
    blink[10] = blink[11] = 0.15
    assert lv.count_blinks(blink, times, 0.7, 0.5) == 1
    closed = list(open_eyes)
    for i in range(5, 15):  # eyes shut for 1.25 s: not a blink
        closed[i] = 0.12
    assert lv.count_blinks(closed, times, 0.7, 0.5) == 0


def test_judge_refuses_short_notes_and_faceless_ones(template: np.ndarray) -> None:
    one_frame = lv.NoteScan(frames_decoded=1, duration_s=1 / 30, frames_sampled=1, landmarks=[template])
    r = lv.judge(one_frame)
    assert (r.live, r.usable, r.reasons) == (False, False, (lv.TOO_SHORT,))
    many_frames_short = lv.NoteScan(frames_decoded=20, duration_s=0.66, frames_sampled=6, landmarks=[template] * 6)
    assert lv.judge(many_frames_short).reason == lv.TOO_SHORT
    few_faces = lv.NoteScan(frames_decoded=90, duration_s=3.0, frames_sampled=24, landmarks=[template] * 3,
                            sample_times=[0.0, 0.1, 0.2])
    r = lv.judge(few_faces)
    assert (r.live, r.usable, r.reason) == (False, True, lv.FEW_FACE_FRAMES)


def test_judge_decides_from_both_measurements(template: np.ndarray) -> None:
    rng = np.random.default_rng(4)
    track = planar_track(template, 20, rng)
    times = [i / 8 for i in range(20)]
    scan = lv.NoteScan(frames_decoded=60, duration_s=2.0, frames_sampled=20, landmarks=list(track),
                       sample_times=times, flow_residuals=[0.003] * 6)
    photo = lv.judge(scan)
    assert not photo.live and photo.doubtful and photo.label == "liveness doubtful"
    assert lv.PLANAR in photo.reasons and lv.RIGID in photo.reasons and photo.score < 0.5
    scan.landmarks = list(talking(track, 0.4))
    scan.flow_residuals = [0.04] * 6
    face = lv.judge(scan)
    assert face.live and face.score >= 0.5 and face.label == "live"
    assert set(face.reasons) >= {lv.NON_PLANAR, lv.DEFORMS}
    still = lv.NoteScan(frames_decoded=60, duration_s=2.0, frames_sampled=20, landmarks=[template] * 20,
                        sample_times=times, flow_residuals=[0.0] * 6)
    assert lv.judge(still).reason == lv.NO_MOTION


def test_result_as_data_for_records_and_reports() -> None:
    r = lv.LivenessResult(False, 0.21, (lv.PLANAR, lv.RIGID), flow=0.003, shape=0.01)
    data = r.to_dict()
    assert data["live"] is False and data["label"] == "liveness doubtful" and data["reasons"] == ["planar_motion",
                                                                                                 "rigid_landmarks"]
    off = lv.not_checked(90, 3.0)
    assert not off.doubtful and off.label == "not checked"


# ------------------------------------------------------------------------ real notes


@pytest.mark.parametrize("name", ["obama_2", "biden_1"])
def test_shipped_photo_notes_are_not_live(note_bytes, name: str) -> None:
    r = lv.check_liveness(note_bytes(name))
    assert r.usable and r.face_frames >= lv.DEFAULT_PARAMS.min_face_frames
    assert not r.live, r
    assert lv.PLANAR in r.reasons


def test_a_note_without_a_face_is_not_judged_live(note_bytes) -> None:
    r = lv.check_liveness(note_bytes("noface"))
    assert (r.live, r.reason, r.face_frames) == (False, lv.FEW_FACE_FRAMES, 0)


@pytest.fixture(scope="module")
def genuine(shared_faces: Path) -> dict[str, variants.Variant]:
    return {v.name: v for v in variants.genuine_variants(shared_faces / "live" / "carphone.mp4", CODEC)}


@pytest.fixture(scope="module")
def spoofs(shared_faces: Path) -> dict[str, variants.Variant]:
    return {v.name: v for v in variants.spoof_variants(shared_faces, CODEC, full=False)}


GENUINE_NAMES = [f"genuine/{n}" for n in (
    "crop384", "crop640", "tight384", "pad384", "pad640", "reencode_jpeg", "reencode_twice", "time_0_60",
    "time_60_120", "time_30_90", "time_0_45", "time_75_120", "fps25", "every2nd_15fps", "blur384", "mirror384",
    "lowlight640",
)]


def test_the_genuine_list_covers_every_variant(genuine: dict[str, variants.Variant]) -> None:
    assert sorted(GENUINE_NAMES) == sorted(genuine)


@pytest.mark.slow
@pytest.mark.parametrize("name", GENUINE_NAMES)
def test_every_carphone_variant_is_live(genuine: dict[str, variants.Variant], name: str) -> None:
    r = lv.check_liveness(genuine[name].make())
    assert r.live, r


SPOOF_NAMES = [
    f"spoof/{source}/{motion}" for source in ("obama_1", "obama_2", "obama_3", "biden_1", "carphone_f60", "carphone_f20")
    for motion in variants.SPOOF_MOTIONS
]


@pytest.mark.slow
@pytest.mark.parametrize("prefix", SPOOF_NAMES)
def test_every_photo_made_note_is_not_live(spoofs: dict[str, variants.Variant], prefix: str) -> None:
    (variant,) = [v for name, v in spoofs.items() if name.startswith(prefix + "/")]
    r = lv.check_liveness(variant.make())
    assert not r.live, (variant.name, r)


# ------------------------------------------------------------------------ a still picture as a note


def test_a_still_jpeg_sent_as_a_note_is_refused(shared_faces: Path) -> None:
    jpeg = (shared_faces / "obama_2.jpg").read_bytes()
    verifier = FixedVerifier()
    for mode in lv.MODES:
        result = VideoNoteProcessor(verifier, liveness=mode)(job(jpeg))
        assert (result.matched, result.reason) in {(False, "too_short"), (False, "corrupt_video")}, mode
    assert verifier.calls == 0


@pytest.mark.parametrize("frames, fps", [(1, 30.0), (5, 30.0), (20, 30.0)])
def test_one_frame_or_under_a_second_is_too_short(shared_faces: Path, frames: int, fps: float) -> None:
    data = note_from_frames(photo_frames(shared_faces, frames), fps)
    verifier = FixedVerifier()
    for mode in lv.MODES:
        result = VideoNoteProcessor(verifier, liveness=mode)(job(data))
        assert (result.matched, result.reason) == (False, "too_short"), mode
        assert result.liveness is not None and not result.liveness.usable
    assert verifier.calls == 0


def test_a_still_picture_encoded_as_a_long_video_is_not_live(shared_faces: Path) -> None:
    data = note_from_frames(photo_frames(shared_faces, 60))
    r = lv.check_liveness(data)
    assert r.usable and not r.live and r.reason == lv.NO_MOTION
    refused = VideoNoteProcessor(FixedVerifier(), liveness=lv.ENFORCE)(job(data))
    assert refused.reason == "not_live"


# ------------------------------------------------------------------------ modes in the queue


async def test_flag_mode_matches_a_photo_note_and_marks_it_doubtful(note_bytes) -> None:
    outcomes: list[VerifyOutcome] = []

    async def on_done(outcome: VerifyOutcome) -> None:
        outcomes.append(outcome)

    q = VerifyQueue(VideoNoteProcessor(FixedVerifier(), liveness=lv.FLAG), workers=1)
    q.submit(VerifyJob("S", "s1", "b1", note_bytes("obama_2"), on_done))
    await q.drain()
    await q.close()
    (outcome,) = outcomes
    assert outcome.ok and outcome.reason == "match"
    assert outcome.liveness is not None and outcome.liveness.label == "liveness doubtful"


async def test_enforce_mode_refuses_a_photo_note_and_counts_the_attempt(note_bytes) -> None:
    outcomes: list[VerifyOutcome] = []

    async def on_done(outcome: VerifyOutcome) -> None:
        outcomes.append(outcome)

    verifier = FixedVerifier()
    q = VerifyQueue(VideoNoteProcessor(verifier, liveness=lv.ENFORCE), workers=1, max_attempts=3)
    q.submit(VerifyJob("S", "s1", "b1", note_bytes("obama_2"), on_done))
    await q.drain()
    await q.close()
    (outcome,) = outcomes
    assert (outcome.ok, outcome.reason, outcome.attempts_left) == (False, "not_live", 2)
    assert outcome.liveness is not None and lv.PLANAR in outcome.liveness.reasons
    assert verifier.calls == 0  # no verification (or paid Rekognition call) for a refused note


def test_enforce_mode_lets_a_live_note_through(genuine: dict[str, variants.Variant]) -> None:
    verifier = FixedVerifier()
    result = VideoNoteProcessor(verifier, liveness=lv.ENFORCE)(job(genuine["genuine/crop384"].make()))
    assert result.matched and result.liveness is not None and result.liveness.live
    assert verifier.calls == 1


def test_off_mode_does_not_judge(note_bytes) -> None:
    analysis = analyse_note(note_bytes("obama_2"), liveness_mode=lv.OFF)
    assert analysis.frame.ok and not analysis.liveness.checked and analysis.liveness.usable
    assert analysis.liveness.label == "not checked"
    assert VideoNoteProcessor(FixedVerifier(), liveness=lv.OFF)(job(note_bytes("obama_2"))).matched


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError):
        VideoNoteProcessor(FixedVerifier(), liveness="strict")
    with pytest.raises(ValueError):
        lv.check_liveness(b"x", mode="strict")


@pytest.mark.parametrize("data", [b"", b"\x00" * 500, b"not a video" * 30, None, 42])
def test_garbage_never_raises(data) -> None:
    r = lv.check_liveness(data)
    assert not r.live and not r.usable
