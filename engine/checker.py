"""Static checks of a flow, each reported as `file:line: state 'x': message`.

One cause, one message: a problem is reported once, at the line of the key at fault, with the
closest valid name when there is one, and its consequences are not reported again (a mistyped
target does not also make the states behind it "unreachable"; an unknown hook does not also make
the data it would provide "unknown placeholders"). `run.py check` prints every problem at once so
a flow author can fix them in one pass.
"""
from __future__ import annotations

import difflib
import re
import string
from typing import Iterable, Iterator, Optional

from .constants import BACK_COMMAND, BUILTIN_KEYS, LANGUAGE_COMMAND, RESERVED_EVENTS, SUGGEST_CUTOFF
from .errors import FlowProblem
from .graph import edges, previous_questions
from .hooks import HookRegistry
from .patterns import SLOW_S, slow_input
from .spec import FlowSpec, Handler, StateSpec

_FORMATTER = string.Formatter()
PLACEHOLDER_HINT = "'{{{}}}'"  # did_you_mean() template: (did you mean '{name}'?)


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


def closest(name: str, candidates: Iterable[str]) -> Optional[str]:
    """The candidate a typo most likely meant (difflib), if any is close enough."""
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=SUGGEST_CUTOFF)
    return match[0] if match else None


def did_you_mean(guess: Optional[str], template: str = "'{}'") -> str:
    return f" (did you mean {template.format(guess)}?)" if guess else ""


def _texts_of_handler(h: Handler, prefix: str) -> Iterator[tuple[str, str]]:
    """(key path, text) of every text of a handler, so a problem can point at its line."""
    if h.say:
        yield f"{prefix}.say", h.say
    if h.document:
        yield f"{prefix}.document.filename", h.document.filename
        yield f"{prefix}.document.caption", h.document.caption


def _texts_of_state(s: StateSpec) -> Iterator[tuple[str, str]]:
    for key in ("say", "prompt", "hint", "button", "done_label"):
        text = getattr(s, key)
        if text:
            yield key, text
    if s.validate and s.validate.error:
        yield "validate.error", s.validate.error
    if s.timeout and s.timeout.say:
        yield "timeout.say", s.timeout.say
    if s.retry and s.retry.say:
        yield "retry.say", s.retry.say
    if s.document:
        yield "document.filename", s.document.filename
        yield "document.caption", s.document.caption
    for i, opt in enumerate(s.options):
        yield f"options.{i}.label", opt.label
    for i, suggestion in enumerate(s.suggestions):
        yield f"suggestions.{i}", suggestion
    for group, handlers in (("on", s.on), ("commands", s.commands), ("events", s.events)):
        for name, h in handlers.items():
            yield from _texts_of_handler(h, f"{group}.{name}")


