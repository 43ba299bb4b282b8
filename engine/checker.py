"""Static checks of a flow, each reported as `file:line: state 'x': message`.

`run.py check` prints every problem at once so a flow author can fix them in one pass.
"""
from __future__ import annotations

import re
import string
from typing import Iterable, Iterator, Optional

from .errors import FlowProblem
from .hooks import HookRegistry
from .constants import BUILTIN_KEYS
from .spec import FlowSpec, Handler, StateSpec


_FORMATTER = string.Formatter()


def placeholders(text: Optional[str]) -> Iterator[str]:
    """Base names of the `{placeholders}` in a text (`{a.b}` gives `a`)."""
    if not text:
        return
    try:
        for _, field_name, _, _ in _FORMATTER.parse(text):
            if field_name:
                yield re.split(r"[.\[]", field_name, maxsplit=1)[0]
    except ValueError:
        yield "{"  # unbalanced braces: reported as an unknown placeholder '{'


def handler_targets(state: StateSpec) -> list[tuple[str, str, int]]:
    """(event label, target, line) of every transition a state defines itself."""
    out: list[tuple[str, str, int]] = []
    if state.next:
        out.append(("next", state.next, state.line))
    for outcome, h in state.on.items():
        if h.goto:
            out.append((f"outcome '{outcome}'", h.goto, h.line or state.line))
    for opt in state.options:
        if opt.goto:
            out.append((f"option '{opt.id}'", opt.goto, state.line))
    if state.timeout:
        out.append(("timeout", state.timeout.goto, state.line))
    if state.retry:
        out.append(("retry", state.retry.goto, state.line))
    for name, h in {**state.commands, **state.events}.items():
        if h.goto:
            out.append((name, h.goto, h.line or state.line))
    return out


def _texts_of_handler(h: Handler) -> Iterable[str]:
    if h.say:
        yield h.say
    if h.document:
        yield h.document.filename
        yield h.document.caption


def _texts_of_state(s: StateSpec) -> Iterable[str]:
    for text in (s.say, s.prompt, s.hint, s.button, s.done_label):
        if text:
            yield text
    if s.validate and s.validate.error:
        yield s.validate.error
    if s.timeout and s.timeout.say:
        yield s.timeout.say
    if s.retry and s.retry.say:
        yield s.retry.say
    if s.document:
        yield s.document.filename
        yield s.document.caption
    for opt in s.options:
        yield opt.label
    yield from s.suggestions
    for h in (*s.on.values(), *s.commands.values(), *s.events.values()):
        yield from _texts_of_handler(h)


