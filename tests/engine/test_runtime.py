"""Runtime guarantees: ordering per chat, persistence, restarts, timeouts, errors, inputs."""
from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path

import pytest

from engine.constants import TIMEOUT_EVENT
from engine.hooks import HookContext, HookRegistry, HookResult
from engine.runtime import Engine
from engine.simulator import Simulator
from engine.store import MemoryStore
from engine.types import Callback, Update

from .flowkit import compile_flow, flow_text, make_engine, sim_user

ASK_FLOW = flow_text("""\
  first:
    ask: text
    prompt: "Name?"
    hint: "Type your name."
    validate: {regex: "[A-Za-z]+", error: "Letters only."}
    save: name
    retry: {max: 3, goto: bye, say: "Giving up."}
    next: second
  second:
    ask: number
    prompt: "Age, {name}?"
    validate: {min: 1, max: 99, error: "1 to 99."}
    save: age
    next: bye
  bye:
    say: "Bye {name}"
    final: true
""")


async def test_a_conversation_runs_to_the_end(tmp_path: Path) -> None:
    sim = Simulator(make_engine(tmp_path, ASK_FLOW))
    u = sim_user()
    assert await sim.send(u, "/start") == ["Name?"]
    assert await sim.send(u, "Ann") == ["Age, Ann?"]
    assert await sim.send(u, "42") == ["Bye Ann"]
    assert await sim.state_of(u) == "bye"
    assert await sim.send(u, "more") == ["ENDED"]


async def test_wrong_kind_reprompts_with_hint_and_keeps_state(tmp_path: Path) -> None:
    sim = Simulator(make_engine(tmp_path, ASK_FLOW))
    u = sim_user()
    await sim.send(u, "/start")
    assert await sim.send(u, "/location 1 2") == ["Type your name."]
    assert await sim.send(u, "/photo") == ["Type your name."]
    assert await sim.state_of(u) == "first"


async def test_validation_and_retry_limit(tmp_path: Path) -> None:
    sim = Simulator(make_engine(tmp_path, ASK_FLOW))
    u = sim_user()
    await sim.send(u, "/start")
    assert await sim.send(u, "123") == ["Letters only."]
    assert await sim.send(u, "4 5") == ["Letters only."]
    assert await sim.send(u, "!!") == ["Giving up.", "Bye "]
    assert await sim.state_of(u) == "bye"


async def test_unknown_command_and_help_keep_state(tmp_path: Path) -> None:
    sim = Simulator(make_engine(tmp_path, ASK_FLOW))
    u = sim_user()
    await sim.send(u, "/start")
    assert await sim.send(u, "/frobnicate") == ["UNKNOWN-COMMAND"]
    assert await sim.send(u, "/help") == ["HELP"]
    assert await sim.state_of(u) == "first"
    assert await sim.send(u, "/cancel") == ["CANCELLED", "Bye "]  # unset {name} reads as empty
    assert await sim.state_of(u) == "bye"


async def test_restart_continues_every_conversation(tmp_path: Path) -> None:
    store = MemoryStore()
    sim1 = Simulator(make_engine(tmp_path, ASK_FLOW, store=store))
    users = [sim_user(i) for i in range(1, 6)]
    for u in users:
        await sim1.send(u, "/start")
        await sim1.send(u, f"Name{'x' * u.user_id}")
    # A new engine over the same store: a restart.
    sim2 = Simulator(make_engine(tmp_path, ASK_FLOW, store=store))
    for u in users:
        assert await sim2.state_of(u) == "second"
        assert await sim2.send(u, "30") == [f"Bye Name{'x' * u.user_id}"]


TIMEOUT_FLOW = flow_text("""\
  first:
    ask: text
    prompt: "Quick!"
    save: answer
    timeout: {after: 0.4, goto: late, say: "Too slow."}
    next: bye
  late:
    say: "LATE"
    final: true
  bye:
    say: "Bye"
    final: true
""")


