"""Contract tests: the engine's public API, its exceptions and its purity.

Pins the exact set of names ``engine`` exports, the parameters of the entry points apps call,
and two promises: every exception the engine defines derives from :class:`engine.EngineError`
(keeping the builtin base callers already catch), and importing the engine pulls in no
transport, database, scheduler or media library. Changing the API on purpose means changing
this file too.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import engine

PUBLIC_NAMES = {
    # running
    "Engine", "Sink", "Step",
    # updates in, replies out
    "Update", "UpdateKind", "Payload", "Contact", "Location", "VideoNote", "Command", "Callback",
    "Event", "Outgoing", "ReplyAction", "SendText", "EditText", "AnswerCallback", "DeleteMessage",
    "SendDocument", "Button", "InlineButton",
    # hooks
    "HookRegistry", "HookContext", "HookResult", "HookSpec", "HookKind",
    # flows
    "load_flows", "load_flow", "parse_flow", "check_paths", "flow_files", "CompiledFlow",
    "FlowSpec", "StateSpec", "FlowProblem",
    # conversations
    "ConversationStore", "MemoryStore", "Conversation", "Key", "is_transient", "TIMEOUT_EVENT",
    # offline
    "Simulator", "SimUser", "MediaReader", "run_script", "ScriptResult", "draw", "markdown",
    # logging
    "request_id_var", "RequestIdFilter",
    # errors
    "EngineError", "FlowLoadError", "FlowRuntimeError", "UnknownHook", "DuplicateHook",
    "HookReturnError", "VersionConflict", "InputError", "UnknownFormat",
}

# exception -> the builtin base callers may catch it by
SECONDARY_BASES = {
    "FlowLoadError": None,
    "FlowRuntimeError": RuntimeError,
    "UnknownHook": KeyError,
    "DuplicateHook": ValueError,
    "HookReturnError": TypeError,
    "VersionConflict": None,
    "InputError": ValueError,
    "UnknownFormat": ValueError,
}

# entry point -> its parameters, in order
SIGNATURES = {
    "Engine": ["flows", "hooks", "store", "services", "clock", "use_timers"],
    "Simulator": ["engine", "echo", "media_reader"],
    "Step": ["flow", "conversation", "update", "hooks", "services", "clock"],
    "load_flows": ["targets", "hooks"],
    "load_flow": ["path", "hooks"],
    "check_paths": ["targets", "hooks"],
    "run_script": ["sim", "script", "default_bot", "stop_on_failure", "echo", "variables"],
}

FORBIDDEN_IMPORTS = ("integrations", "cv2", "numpy", "pyrogram", "mongoengine", "pymongo",
                     "apscheduler", "boto3", "requests")


def test_all_is_the_exact_set_of_public_names() -> None:
    assert len(engine.__all__) == len(set(engine.__all__)), "a name is listed twice"
    assert set(engine.__all__) == PUBLIC_NAMES


@pytest.mark.parametrize("name", sorted(PUBLIC_NAMES))
def test_every_public_name_is_importable(name: str) -> None:
    assert getattr(engine, name) is not None


def test_star_import_gives_exactly_the_public_names() -> None:
    namespace: dict = {}
    exec("from engine import *", namespace)  # noqa: S102 - the point of the test
    assert set(namespace) - {"__builtins__"} == PUBLIC_NAMES


@pytest.mark.parametrize("name, params", sorted(SIGNATURES.items()))
def test_entry_point_parameters(name: str, params: list[str]) -> None:
    target = getattr(engine, name)
    signature = inspect.signature(target.__init__ if inspect.isclass(target) else target)
    assert [p for p in signature.parameters if p != "self"] == params


def _engine_exceptions() -> list[type[BaseException]]:
    found = {}
    for info in pkgutil.iter_modules(engine.__path__):
        module = importlib.import_module(f"engine.{info.name}")
        for obj in vars(module).values():
            if (inspect.isclass(obj) and issubclass(obj, BaseException)
                    and obj.__module__.startswith("engine.")):
                found[obj.__qualname__] = obj
    return sorted(found.values(), key=lambda c: c.__name__)


def test_every_engine_exception_derives_from_engine_error() -> None:
    exceptions = _engine_exceptions()
    assert {e.__name__ for e in exceptions} == set(SECONDARY_BASES) | {"EngineError"}
    assert all(issubclass(e, engine.EngineError) for e in exceptions)


@pytest.mark.parametrize("name, base", sorted(SECONDARY_BASES.items(), key=lambda kv: kv[0]))
def test_exceptions_keep_their_builtin_base(name: str, base: type | None) -> None:
    cls = getattr(engine, name)
    assert issubclass(cls, engine.EngineError)
    if base is not None:
        assert issubclass(cls, base)


def test_errors_are_raised_where_callers_catch_them(tmp_path: Path) -> None:
    hooks = engine.HookRegistry()
    with pytest.raises(KeyError):
        hooks.get("missing")
    hooks.register("h", lambda ctx: None)
    with pytest.raises(ValueError):
        hooks.register("h", lambda ctx: None)
    with pytest.raises(engine.EngineError) as caught:
        engine.load_flow(tmp_path / "missing.yaml", hooks)
    assert isinstance(caught.value, engine.FlowLoadError)
    problem = caught.value.problems[0]
    assert isinstance(problem, engine.FlowProblem)
    assert str(problem).startswith(f"{tmp_path / 'missing.yaml'}:1: ")


def test_timeout_event_has_one_name() -> None:
    """The machine's transition and the Event a timer posts are the same name."""
    from engine.constants import RESERVED_EVENTS, TIMEOUT_EVENT
    from integrations.hooks.registry import build_registry

    flow = engine.load_flow(Path(__file__).resolve().parents[2] / "flows" / "example.yaml", build_registry())
    events = {e for state in flow.machine.states for t in state.transitions for e in t.events}
    assert engine.TIMEOUT_EVENT == TIMEOUT_EVENT == "timeout"
    assert TIMEOUT_EVENT in events and TIMEOUT_EVENT in RESERVED_EVENTS
    assert not {e for e in events if "timeout" in e} - {TIMEOUT_EVENT}


def test_importing_the_engine_pulls_in_no_io_library() -> None:
    code = "import sys, engine; print('\\n'.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[2]).stdout.split()
    leaked = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN_IMPORTS)
    assert leaked == []
