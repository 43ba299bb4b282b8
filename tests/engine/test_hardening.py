"""Issue 14, engine side: private chats only, one user per conversation, events about another
session, strict button data, and patterns that cannot block the loop."""
from __future__ import annotations

import time
from pathlib import Path

from engine.hooks import HookRegistry
from engine.loader import check_paths
from engine.patterns import fullmatch, slow_input
from engine.render import parse_callback
from engine.simulator import Simulator
from engine.types import Callback, Command, Contact, Update

from .flowkit import compile_flow, flow_text, make_engine, sim_user, write_flow

FLOW = flow_text("""\
  first:
    ask: text
    prompt: "Name?"
    save: name
    next: waiting
  waiting:
    hint: "Still waiting."
    events:
      answer: {say: "Answer for {name}: {result}", goto: bye, provides: [result]}
  bye:
    say: "Bye {name}"
    final: true
""", extra="""
events:
  answer: {say: "An answer about something else: {_what}.", provides: [_what]}
""")


# ------------------------------------------------------------------ 1. groups and other users
async def test_a_group_chat_gets_one_polite_refusal_and_no_state(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, FLOW)
    group = -100123
    first = await engine.submit(Update("t", group, 1, "command", Command("start"), private=False))
    assert [r.text for r in first] == [
        "I only talk in private chats. Please open a chat with me and send /start there."]
    assert await engine.submit(Update("t", group, 2, "contact", Contact("+15550000000", 2), private=False)) == []
    again = await engine.submit(Update("t", group, 3, "text", "hello", private=False))
    assert again == []  # told once per chat, not once per message
    assert await engine.store.get(("t", group)) is None
    assert await engine.store.count() == 0


async def test_an_update_from_another_user_never_reaches_the_conversation(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, FLOW)
    sim = Simulator(engine)
    owner = sim_user(7)
    await sim.send(owner, "/start")
    for update in (Update("t", owner.chat, 8, "text", "Mallory"),
                   Update("t", owner.chat, 8, "command", Command("start")),
                   Update("t", owner.chat, 8, "contact", Contact("+15550000000", 8))):
        replies = await engine.submit(update)
        assert [r.text for r in replies] == ["This conversation belongs to someone else."]
    conv = await engine.store.get(("t", owner.chat))
    assert (conv.state, conv.user_id, conv.data.get("name")) == ("first", 7, None)
    assert await sim.send(owner, "Ann") == []  # the owner goes on
    assert await sim.state_of(owner) == "waiting"


# ------------------------------------------------------------------ 10. events about another thing
async def test_an_event_about_another_session_is_told_as_such_and_moves_nothing(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, FLOW)
    sim = Simulator(engine)
    u = sim_user()
    await sim.send(u, "/start")
    await sim.send(u, "Ann")
    conv = await engine.store.get(("t", u.chat))
    conv.data["session_id"] = "S2"  # what a hook would have saved: the session it is about
    await engine.store.save(conv)

    other = await engine.post_event("t", u.chat, "answer", {"result": "present", "name": "Bob", "_what": "S1"},
                                    about={"session_id": "S1"})
    assert [r.text for r in other] == ["An answer about something else: S1."]
    conv = await engine.store.get(("t", u.chat))
    assert (conv.state, conv.data["name"], conv.data.get("result")) == ("waiting", "Ann", None)

    mine = await engine.post_event("t", u.chat, "answer", {"result": "present"}, about={"session_id": "S2"})
    assert [r.text for r in mine] == ["Answer for Ann: present", "Bye Ann"]


# ------------------------------------------------------------------ 13. button data
def test_forged_button_data_is_refused_not_raised() -> None:
    for data in ("²|o0", "١|o0", "1|o²", "|o0", "1|", "1|O0", "1|o0 ", "99999999999999|o0", "1|" + "o" * 40):
        assert parse_callback(data) == (None, "")
    assert parse_callback("12|o3") == (12, "o3")
    assert parse_callback("3|done") == (3, "done")


async def test_a_forged_superscript_epoch_is_a_stale_button(tmp_path: Path) -> None:
    flow = flow_text("""\
  first:
    ask: choice
    prompt: "Pick"
    options: [{id: a, label: A}]
    save: pick
    next: bye
  bye:
    say: "Bye {pick}"
    final: true
""")
    engine = make_engine(tmp_path, flow)
    sim = Simulator(engine)
    u = sim_user()
    await sim.send(u, "/start")
    replies = await engine.submit(Update("t", u.chat, u.user_id, "callback", Callback("²|o0", "c1"), message_id=1))
    assert [getattr(r, "text", "") for r in replies] == ["STALE"]
    assert engine.stats["errors"] == 0


# ------------------------------------------------------------------ 8. slow patterns
SLOW_EMAIL = "[^@\\\\s]+@[^@\\\\s]+\\\\.[^@\\\\s]+"


def _email_flow(max_length: str) -> str:
    return flow_text(f"""\
  first:
    ask: text
    prompt: "Email?"
    validate:
      regex: "{SLOW_EMAIL}"
{max_length}      error: "Not an email."
    save: email
    next: bye
  bye:
    say: "Bye"
    final: true
""")


async def test_a_long_answer_is_refused_by_length_before_any_pattern_runs(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, _email_flow("      max_length: 254\n"))
    sim = Simulator(engine)
    u = sim_user()
    await sim.send(u, "/start")
    hostile = "a@" + "." * 4090 + "@"
    started = time.perf_counter()
    assert await sim.send(u, hostile) == ["Not an email."]
    assert time.perf_counter() - started < 0.05


def test_a_slow_pattern_gives_up_within_its_timeout() -> None:
    """The backstop for a pattern that slipped past `check`: the match stops, the answer fails."""
    pattern = SLOW_EMAIL.replace("\\\\", "\\")
    started = time.perf_counter()
    assert fullmatch(pattern, "a@" + "." * 4090 + "@") is False  # re takes 0.4-0.6 s here
    assert time.perf_counter() - started < 0.15
    assert fullmatch(pattern, "ann@example.edu") is True


def test_check_flags_a_slow_pattern_unless_the_length_is_limited(tmp_path: Path) -> None:
    slow = check_paths(write_flow(tmp_path, _email_flow(""), "slow.yaml"), HookRegistry())
    assert [p.kind for p in slow] == ["slow_regex"]
    assert "slow regex" in str(slow[0]) and "max_length" in str(slow[0])
    limited = check_paths(write_flow(tmp_path, _email_flow("      max_length: 254\n"), "ok.yaml"), HookRegistry())
    assert limited == []
    assert slow_input("(a+)+b") is not None and slow_input("[A-Za-z]+") is None
    compile_flow(tmp_path, _email_flow("      max_length: 254\n"))