async def test_timeout_fires(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, TIMEOUT_FLOW, use_timers=True)
    await engine.start()
    sim = Simulator(engine)
    u = sim_user()
    await sim.send(u, "/start")
    assert await sim.wait_for(u, ["Too slow.", "LATE"], 0, within=5) == []
    assert await sim.state_of(u) == "late"
    await engine.stop()


async def test_answered_state_does_not_time_out(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, TIMEOUT_FLOW, use_timers=True)
    await engine.start()
    sim = Simulator(engine)
    u = sim_user()
    await sim.send(u, "/start")
    await sim.send(u, "here")
    await asyncio.sleep(0.8)
    assert await sim.state_of(u) == "bye"
    assert "LATE" not in sim.texts(u)
    await engine.stop()


async def test_timeout_fires_after_restart(tmp_path: Path) -> None:
    store = MemoryStore()
    first = make_engine(tmp_path, TIMEOUT_FLOW, store=store, use_timers=True)
    await first.start()
    u = sim_user()
    await Simulator(first).send(u, "/start")
    first.timers.shutdown()  # the process dies before the timeout fires
    await asyncio.sleep(0.5)  # ... and the deadline passes while it is down

    second = make_engine(tmp_path, TIMEOUT_FLOW, store=store, use_timers=True)
    sim = Simulator(second)
    assert await second.start() == 1  # one deadline re-armed from the store
    assert await sim.wait_for(u, ["Too slow.", "LATE"], 0, within=5) == []
    assert await sim.state_of(u) == "late"
    await second.stop()


async def test_stale_timeout_is_ignored(tmp_path: Path) -> None:
    sim = Simulator(make_engine(tmp_path, TIMEOUT_FLOW))
    u = sim_user()
    await sim.send(u, "/start")
    conv = await sim.engine.store.get((u.bot, u.chat))
    assert await sim.event(u, TIMEOUT_EVENT, {"epoch": conv.epoch - 1}) == []
    assert await sim.state_of(u) == "first"


async def test_updates_of_one_chat_never_interleave_while_100_chats_run(tmp_path: Path) -> None:
    active: dict[int, int] = {}
    overlaps: list[int] = []
    concurrency = {"now": 0, "max": 0}

    async def slow(ctx: HookContext) -> str:
        chat = ctx.update.chat_id
        active[chat] = active.get(chat, 0) + 1
        if active[chat] > 1:
            overlaps.append(chat)
        concurrency["now"] += 1
        concurrency["max"] = max(concurrency["max"], concurrency["now"])
        await asyncio.sleep(random.uniform(0, 0.005))
        concurrency["now"] -= 1
        active[chat] -= 1
        return "ok"

    hooks = HookRegistry()
    hooks.register("slow", slow)
    text = flow_text("""\
  first:
    ask: text
    prompt: "Say something"
    save: said
    call: slow
    on: {ok: first}
  bye:
    say: "bye"
    final: true
""")
    engine = make_engine(tmp_path, text, hooks)
    sim = Simulator(engine)
    users = [sim_user(i) for i in range(1, 101)]
    await asyncio.gather(*(sim.send(u, "/start") for u in users))
    sends = [sim.send(u, f"m{n}") for u in users for n in range(5)]
    random.shuffle(sends)
    await asyncio.gather(*sends)
    assert overlaps == []
    assert concurrency["max"] > 1  # different chats did run concurrently
    for u in users:
        conv = await engine.store.get((u.bot, u.chat))
        assert conv.version == 6  # /start + 5 messages, each saved exactly once


