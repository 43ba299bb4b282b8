"""The simulator's media reader: a file path typed after `/video` becomes a VideoNote.

The engine reads no files and decodes no video; `run.py simulate`, the demo and the tests pass
:func:`read_video_note` to :class:`engine.Simulator`. This is the one module of the presence
package that knows the engine (it builds the engine's VideoNote).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # as in video.py: keep stderr quiet

import cv2  # noqa: E402

from engine.types import VideoNote  # noqa: E402

NOTE_DIAMETER = 384  # pixels, what Telegram reports for a round video note


def video_duration(data: bytes) -> int:
    """Duration in seconds as Telegram would report it (0 if it cannot be read)."""
    try:
        buffer = io.BytesIO(data)  # must outlive the capture: OpenCV does not keep a reference
        cap = cv2.VideoCapture(buffer, cv2.CAP_FFMPEG, [])
        frames, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
        cap.release()
        del buffer
        return int(round(frames / fps)) if fps else 0
    except Exception:  # cv2.error or anything from a corrupt file: Telegram would report 0 too
        return 0


def read_video_note(path: str) -> VideoNote:
    """Read a video file as the round video note a Telegram client would send (OSError if missing)."""
    data = Path(path).read_bytes()
    return VideoNote(data, video_duration(data), NOTE_DIAMETER, len(data), f"sim-{path}")
