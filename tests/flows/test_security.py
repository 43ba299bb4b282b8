"""Issue 14: the holes hostile testing found, each replayed against the real flows and hooks.

Every test here failed before its fix (docs/reliability.md, "Security", maps item -> fix -> test).
"""
from __future__ import annotations

import resource
import time
from pathlib import Path

from engine.types import Command, Contact, Location, Update, VideoNote
from integrations.storage.documents import AttendanceRecord
from tests.fakes.notes import mjpg_avi_bomb, mp4_note

from .appkit import NEAR, STUDENTS, make_app, open_session, student_at_code


def _texts(actions: list) -> str:
    return " ".join(getattr(a, "text", "") for a in actions)


# ------------------------------------------------------------------ 1. group chats
async def test_a_group_cannot_assemble_one_check_in_from_two_students() -> None:
    """A shares A's contact and face, B sends the code and B's location: nothing is recorded."""
    app, sim = make_app()
    await app.start()
    code = await open_session(sim)
    (asha, a_phone), (bala, _) = STUDENTS["ravi"], STUDENTS["sita"]
    group = -100777
    replies = []
    for user, kind, payload in (
            (asha.user_id, "command", Command("start")),
            (asha.user_id, "contact", Contact(a_phone, asha.user_id)),
            (bala.user_id, "text", code),
            (bala.user_id, "location", Location(17.3851, 78.4867, 5.0))):
        replies.append(_texts(await app.engine.submit(Update("student", group, user, kind, payload, private=False))))
    assert replies[0].startswith("I only talk in private chats") and replies[1:] == ["", "", ""]
    assert await app.engine.store.get(("student", group)) is None

    # The same, had the chat been taken for a private one: the second user never reaches A's conversation.
    chat = asha.user_id
    await app.engine.submit(Update("student", chat, asha.user_id, "command", Command("start")))
    await app.engine.submit(Update("student", chat, asha.user_id, "contact", Contact(a_phone, asha.user_id)))
    refused = _texts(await app.engine.submit(Update("student", chat, bala.user_id, "text", code)))
    assert refused == "This conversation belongs to someone else."
    assert (await app.engine.store.get(("student", chat))).state == "ask_code"
    assert AttendanceRecord.objects.count() == 0
    await app.stop()


# ------------------------------------------------------------------ 2. decode bombs
def _peak_rss_reset() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (the peak) on Linux
    except OSError:
        pass


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def test_a_decode_bomb_is_refused_from_its_headers_fast_and_small(tmp_path: Path) -> None:
    app, sim = make_app()
    await app.start()
    code = await open_session(sim)
    ravi = await student_at_code(sim, "ravi")
    bombs = {
        "an MJPG AVI of 16000×16000": (mjpg_avi_bomb(tmp_path), "I can only read round video notes"),
        "an H.264 MP4 whose SPS says 16000×16000 (headers say 384)": (
            mp4_note(sps_size=(16000, 16000)), "16000×16000 px; a video note is at most 1280 px"),
        "an MP4 with a 16000 px SPS inside a sample": (
            mp4_note(inband_sps=(16000, 16000)), "16000×16000 px; a video note is at most 1280 px"),
    }
    for name, (data, answer) in bombs.items():
        await sim.send(ravi, "/start")
        await sim.send(ravi, f"/contact {STUDENTS['ravi'][1]}")
        await sim.send(ravi, code)
        await sim.send(ravi, NEAR)
        _peak_rss_reset()
        before = _peak_rss_mb()
        started = time.perf_counter()
        replies = _texts(await app.engine.submit(Update(
            "student", ravi.chat, ravi.user_id, "video_note", VideoNote(data, 1, 384, len(data), "bomb"))))
        elapsed = time.perf_counter() - started
        assert answer in replies, name
        assert "Video received" not in replies, name
        assert elapsed < 0.5, (name, elapsed)
        assert _peak_rss_mb() - before < 200, name
        assert await sim.state_of(ravi) == "ask_video"
    assert app.verify_queue.stats()["submitted"] == 0  # nothing reached a decoder
    await app.stop()