async def test_hook_exception_leaves_state_unchanged_and_answers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    calls = {"n": 0}

    def flaky(ctx: HookContext) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database fell over")
        return "ok"

    hooks = HookRegistry()
    hooks.register("flaky", flaky)
    text = flow_text("""\
  first:
    ask: text
    prompt: "Code?"
    save: code
    call: flaky
    on: {ok: bye}
  bye:
    say: "Done {code}"
    final: true
""")
    engine = make_engine(tmp_path, text, hooks)
    sim = Simulator(engine)
    u = sim_user()
    await sim.send(u, "/start")
    before = await engine.store.get((u.bot, u.chat))
    with caplog.at_level(logging.ERROR):
        update = sim.parse(u, "1234")
        replies = await engine.submit(update)
    assert [getattr(r, "text", None) for r in replies] == ["ERROR-TEXT"]
    after = await engine.store.get((u.bot, u.chat))
    assert (after.state, after.version, after.data) == (before.state, before.version, before.data)
    failure = next(r for r in caplog.records if "step failed" in r.getMessage())
    assert failure.request_id == update.request_id and failure.exc_info
    assert await sim.send(u, "1234") == ["Done 1234"]  # the same input works once the hook does


async def test_transient_values_are_not_persisted_and_input_can_be_deleted(tmp_path: Path) -> None:
    seen = {}

    def login(ctx: HookContext) -> HookResult:
        seen["password"] = ctx.data["_password"]
        return HookResult("ok", {"logged_in": "yes"})

    hooks = HookRegistry()
    hooks.register("login", login, provides=("logged_in",))
    text = flow_text("""\
  first:
    ask: text
    prompt: "Password?"
    delete_input: true
    save: _password
    call: login
    on: {ok: bye}
  bye:
    say: "Logged in: {logged_in}"
    final: true
""")
    engine = make_engine(tmp_path, text, hooks)
    sim = Simulator(engine)
    u = sim_user()
    await sim.send(u, "/start")
    replies = await sim.send(u, "hunter2")
    assert replies[0].startswith("[deleted your message")
    assert seen["password"] == "hunter2"
    conv = await engine.store.get((u.bot, u.chat))
    assert "_password" not in conv.data and "hunter2" not in repr(conv)


CHOICE_FLOW = flow_text("""\
  first:
    ask: multichoice
    prompt: "Pick"
    hint: "Pick one at least."
    options: [{id: a, label: "A"}, {id: b, label: "B"}]
    done_label: "Done"
    save: picked
    next: second
  second:
    ask: choice
    prompt: "Sure?"
    options: [{id: "yes", label: "Yes"}, {id: "no", label: "No", goto: first}]
    save: sure
    next: bye
  bye:
    say: "Picked {picked}"
    final: true
""")


async def test_multichoice_edits_in_place_and_forged_buttons_do_nothing(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, CHOICE_FLOW)
    sim = Simulator(engine)
    u = sim_user()
    await sim.send(u, "/start")
    assert await sim.send(u, "/tap Done") == ["(toast) Pick one at least."]
    replies = await sim.send(u, "/tap B")
    assert replies[-1].startswith("(edited) Pick") and "✅ B" in replies[-1]
    conv = await engine.store.get((u.bot, u.chat))
    for forged in (f"{conv.epoch}|o9", f"{conv.epoch - 1}|o0", "garbage", f"{conv.epoch}|done|x"):
        update = Update(u.bot, u.chat, u.user_id, "callback", Callback(forged, "cb"), message_id=1)
        await engine.submit(update)
    after = await engine.store.get((u.bot, u.chat))
    assert (after.state, after.data["picked"]) == ("first", ["b"])
    await sim.send(u, "/tap Done")
    assert await sim.state_of(u) == "second"
    # a button of the previous question is stale now
    stale = Update(u.bot, u.chat, u.user_id, "callback", Callback(f"{conv.epoch}|o0", "cb"), message_id=1)
    assert [getattr(a, "text", "") for a in await engine.submit(stale)] == ["STALE"]
    await sim.send(u, "/tap No")  # option with its own goto
    assert await sim.state_of(u) == "first"


