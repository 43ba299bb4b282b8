"""Model-based test: every transition of every shipped flow, driven with generated inputs.

For each state and each transition the compiled python-statemachine class declares, the test
builds the input that should take it (a valid answer, a hook outcome, a button, a command, an
event, a timeout, repeated failures, /back after answering the question it returns to) and
checks the interpreter lands where the machine says. Hooks are replaced by stubs with the same
declared outcomes, so each outcome can be forced. Each ask state is also fed inputs that must
fail its guards (wrong kind, forwarded media, invalid values) and must stay put. Nothing may
raise.

Every flow runs in each of its languages (the user's Telegram language), and every reply must be
in that language: a text with words in it carries letters of the language's script (or, in
English, none of the others').
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import pytest
import yaml
from hypothesis import HealthCheck, find, settings as hyp_settings
from hypothesis import strategies as st

from engine.hooks import HookContext, HookRegistry, HookResult
from engine.constants import BACK_PREFIX, DEFAULT_LANGUAGE, HISTORY_KEY, OPTIONS_KEY, TIMEOUT_EVENT
from engine.i18n import remember_language
from engine.step import Step
from engine.loader import CompiledFlow, flow_files, load_flow
from engine.spec import StateSpec
from engine.store import Conversation
from engine.types import (
    AnswerCallback,
    Callback,
    Command,
    Contact,
    EditText,
    Event,
    Location,
    ReplyAction,
    SendText,
    Update,
    VideoNote,
)
from integrations.hooks.registry import build_registry

REPO = Path(__file__).resolve().parents[2]
FLOW_FILES = flow_files(REPO / "flows")


def _languages(path: Path) -> list[str]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return list(raw.get("languages") or [raw.get("default_language", DEFAULT_LANGUAGE)])


CASES = [(path, language) for path in FLOW_FILES for language in _languages(path)]
CASE_IDS = [f"{path.stem}-{language}" for path, language in CASES]
# Letters of each shipped language's script; English replies have none of the others.
SCRIPTS = {"hi": "\u0900-\u097F", "te": "\u0C00-\u0C7F"}
USER = 4242
EPOCH = 10
STUB_OPTIONS = [("a", "Option A"), ("b", "Option B")]


@dataclass
class Forced:
    outcomes: dict[str, str] = field(default_factory=dict)


def stub_registry(real: HookRegistry, forced: Forced) -> HookRegistry:
    stub = HookRegistry()
    for spec in real:
        def fn(ctx: HookContext, spec=spec) -> Any:  # noqa: ANN001
            if spec.kind == "options":
                return list(STUB_OPTIONS)
            outcome = forced.outcomes.get(spec.name, "ok" if "ok" in spec.outcomes else spec.outcomes[0])
            return HookResult(outcome, {k: f"<{k}>" for k in spec.provides})
        stub.register(spec.name, fn, kind=spec.kind, outcomes=spec.outcomes, provides=spec.provides)
    return stub


def text_matching(state: StateSpec) -> str:
    rule = state.validate
    lo = (rule.min_length if rule and rule.min_length else 0)
    hi = (rule.max_length if rule and rule.max_length else 200)
    if rule and rule.regex:
        return _matching(rule.regex, lo, hi)
    return "x" * max(lo, 5)


@lru_cache(maxsize=None)
def _matching(regex: str, lo: int, hi: int) -> str:
    """A string the regex accepts: a plain guess if one fits, else one found by hypothesis."""
    import re

    for guess in ("Test User", "123456", "abc", "teacher@example.com", "S001", "Secret#123"):
        if re.fullmatch(regex, guess) and lo <= len(guess) <= hi:
            return guess
    return find(
            st.from_regex(regex, fullmatch=True),
            lambda s: lo <= len(s) <= hi and s == s.strip() and "\n" not in s,
            settings=hyp_settings(database=None, max_examples=2000,
                                  suppress_health_check=list(HealthCheck)),
        )


def valid_inputs(state: StateSpec, option_index: int = 0) -> list[tuple[str, Any]]:
    kind = state.ask
    if kind == "text":
        return [("text", text_matching(state))]
    if kind == "number":
        rule = state.validate
        value = rule.min if rule and rule.min is not None else (rule.max if rule and rule.max is not None else 1)
        return [("text", str(int(value) if float(value).is_integer() else value))]
    if kind == "contact":
        return [("contact", Contact("+919876543210", USER, "Tess"))]
    if kind == "location":
        return [("location", Location(17.385, 78.4867, 5.0))]
    if kind == "video_note":
        return [("video_note", VideoNote(b"\x00" * 1000, 3, 384, 1000, "f"))]
    if kind == "choice":
        return [("callback", Callback(f"{EPOCH}|o{option_index}", "cb"))]
    if kind == "multichoice":
        return [("callback", Callback(f"{EPOCH}|o0", "cb")), ("callback", Callback(f"{EPOCH}|done", "cb"))]
    raise AssertionError(kind)


def invalid_values(state: StateSpec) -> list[str]:
    rule = state.validate
    if not rule:
        return ["not a number"] if state.ask == "number" else []
    out = []
    if state.ask == "number":
        out.append("not a number")
        if rule.min is not None:
            out.append(str(rule.min - 1))
        if rule.max is not None:
            out.append(str(rule.max + 1))
    if rule.regex:
        import re
        out += [c for c in ("", "!!!", "x" * 5000, "0", "a b") if not re.fullmatch(rule.regex, c)][:1]
    if rule.max_length:
        out.append("y" * (rule.max_length + 1))
    return out


WRONG_KIND = {"text": ("location", Location(1.0, 2.0)), "contact": ("text", "hello"),
              "location": ("text", "hello"), "video_note": ("other", "photo"),
              "number": ("contact", Contact("+1", USER)), "choice": ("other", "sticker"),
              "multichoice": ("text", "Option A")}


def _shown(actions: Iterable[ReplyAction]) -> list[str]:
    """Every text a user would read: messages, edits, toasts and button labels."""
    out: list[str] = []
    for action in actions:
        if isinstance(action, (SendText, EditText)):
            out.append(action.text)
            rows = [*(getattr(action, "keyboard", None) or []), *(action.inline or [])]
            out += [button.text for row in rows for button in row]
        elif isinstance(action, AnswerCallback):
            out.append(action.text)
    return out


def wrong_language(texts: Iterable[str], language: str) -> list[str]:
    """Texts that are not in ``language`` (the stubs' own values and labels do not count)."""
    bad = []
    for text in texts:
        words = re.sub(r"<\w+>|Option [AB]|/\w+", "", text)
        if not re.search(r"[A-Za-z\u0900-\u097F\u0C00-\u0C7F]", words):
            continue  # nothing to read: a code, an emoji, a stub value
        script = SCRIPTS.get(language)
        if script is not None and not re.search(f"[{script}]", words):
            bad.append(text)
        elif script is None and re.search(f"[{''.join(SCRIPTS.values())}]", words):
            bad.append(text)
    return bad


class Harness:
    def __init__(self, path: Path, language: str = DEFAULT_LANGUAGE) -> None:
        self.forced = Forced()
        self.registry = stub_registry(build_registry(), self.forced)
        self.flow: CompiledFlow = load_flow(path, self.registry)
        self.spec = self.flow.spec
        self.language = language
        self.sent: list[ReplyAction] = []  # every reply, to check its language

    def conversation(self, state: str) -> Conversation:
        data: dict[str, Any] = dict(self.spec.data)
        data[OPTIONS_KEY] = [list(o) for o in STUB_OPTIONS]
        remember_language(data, self.spec, self.language, False)
        return Conversation(self.spec.bot, USER, USER, self.spec.name, state, data,
                            version=1, epoch=EPOCH)

    async def step(self, conv: Conversation, kind: str, payload: Any, forwarded: bool = False) -> Step:
        update = Update(self.spec.bot, USER, USER, kind, payload, forwarded=forwarded,  # type: ignore[arg-type]
                        message_id=77, first_name="Tess", language_code=self.language)
        step = Step(self.flow, conv, update, self.registry)
        await step.handle()
        self.sent += step.actions
        return step

    async def enter(self, conv: Conversation, state: str) -> Step:
        update = Update(self.spec.bot, USER, USER, "event", Event("__enter__"), first_name="Tess",
                        language_code=self.language)
        step = Step(self.flow, conv, update, self.registry)
        await step.enter(state)
        self.sent += step.actions
        return step

    def replies_in_wrong_language(self) -> list[str]:
        bad = wrong_language(_shown(self.sent), self.language)
        self.sent.clear()
        return bad

    def transitions(self) -> list[tuple[str, str, str]]:
        out = []
        for state in self.flow.machine.states:
            for t in state.transitions:
                for event in t.events:
                    out.append((state.id, str(event), t.target.id))
        return sorted(set(out))

    async def take(self, source: str, event: str) -> list[str]:
        """Drive the transition; return the states entered (first = where it led)."""
        state = self.spec.states[source]
        conv = self.conversation(source)
        self.forced.outcomes.clear()
        if event == "next" or event.startswith("o_"):
            if event.startswith("o_"):
                self.forced.outcomes[state.call] = event[2:]  # type: ignore[index]
            if not state.ask:
                return (await self.enter(conv, source)).trace[1:]
            index = next((i for i, o in enumerate(state.options) if not o.goto), 0)
            trace: list[str] = []
            for kind, payload in valid_inputs(state, index):
                trace += (await self.step(conv, kind, payload)).trace
            if not trace and event.startswith("o_") and conv.state == source:
                return [source]  # an outcome that sends the user back to the same question
            return trace
        if event.startswith("opt_"):
            index = next(i for i, o in enumerate(state.options) if o.id == event[4:])
            return (await self.step(conv, *valid_inputs(state, index)[0])).trace
        if event == TIMEOUT_EVENT:
            conv.deadline = 0.0
            return (await self.step(conv, "event", Event(TIMEOUT_EVENT, {"epoch": EPOCH}))).trace
        if event == "retry":
            assert state.retry is not None
            bad = invalid_values(state)
            trace = []
            for _ in range(state.retry.max):
                if bad:
                    trace += (await self.step(conv, "text", bad[0])).trace
                else:  # fail through the hook: force the outcome that returns to this question
                    self_outcome = next(o for o, h in state.on.items() if h.goto == source)
                    self.forced.outcomes[state.call] = self_outcome  # type: ignore[index]
                    for kind, payload in valid_inputs(state):
                        trace += (await self.step(conv, kind, payload)).trace
            return trace
        if event.startswith(BACK_PREFIX):  # /back after answering that question
            conv.data[HISTORY_KEY] = [event[len(BACK_PREFIX):]]
            return (await self.step(conv, "command", Command("back"))).trace
        if event.startswith("cmd_"):
            return (await self.step(conv, "command", Command(event[4:], "1"))).trace
        if event.startswith("ev_"):
            name = event[3:]
            handler = state.events.get(name) or self.spec.events.get(name)
            data = {k: f"<{k}>" for k in (handler.provides if handler else ())}
            return (await self.step(conv, "event", Event(name, data))).trace
        raise AssertionError(f"unknown event kind {event}")


@pytest.mark.parametrize("path, language", CASES, ids=CASE_IDS)
async def test_every_transition_of_every_flow(path: Path, language: str, capsys: pytest.CaptureFixture) -> None:
    h = Harness(path, language)
    transitions = h.transitions()
    covered, reached = 0, {h.spec.start}
    problems = []
    for source, event, target in transitions:
        try:
            trace = await h.take(source, event)
        except Exception as exc:  # noqa: BLE001 - report every failure, not just the first
            problems.append(f"{source} --{event}--> {target}: raised {exc!r}")
            continue
        if not trace or trace[0] != target:
            problems.append(f"{source} --{event}--> {target}: went to {trace}")
            continue
        wrong = h.replies_in_wrong_language()
        if wrong:
            problems.append(f"{source} --{event}--> {target}: not in {language}: {wrong}")
            continue
        covered += 1
        reached.update(trace)
    assert problems == []
    assert reached == set(h.spec.states), f"never reached: {set(h.spec.states) - reached}"
    with capsys.disabled():
        print(f"\n[model-based] {path.name} ({language}): {covered}/{len(transitions)} transitions, "
              f"{len(reached)}/{len(h.spec.states)} states reached")


@pytest.mark.parametrize("path, language", CASES, ids=CASE_IDS)
async def test_failing_guards_keep_the_state(path: Path, language: str) -> None:
    h = Harness(path, language)
    checked = 0
    for name, state in h.spec.states.items():
        if not state.ask:
            continue
        cases: list[tuple[str, Any, bool]] = [(*WRONG_KIND[state.ask], False)]
        if not state.forwarded_ok:
            cases.append((*valid_inputs(state)[0], True))
        cases += [("text", v, False) for v in invalid_values(state)]
        cases.append(("callback", Callback("999|o0", "cb"), False))  # a forged/stale button
        for kind, payload, forwarded in cases:
            conv = h.conversation(name)
            before = conv.clone()
            step = await h.step(conv, kind, payload, forwarded)
            assert conv.state == name, (name, kind, payload)
            assert step.trace == [] or step.trace == [state.retry.goto if state.retry else None]
            assert step.actions, f"{name}: no answer to {kind} {payload!r}"
            if not (state.retry and conv.retries):
                assert conv.data == before.data or state.ask == "multichoice"
            assert h.replies_in_wrong_language() == [], (name, kind, payload)
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("path, language", CASES, ids=CASE_IDS)
async def test_switching_language_anywhere_keeps_the_state(path: Path, language: str) -> None:
    """/language X in any state: the conversation stays where it is (nothing answered, no
    retry counted) and the bot speaks X from then on, asking the current question again."""
    h = Harness(path, language)
    if not h.spec.multilingual:
        pytest.skip("one language: /language is not built in")
    for target in h.spec.languages:
        for name, state in h.spec.states.items():
            conv = h.conversation(name)
            before = conv.clone()
            step = await h.step(conv, "command", Command("language", target))
            assert (conv.state, conv.epoch, conv.retries) == (name, before.epoch, before.retries), name
            assert step.language == target and step.actions, name
            assert wrong_language(_shown(step.actions), target) == [], (name, target)
            h.sent.clear()
            if state.ask and not state.final:
                assert len([a for a in step.actions if isinstance(a, SendText)]) == 2, name  # said + asked
