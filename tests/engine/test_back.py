"""The built-in back: /back (or the Back button) returns to the previous question where the flow
allows it, remembers a few questions, and forgets them on anything but an answer."""
from __future__ import annotations

from pathlib import Path

from engine.constants import HISTORY_KEY, HISTORY_LIMIT
from engine.simulator import Simulator
from engine.store import MemoryStore
from engine.types import Callback, SendText, Update

from .flowkit import flow_text, make_engine, sim_user

BACK = 'back:\n  button: "BACK"\n  unavailable: "NO-BACK"\n'
SKIP = "  skip: {goto: second}\n"

BACK_FLOW = flow_text("""\
  first:
    ask: text
    prompt: "Name?"
    save: name
    next: second
  second:
    ask: number
    prompt: "Age?"
    save: age
    back: true
    next: third
  third:
    ask: choice
    prompt: "Pick"
    options: [{id: a, label: "A"}, {id: b, label: "B"}]
    save: pick
    back: true
    next: fourth
  fourth:
    ask: text
    prompt: "Last?"
    save: last
    next: bye
  bye:
    say: "Bye {name}"
    final: true
""", extra=BACK).replace("  help: {say: \"HELP\"}\n", "  help: {say: \"HELP\"}\n" + SKIP)


async def at_second(tmp_path: Path, store: MemoryStore | None = None) -> tuple[Simulator, object]:
    sim = Simulator(make_engine(tmp_path, BACK_FLOW, store=store))
    u = sim_user()
    await sim.send(u, "/start")
    assert await sim.send(u, "Ann") == ["Age?  [BACK]"]
    return sim, u


async def test_back_returns_to_the_previous_question_and_goes_on_from_there(tmp_path: Path) -> None:
    sim, u = await at_second(tmp_path)
    assert await sim.send(u, "/back") == ["Name?"]
    assert await sim.state_of(u) == "first"
    assert await sim.send(u, "Bob") == ["Age?  [BACK]"]
    assert await sim.send(u, "30") == ["Pick  {A | B | BACK}"]


async def test_the_back_button_is_a_reply_keyboard_row_or_an_inline_button(tmp_path: Path) -> None:
    sim, u = await at_second(tmp_path)
    assert await sim.send(u, "/tap BACK") == ["Name?"]  # reply keyboard: the label as text
    await sim.send(u, "Ann")
    await sim.send(u, "30")
    assert await sim.send(u, "/tap BACK") == ["Age?  [BACK]"]  # inline: a callback
    assert await sim.state_of(u) == "second"
    assert await sim.send(u, "/back") == ["Name?"]  # two questions back


async def test_back_is_refused_where_the_flow_does_not_allow_it(tmp_path: Path) -> None:
    sim, u = await at_second(tmp_path)
    await sim.send(u, "/back")
    assert await sim.send(u, "/back") == ["NO-BACK"]  # first: nothing before it
    assert await sim.state_of(u) == "first"
    await sim.send(u, "Ann")
    await sim.send(u, "30")
    await sim.send(u, "/tap A")
    assert await sim.state_of(u) == "fourth"
    assert await sim.send(u, "/back") == ["NO-BACK"]  # fourth has no `back: true`
    assert await sim.state_of(u) == "fourth"


async def test_a_command_forgets_the_history(tmp_path: Path) -> None:
    sim, u = await at_second(tmp_path)
    assert await sim.send(u, "/skip") == ["Age?"]  # no Back button: nowhere to go back to
    assert await sim.send(u, "/back") == ["NO-BACK"]
    assert await sim.send(u, "BACK") == ["NO-BACK"]  # an earlier keyboard's Back is no answer
    conv = await sim.engine.store.get((u.bot, u.chat))
    assert HISTORY_KEY not in conv.data


async def test_the_history_survives_a_restart(tmp_path: Path) -> None:
    store = MemoryStore()
    await at_second(tmp_path, store)
    after_restart = Simulator(make_engine(tmp_path, BACK_FLOW, store=store))
    assert await after_restart.send(sim_user(), "/back") == ["Name?"]


async def test_an_old_back_button_is_stale(tmp_path: Path) -> None:
    sim, u = await at_second(tmp_path)
    await sim.send(u, "30")
    conv = await sim.engine.store.get((u.bot, u.chat))
    old = Update(u.bot, u.chat, u.user_id, "callback", Callback(f"{conv.epoch - 1}|back", "cb"), message_id=1)
    assert [getattr(a, "text", "") for a in await sim.engine.submit(old)] == ["STALE"]
    assert await sim.state_of(u) == "third"


async def test_the_history_is_bounded(tmp_path: Path) -> None:
    loop = flow_text("""\
  first:
    ask: text
    prompt: "A?"
    save: a
    back: true
    next: second
  second:
    ask: text
    prompt: "B?"
    save: b
    back: true
    next: first
  bye:
    say: "bye"
    final: true
""", extra=BACK)
    sim = Simulator(make_engine(tmp_path, loop))
    u = sim_user()
    await sim.send(u, "/start")
    for n in range(3 * HISTORY_LIMIT):
        await sim.send(u, f"x{n}")
    conv = await sim.engine.store.get((u.bot, u.chat))
    assert len(conv.data[HISTORY_KEY]) == HISTORY_LIMIT
    assert await sim.send(u, "/back") == ["B?  [BACK]"]


async def test_without_back_in_the_flow_back_is_an_ordinary_unknown_command(tmp_path: Path) -> None:
    plain = flow_text("""\
  first:
    ask: text
    prompt: "Name?"
    save: name
    next: second
  second:
    ask: text
    prompt: "Again?"
    save: again
    next: bye
  bye:
    say: "bye"
    final: true
""")
    sim = Simulator(make_engine(tmp_path, plain))
    u = sim_user()
    await sim.send(u, "/start")
    replies = await sim.engine.submit(sim.parse(u, "Ann"))
    assert replies == [SendText("Again?", remove_keyboard=True)]
    assert await sim.send(u, "/back") == ["UNKNOWN-COMMAND"]
    conv = await sim.engine.store.get((u.bot, u.chat))
    assert HISTORY_KEY not in conv.data
