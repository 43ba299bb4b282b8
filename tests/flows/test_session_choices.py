"""Issue 15.11 and 15.8: the session lengths offered (SESSION_DURATION_SECONDS first, 90 s), and
answers a flow keeps with the attendance record (`record_answers`)."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine import load_flow
from integrations.hooks.registry import build_registry
from integrations.hooks.student import kept_answers, record_answers_problems
from integrations.hooks.teacher import format_duration, parse_duration
from integrations.storage.documents import Session

from .appkit import ASHA, CLASS, make_app

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("text, seconds", [
    ("90 s", 90), ("90s", 90), ("90 sec", 90), ("5", 300), ("1.5", 90), ("1,5", 90), ("5 min", 300),
    ("2 minutes", 120), ("1 h", 3600), ("3 hours", 10800), ("30 s", 30),
    ("29 s", None), ("0", None), ("181", None), ("4 hours", None), ("soon", None), ("", None), ("5 days", None),
])
def test_parse_duration(text: str, seconds: int | None) -> None:
    assert parse_duration(text) == seconds


def test_format_duration() -> None:
    assert [format_duration(s) for s in (300, 90, 60, 600)] == ["5 min", "90 s", "1 min", "10 min"]


@pytest.mark.parametrize("language", ["en", "hi", "te"])
def test_every_offered_length_reads_back_in_its_language(language: str) -> None:
    """A tapped duration button sends its (translated) label: it must mean the same length."""
    for seconds in (90, 120, 300, 600, 900):
        assert parse_duration(format_duration(seconds, language)) == seconds
    assert parse_duration("१० मिनट") == 600 and parse_duration("౯౦ సెకన్లు") == 90  # the scripts' digits too


async def open_for(sim, duration: str) -> list[str]:  # type: ignore[no-untyped-def]
    for line in ("/start", "/contact +919848000001", "asha.rao@example.edu", "demo-pass-1",
                 "/tap 📝 Take attendance", "/tap PFS-101", "/tap Done ✔"):
        await sim.send(ASHA, line)
    offered = await sim.send(ASHA, "/tap Python")
    await sim.send(ASHA, duration)
    await sim.send(ASHA, "/tap 50")
    await sim.send(ASHA, f"/location {CLASS} 5")
    return offered


async def test_a_90_second_session() -> None:
    app, sim = make_app()
    await app.start()
    offered = await open_for(sim, "/tap 90 s")
    assert any("[5 min | 90 s | 2 min | 10 min | 15 min]" in r for r in sim.texts(ASHA)), offered
    session = Session.objects.first()
    assert round((session.expires_at - session.opened_at).total_seconds()) == 90
    await app.stop()


async def test_session_duration_seconds_is_offered_first_and_used() -> None:
    app, sim = make_app(session_duration_seconds=600)
    await app.start()
    await open_for(sim, "/tap 10 min")
    assert any("[10 min | 90 s | 2 min | 5 min | 15 min]" in t for t in sim.texts(ASHA))  # shown once
    session = Session.objects.first()
    assert round((session.expires_at - session.opened_at).total_seconds()) == 600
    await app.stop()


def test_kept_answers() -> None:
    data = {"record_answers": ["seat", "row", "_secret"], "seat": 14.0, "row": "", "_secret": "x"}
    assert kept_answers(data) == {"seat": "14"}
    assert kept_answers({"record_answers": {"seat": "Seat number"}, "seat": "B" * 300}) == {"Seat number": "B" * 200}
    assert kept_answers({"seat": 3}) == {}


def test_check_reports_record_answers_no_state_saves(tmp_path: Path) -> None:
    registry = build_registry()
    fixture = REPO / "flows" / "scripts" / "fixtures" / "student_with_seat.yaml"
    assert record_answers_problems(load_flow(fixture, registry).spec) == []
    assert record_answers_problems(load_flow(REPO / "flows" / "student.yaml", registry).spec) == []
    bad = tmp_path / "student.yaml"
    bad.write_text(fixture.read_text(encoding="utf-8").replace("record_answers: {seat: seat}",
                                                               "record_answers: [seat, desk, _video]"))
    problems = record_answers_problems(load_flow(bad, registry).spec)
    assert len(problems) == 2 and "no state saves 'desk'" in problems[0] and "'_video' is transient" in problems[1]
    assert problems[0].startswith(f"{bad}:")
    from integrations.app.cli import main

    assert main(["check", str(bad)]) == 1 and main(["check", str(fixture)]) == 0
