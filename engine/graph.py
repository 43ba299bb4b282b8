"""Where a flow's transitions lead, as the checker, the compiler and the back feature see them."""
from __future__ import annotations

from dataclasses import dataclass

from .spec import FlowSpec, StateSpec


@dataclass(frozen=True)
class Edge:
    """One transition a state defines itself, with the line of the key that names the target."""

    label: str  # how a problem names it: "next", "outcome 'ok'", "timeout", "/cancel" ...
    target: str
    line: int
    answer: bool  # taken by answering the state's question (next, an outcome, an option)


def edges(state: StateSpec) -> list[Edge]:
    out: list[Edge] = []
    if state.next:
        out.append(Edge("next", state.next, state.at("next"), True))
    for outcome, h in state.on.items():
        if h.goto:
            out.append(Edge(f"outcome '{outcome}'", h.goto, state.at(f"on.{outcome}.goto", f"on.{outcome}"), True))
    for i, opt in enumerate(state.options):
        if opt.goto:
            out.append(Edge(f"option '{opt.id}'", opt.goto, state.at(f"options.{i}.goto", f"options.{i}"), True))
    if state.timeout:
        out.append(Edge("timeout", state.timeout.goto, state.at("timeout.goto", "timeout"), False))
    if state.retry:
        out.append(Edge("retry", state.retry.goto, state.at("retry.goto", "retry"), False))
    for name, h in state.commands.items():
        if h.goto:
            out.append(Edge(f"/{name}", h.goto, state.at(f"commands.{name}.goto", f"commands.{name}"), False))
    for name, h in state.events.items():
        if h.goto:
            out.append(Edge(f"event '{name}'", h.goto, state.at(f"events.{name}.goto", f"events.{name}"), False))
    return out


def previous_questions(flow: FlowSpec) -> dict[str, tuple[str, ...]]:
    """For each question, the other questions whose answer can lead straight to it: through
    states that do not wait (say/call/next), never through a command, event, timeout or retry.
    These are the only places `back` may return to."""
    found: dict[str, set[str]] = {}
    for source in flow.states.values():
        if not source.ask:
            continue
        todo = [e.target for e in edges(source) if e.answer]
        seen: set[str] = set()
        while todo:
            name = todo.pop()
            state = flow.states.get(name)
            if state is None or name in seen:
                continue
            seen.add(name)
            if state.ask:
                if name != source.name:
                    found.setdefault(name, set()).add(source.name)
            elif not state.waits:
                todo.extend(e.target for e in edges(state) if e.answer)
    return {name: tuple(sorted(sources)) for name, sources in found.items()}