async def test_two_engines_never_both_advance_one_chat(tmp_path: Path) -> None:
    store = MemoryStore()
    gate = asyncio.Event()
    entered = []

    async def wait_gate(ctx: HookContext) -> str:
        entered.append(ctx.update.request_id)
        await gate.wait()
        return "ok"

    hooks = HookRegistry()
    hooks.register("wait_gate", wait_gate)
    text = flow_text("""\
  first:
    ask: text
    prompt: "Go?"
    save: go
    call: wait_gate
    on: {ok: second}
  second:
    ask: text
    prompt: "Second"
    save: s
    next: bye
  bye:
    say: "bye"
    final: true
""")
    a = make_engine(tmp_path, text, hooks, store)
    b = Engine(a.flows, hooks, store, use_timers=False)
    sim_a, sim_b = Simulator(a), Simulator(b)
    u = sim_user()
    await sim_a.send(u, "/start")
    task_a = asyncio.create_task(sim_a.send(u, "go-a"))
    task_b = asyncio.create_task(sim_b.send(u, "go-b"))
    while len(entered) < 2:
        await asyncio.sleep(0.01)
    gate.set()
    await asyncio.gather(task_a, task_b)
    conv = await store.get((u.bot, u.chat))
    # One advanced first -> second; the other lost the race, re-read and handled its input
    # in the new state (second -> bye). Nothing was applied twice to the same version.
    assert conv.state == "bye" and conv.version == 3
    assert a.stats["conflicts"] + b.stats["conflicts"] == 1


async def test_first_message_that_is_not_a_command_starts_the_flow(tmp_path: Path) -> None:
    sim = Simulator(make_engine(tmp_path, ASK_FLOW))
    u = sim_user()
    assert await sim.send(u, "hello") == ["Name?"]


async def test_events_are_ignored_without_a_conversation(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, ASK_FLOW)
    assert await engine.post_event("t", 99, "whatever") == []
    assert await engine.store.count() == 0


async def test_flow_wide_event_reaches_a_chat_without_a_conversation(tmp_path: Path) -> None:
    text = flow_text("""\
  first:
    ask: text
    prompt: "Name?"
    save: name
    next: bye
  bye:
    say: "bye"
    final: true
""", extra='events:\n  news: {say: "NEWS {headline}", provides: [headline]}\n')
    engine = make_engine(tmp_path, text)
    actions = await engine.post_event("t", 99, "news", {"headline": "hi"})
    assert [a.text for a in actions] == ["NEWS hi"]
    assert await engine.store.count() == 0  # answered, but no conversation was started


async def test_flow_compiles_to_a_python_statemachine_class(tmp_path: Path) -> None:
    from statemachine import StateChart

    flow = compile_flow(tmp_path, ASK_FLOW)
    assert issubclass(flow.machine, StateChart)
    assert {s.id for s in flow.machine.states} == {"first", "second", "bye"}
    assert flow.stepper.target("first", "next") == "second"
    assert flow.stepper.target("bye", "cmd_start") == "first"
    assert flow.stepper.target("bye", "next") is None


def test_remembered_targets_agree_with_the_machine(tmp_path: Path) -> None:
    """The Stepper's memo must give exactly what python-statemachine gives, for every pair."""
    from engine.loader import flow_files, load_flow
    from integrations.hooks.registry import build_registry

    registry = build_registry()
    checked = 0
    for path in flow_files(Path(__file__).resolve().parents[2] / "flows"):
        flow = load_flow(path, registry)
        events = {e for s in flow.machine.states for t in s.transitions for e in t.events}
        for state in flow.machine.states:
            for event in sorted(events):
                remembered = flow.stepper.target(state.id, event)
                assert flow.stepper.target(state.id, event) == remembered  # second call: memo
                expected = flow.stepper.fire(state.id, event) if flow.stepper.has_transition(state.id, event) else None
                assert remembered == expected, (path.name, state.id, event)
                checked += 1
    assert checked > 100


async def test_a_failing_store_is_answered_not_raised(tmp_path: Path) -> None:
    class BrokenStore(MemoryStore):
        async def get(self, key):  # type: ignore[no-untyped-def]
            raise ConnectionError("database unreachable")

    engine = make_engine(tmp_path, ASK_FLOW, store=BrokenStore())
    sim = Simulator(engine)
    assert await sim.send(sim_user(), "/start") == ["ERROR-TEXT"]
    assert engine.stats["errors"] == 1
