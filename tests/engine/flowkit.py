"""Small flows and engines for engine tests."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from engine.hooks import HookRegistry
from engine.loader import CompiledFlow, load_flow
from engine.runtime import Engine
from engine.simulator import SimUser, Simulator
from engine.store import ConversationStore

TEXTS = """
texts:
  error: "ERROR-TEXT"
  wrong_kind: "WRONG-KIND"
  forwarded: "NO-FORWARDS"
  stale_button: "STALE"
  unknown_command: "UNKNOWN-COMMAND"
  ended: "ENDED"
  too_many_attempts: "TOO-MANY"
commands:
  start: {reset: true, goto: first}
  cancel: {say: "CANCELLED", goto: bye}
  help: {say: "HELP"}
"""


def flow_text(states: str, start: str = "first", extra: str = "") -> str:
    return f"flow: t\nbot: t\nstart: {start}\n{TEXTS}{extra}\nstates:\n{states}"


def write_flow(tmp_path: Path, text: str, name: str = "t.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def compile_flow(tmp_path: Path, text: str, hooks: Optional[HookRegistry] = None) -> CompiledFlow:
    return load_flow(write_flow(tmp_path, text), hooks or HookRegistry())


def make_engine(
    tmp_path: Path,
    text: str,
    hooks: Optional[HookRegistry] = None,
    store: Optional[ConversationStore] = None,
    use_timers: bool = False,
) -> Engine:
    hooks = hooks or HookRegistry()
    flow = compile_flow(tmp_path, text, hooks)
    return Engine({flow.spec.bot: flow}, hooks, store, use_timers=use_timers)


def sim_user(user_id: int = 1, bot: str = "t") -> SimUser:
    return SimUser(f"u{user_id}", user_id, bot, f"User{user_id}")


__all__ = ["Simulator", "compile_flow", "flow_text", "make_engine", "sim_user", "write_flow"]