class _Checker:
    def __init__(self, spec: FlowSpec, hooks: HookRegistry) -> None:
        self.spec = spec
        self.hooks = hooks
        self.states = spec.states
        self.problems: list[FlowProblem] = []
        self.meant: dict[str, str] = {}  # unknown target -> the state it most likely names
        self.targets_unknowable = False  # an unknown target like no state: reachability unknown
        self.provided: set[str] = set()  # data keys the flow's hooks provide
        self.hooks_unknowable = False  # an unknown hook like no hook: its data keys unknown

    def err(self, line: int, message: str, state: Optional[str] = None, kind: str = "error") -> None:
        problem = FlowProblem(self.spec.path, line, message, state, kind)
        if problem not in self.problems:
            self.problems.append(problem)

    # ------------------------------------------------------------------ targets
    def target(self, target: str, line: int, label: str, state: Optional[str] = None) -> None:
        if target in self.states:
            return
        guess = closest(target, self.states)
        if guess:
            self.meant[target] = guess
        else:
            self.targets_unknowable = True
        self.err(line, f"{label} goes to unknown state '{target}'{did_you_mean(guess)}", state,
                 "unknown_target")

    def check_targets(self) -> None:
        spec = self.spec
        if spec.start not in self.states:
            guess = closest(spec.start, self.states)
            if guess:
                self.meant[spec.start] = guess
            else:
                self.targets_unknowable = True
            self.err(spec.at("start"), f"start state '{spec.start}' is not defined{did_you_mean(guess)}",
                     kind="unknown_target")
        for group, handlers in (("commands", spec.commands), ("events", spec.events)):
            for name, h in handlers.items():
                if h.goto:
                    label = f"/{name}" if group == "commands" else f"event '{name}'"
                    self.target(h.goto, spec.at(f"{group}.{name}.goto", f"{group}.{name}"), label)
        for s in self.states.values():
            for edge in edges(s):
                self.target(edge.target, edge.line, edge.label, s.name)

    # ------------------------------------------------------------------ hooks
    def check_hooks(self) -> None:
        hooks = self.hooks
        for s in self.states.values():
            uses = [(s.call, "call", "call"), (s.options_from, "options", "options_from")]
            if s.validate and s.validate.hook:
                uses.append((s.validate.hook, "validate", "validate.hook"))
            for name, kind, key in uses:
                if not name:
                    continue
                if name not in hooks:
                    same_kind = [h.name for h in hooks if h.kind == kind]
                    guess = closest(name, same_kind) or closest(name, (h.name for h in hooks))
                    if guess:
                        self.provided.update(hooks.get(guess).provides)
                    else:
                        self.hooks_unknowable = True
                    self.err(s.at(key), f"unknown hook '{name}'{did_you_mean(guess)}", s.name,
                             "unknown_hook")
                    continue
                hook = hooks.get(name)
                self.provided.update(hook.provides)
                if hook.kind != kind:
                    self.err(s.at(key), f"hook '{name}' is a {hook.kind} hook, used as {kind}",
                             s.name, "wrong_type")
            if s.call and s.call in hooks:
                outcomes = hooks.get(s.call).outcomes
                for outcome in s.on:
                    if outcome not in outcomes:
                        guess = closest(outcome, [o for o in outcomes if o not in s.on])
                        self.err(s.at(f"on.{outcome}"),
                                 f"hook '{s.call}' has no outcome '{outcome}'{did_you_mean(guess)}"
                                 f" (it has: {', '.join(outcomes)})", s.name, "unknown_outcome")
                handled_by_typo = {closest(o, outcomes) for o in s.on if o not in outcomes}
                for outcome in outcomes:
                    if (outcome not in s.on and not (outcome == "ok" and s.next)
                            and outcome not in handled_by_typo):
                        self.err(s.at("on", "call"), f"outcome '{outcome}' of hook '{s.call}' is not handled",
                                 s.name, "unhandled_outcome")
            elif s.on and not s.call:
                self.err(s.at("on"), "'on' needs a 'call'", s.name, "wrong_type")

    # ------------------------------------------------------------------ shape of each state
    def check_shapes(self) -> None:
        for s in self.states.values():
            err = self.err
            if s.ask in ("choice", "multichoice") and not (s.options or s.options_from):
                err(s.at("ask"), f"ask: {s.ask} needs 'options' or 'options_from'", s.name, "wrong_type")
            if s.ask and not s.prompt:
                err(s.at("ask"), "an 'ask' state needs a 'prompt'", s.name, "wrong_type")
            if (s.prompt or s.save or s.validate) and not s.ask:
                err(s.at("prompt", "save", "validate"), "'prompt', 'save' and 'validate' need an 'ask'",
                    s.name, "wrong_type")
            if s.ask == "video_note" and s.save and not s.save.startswith("_"):
                err(s.at("save"), "video bytes cannot be persisted: save under a name starting with '_'"
                    f" (save: _{s.save})", s.name, "wrong_type")
            if s.ask == "multichoice" and not s.save:
                err(s.at("ask"), "ask: multichoice needs 'save' for the selection", s.name, "wrong_type")
            if s.call and s.ask is None and s.next and "ok" in s.on:
                err(s.at("next"), "both 'next' and on.ok are given", s.name, "wrong_type")
            v = s.validate
            if v:
                if v.regex is not None:
                    if s.ask not in ("text",):
                        err(s.at("validate.regex"), "validate.regex applies to ask: text only", s.name,
                            "wrong_type")
                    try:
                        re.compile(v.regex)
                    except re.error as exc:
                        err(s.at("validate.regex"), f"bad regex {v.regex!r}: {exc}", s.name, "bad_regex")
                    else:
                        hostile = slow_input(v.regex, v.max_length)
                        if hostile is not None:
                            err(s.at("validate.regex"), f"slow regex {v.regex!r}: a {len(hostile)}-character "
                                f"answer like {hostile[:12]!r}… takes over {SLOW_S * 1000:.0f} ms; "
                                "set a smaller validate.max_length or avoid repeats that overlap",
                                s.name, "slow_regex")
                if (v.min is not None or v.max is not None) and s.ask != "number":
                    err(s.at("validate.min", "validate.max"), "validate.min/max apply to ask: number only",
                        s.name, "wrong_type")
                if (v.regex or v.min is not None or v.max is not None or v.min_length
                        or v.max_length) and not v.error:
                    err(s.at("validate"), "validate needs an 'error' text", s.name, "wrong_type")
            if s.final and (s.ask or s.call or s.next):
                err(s.at("final"), "a final state cannot ask, call or go next", s.name, "wrong_type")
            if not s.final and not edges(s):
                err(s.line, "non-final state has no way out", s.name, "no_way_out")
            if s.ask and not s.final and not (s.next or s.call or s.on) and s.options and not all(
                o.goto for o in s.options
            ):
                err(s.at("options"), "some options have no 'goto' and the state has no 'next'", s.name,
                    "no_way_out")
            if s.ask and not (s.next or s.call or s.options) and not s.final:
                err(s.at("ask"), "an 'ask' state needs 'next' or 'call' to move on", s.name, "no_way_out")
            for name in s.events:
                if name in RESERVED_EVENTS:
                    err(s.at(f"events.{name}"), f"event '{name}' is reserved: use the state's"
                        f" '{name}:' key, or name the event otherwise", s.name, "reserved")
        for name in self.spec.events:
            if name in RESERVED_EVENTS:
                self.err(self.spec.at(f"events.{name}"), f"event '{name}' is reserved: use a state's"
                         f" '{name}:' key, or name the event otherwise", kind="reserved")

    # ------------------------------------------------------------------ back
    def check_back(self) -> None:
        spec = self.spec
        previous = previous_questions(spec)
        users = [s for s in self.states.values() if s.back]
        for s in users:
            line = s.at("back")
            if spec.back is None:
                self.err(line, "back: true needs the flow-wide 'back:' block (with its 'unavailable' text)",
                         s.name, "back")
            elif not s.ask:
                self.err(line, "back: true applies to questions only (states with 'ask')", s.name, "back")
            elif not previous.get(s.name):
                self.err(line, "back: true, but no question's answer leads here, so there is nothing"
                         " to go back to", s.name, "back")
        if spec.back is None:
            return
        if not users:
            self.err(spec.at("back"), "'back:' is set but no state has back: true", kind="back")
        if BACK_COMMAND in spec.commands:
            self.err(spec.at(f"commands.{BACK_COMMAND}"),
                     f"/{BACK_COMMAND} is built in when 'back:' is set: remove this command", kind="back")
        for s in self.states.values():
            if BACK_COMMAND in s.commands:
                self.err(s.at(f"commands.{BACK_COMMAND}"),
                         f"/{BACK_COMMAND} is built in when 'back:' is set: remove this command", s.name,
                         "back")

    # ------------------------------------------------------------------ languages
    def check_languages(self) -> None:
        spec = self.spec
        if spec.default_language not in spec.languages:
            self.err(spec.at("default_language", "languages"), f"default_language '{spec.default_language}'"
                     f" is not one of the languages ({', '.join(spec.languages)})", kind="wrong_type")
        if not spec.multilingual:
            return
        message = f"/{LANGUAGE_COMMAND} is built in when 'languages:' lists more than one: remove this command"
        if LANGUAGE_COMMAND in spec.commands:
            self.err(spec.at(f"commands.{LANGUAGE_COMMAND}"), message, kind="language")
        for s in self.states.values():
            if LANGUAGE_COMMAND in s.commands:
                self.err(s.at(f"commands.{LANGUAGE_COMMAND}"), message, s.name, "language")

    # ------------------------------------------------------------------ reachability and loops
    def check_reachability(self) -> None:
        if self.targets_unknowable:
            return  # a target names no state at all: fix it first, then unreachable states show
        spec, states = self.spec, self.states
        roots = [spec.start] + [h.goto for h in {**spec.commands, **spec.events}.values() if h.goto]
        seen: set[str] = set()
        todo = [self.meant.get(r, r) for r in roots]
        while todo:
            name = todo.pop()
            if name in seen or name not in states:
                continue
            seen.add(name)
            todo.extend(self.meant.get(e.target, e.target) for e in edges(states[name]))
        for s in states.values():
            if s.name not in seen:
                self.err(s.line, "unreachable state", s.name, "unreachable")

    def check_loops(self) -> None:
        states = self.states
        for s in states.values():
            if s.waits:
                continue
            path, current = [s.name], s
            while current and not current.waits and current.next and not current.call:
                current = states.get(current.next)  # type: ignore[assignment]
                if current is None:
                    break
                if current.name in path:
                    self.err(s.at("next"), f"loop that never waits: {' -> '.join(path + [current.name])}",
                             s.name, "loop")
                    break
                path.append(current.name)

    # ------------------------------------------------------------------ placeholders
    def known_keys(self) -> set[str]:
        """Every data key a placeholder may name (after :meth:`check_hooks`)."""
        spec, states = self.spec, self.states
        known = set(BUILTIN_KEYS) | set(spec.data) | self.provided
        known |= {s.save for s in states.values() if s.save}
        for h in (*spec.events.values(), *(h for s in states.values() for h in s.events.values())):
            known |= set(h.provides)
        return known

    def check_placeholders(self) -> None:
        if self.hooks_unknowable:
            return  # a hook names nothing registered: the data it provides is unknown
        spec, states = self.spec, self.states
        known = self.known_keys()

        def check(text: str, line: int, state: Optional[str], where: str = "") -> None:
            for ph in placeholders(text):
                if ph not in known:
                    hint = did_you_mean(closest(ph, known), PLACEHOLDER_HINT)
                    self.err(line, f"unknown placeholder '{{{ph}}}'{where}{hint}", state,
                             "unknown_placeholder")

        for group, handlers in (("commands", spec.commands), ("events", spec.events)):
            for name, h in handlers.items():
                for path, text in _texts_of_handler(h, f"{group}.{name}"):
                    check(text, spec.at(path, f"{group}.{name}"), None, f" in '{name}'")
        for key, text in spec.texts.items():
            check(text, spec.at(f"texts.{key}"), None, f" in text '{key}'")
        if spec.back:
            for key in ("unavailable", "button"):
                text = getattr(spec.back, key)
                if text:
                    check(text, spec.at(f"back.{key}"), None, f" in back.{key}")
        for s in states.values():
            for path, text in _texts_of_state(s):
                check(text, s.at(path), s.name)
            if s.document and s.document.data not in known:
                guess = closest(s.document.data, known)
                self.err(s.at("document.data"), f"document data '{s.document.data}' is never set"
                         f"{did_you_mean(guess)}", s.name, "unknown_placeholder")


def known_keys(spec: FlowSpec, hooks: HookRegistry) -> set[str]:
    """Every data key a placeholder of the flow may name: saved answers, data the hooks and
    events provide, `data:` defaults and the built-ins."""
    checker = _Checker(spec, hooks)
    checker.check_hooks()
    return checker.known_keys()


def check_flow(spec: FlowSpec, hooks: HookRegistry) -> list[FlowProblem]:
    """Every semantic problem of one (schema-valid) flow, in file order."""
    checker = _Checker(spec, hooks)
    checker.check_targets()
    checker.check_hooks()
    checker.check_shapes()
    checker.check_back()
    checker.check_languages()
    checker.check_reachability()
    checker.check_loops()
    checker.check_placeholders()
    return sorted(checker.problems, key=lambda p: p.line)