def check_flow(spec: FlowSpec, hooks: HookRegistry) -> list[FlowProblem]:
    """Every semantic problem of one (schema-valid) flow."""
    errors: list[FlowProblem] = []

    def err(line: int, message: str, state: Optional[str] = None, kind: str = "error") -> None:
        errors.append(FlowProblem(spec.path, line, message, state, kind))

    states = spec.states
    if spec.start not in states:
        err(1, f"start state '{spec.start}' is not defined", kind="unknown_target")

    # --- targets
    for name, h in {**spec.commands, **spec.events}.items():
        if h.goto and h.goto not in states:
            err(h.line, f"'{name}' goes to unknown state '{h.goto}'", kind="unknown_target")
    for s in states.values():
        for label, target, line in handler_targets(s):
            if target not in states:
                err(line, f"{label} goes to unknown state '{target}'", s.name, "unknown_target")

    # --- hooks and their outcomes
    provided: set[str] = set()
    for s in states.values():
        uses = [(s.call, "call"), (s.options_from, "options")]
        if s.validate and s.validate.hook:
            uses.append((s.validate.hook, "validate"))
        for hook_name, kind in uses:
            if not hook_name:
                continue
            if hook_name not in hooks:
                err(s.line, f"unknown hook '{hook_name}'", s.name, "unknown_hook")
                continue
            hook = hooks.get(hook_name)
            provided.update(hook.provides)
            if hook.kind != kind:
                err(s.line, f"hook '{hook_name}' is a {hook.kind} hook, used as {kind}", s.name,
                    "wrong_type")
        if s.call and s.call in hooks:
            outcomes = hooks.get(s.call).outcomes
            for outcome, h in s.on.items():
                if outcome not in outcomes:
                    err(h.line or s.line,
                        f"hook '{s.call}' has no outcome '{outcome}' (it has: {', '.join(outcomes)})",
                        s.name, "unknown_outcome")
            for outcome in outcomes:
                if outcome not in s.on and not (outcome == "ok" and s.next):
                    err(s.line, f"outcome '{outcome}' of hook '{s.call}' is not handled", s.name,
                        "unhandled_outcome")
        elif s.on and not s.call:
            err(s.line, "'on' needs a 'call'", s.name, "wrong_type")

    # --- shape of each state
    for s in states.values():
        if s.ask in ("choice", "multichoice") and not (s.options or s.options_from):
            err(s.line, f"ask: {s.ask} needs 'options' or 'options_from'", s.name, "wrong_type")
        if s.ask and not s.prompt:
            err(s.line, "an 'ask' state needs a 'prompt'", s.name, "wrong_type")
        if (s.prompt or s.save or s.validate) and not s.ask:
            err(s.line, "'prompt', 'save' and 'validate' need an 'ask'", s.name, "wrong_type")
        if s.ask == "video_note" and s.save and not s.save.startswith("_"):
            err(s.line, "video bytes cannot be persisted: save under a name starting with '_'",
                s.name, "wrong_type")
        if s.ask == "multichoice" and not s.save:
            err(s.line, "ask: multichoice needs 'save' for the selection", s.name, "wrong_type")
        if s.call and s.ask is None and s.next and "ok" in s.on:
            err(s.line, "both 'next' and on.ok are given", s.name, "wrong_type")
        v = s.validate
        if v:
            if v.regex is not None:
                if s.ask not in ("text",):
                    err(s.line, "validate.regex applies to ask: text only", s.name, "wrong_type")
                try:
                    re.compile(v.regex)
                except re.error as exc:
                    err(s.line, f"bad regex {v.regex!r}: {exc}", s.name, "bad_regex")
            if (v.min is not None or v.max is not None) and s.ask != "number":
                err(s.line, "validate.min/max apply to ask: number only", s.name, "wrong_type")
            if (v.regex or v.min is not None or v.max is not None or v.min_length
                    or v.max_length) and not v.error:
                err(s.line, "validate needs an 'error' text", s.name, "wrong_type")
        if s.final and (s.ask or s.call or s.next):
            err(s.line, "a final state cannot ask, call or go next", s.name, "wrong_type")
        if not s.final and not handler_targets(s) and not any(o.goto for o in s.options):
            err(s.line, "non-final state has no way out", s.name, "no_way_out")
        if s.ask and not s.final and not (s.next or s.call or s.on) and s.options and not all(
            o.goto for o in s.options
        ):
            err(s.line, "some options have no 'goto' and the state has no 'next'", s.name,
                "no_way_out")
        if s.ask and not (s.next or s.call or s.options) and not s.final:
            err(s.line, "an 'ask' state needs 'next' or 'call' to move on", s.name, "no_way_out")

    # --- reachability (from start and from every global command/event)
    roots = [spec.start] + [h.goto for h in {**spec.commands, **spec.events}.values() if h.goto]
    seen: set[str] = set()
    todo = [r for r in roots if r in states]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(t for _, t, _ in handler_targets(states[name]) if t in states)
    for s in states.values():
        if s.name not in seen:
            err(s.line, "unreachable state", s.name, "unreachable")

    # --- loops that never wait for the user
    for s in states.values():
        if s.waits:
            continue
        path, current = [s.name], s
        while current and not current.waits and current.next and not current.call:
            current = states.get(current.next)  # type: ignore[assignment]
            if current is None:
                break
            if current.name in path:
                err(s.line, f"loop that never waits: {' -> '.join(path + [current.name])}",
                    s.name, "loop")
                break
            path.append(current.name)

    # --- placeholders
    known = set(BUILTIN_KEYS) | set(spec.data) | provided
    known |= {s.save for s in states.values() if s.save}
    for h in (*spec.events.values(), *(h for s in states.values() for h in s.events.values())):
        known |= set(h.provides)
    for name, h in {**spec.commands, **spec.events}.items():
        for text in _texts_of_handler(h):
            for ph in placeholders(text):
                if ph not in known:
                    err(h.line, f"unknown placeholder '{{{ph}}}' in '{name}'",
                        kind="unknown_placeholder")
    for key, text in spec.texts.items():
        for ph in placeholders(text):
            if ph not in known:
                err(1, f"unknown placeholder '{{{ph}}}' in text '{key}'", kind="unknown_placeholder")
    for s in states.values():
        for text in _texts_of_state(s):
            for ph in placeholders(text):
                if ph not in known:
                    err(s.line, f"unknown placeholder '{{{ph}}}'", s.name, "unknown_placeholder")
        if s.document and s.document.data not in known:
            err(s.line, f"document data '{s.document.data}' is never set", s.name,
                "unknown_placeholder")
    return errors
