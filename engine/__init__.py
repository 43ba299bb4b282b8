"""Attendance Flows engine: YAML flows compiled to python-statemachine classes, run per chat.

Pure: no transport, no database, no media decoding. Transports turn their updates into
:class:`Update` and render each :class:`Outgoing`; stores persist :class:`Conversation`; hooks
(:class:`HookRegistry`) are the only way a flow reaches the outside world. Everything an app or a
test needs is importable from here; ``tests/engine/test_api_contract.py`` pins the exact set.
"""
from __future__ import annotations

from .constants import TIMEOUT_EVENT, is_transient
from .context import RequestIdFilter, request_id_var
from .diagram import draw, markdown
from .errors import (
    DuplicateHook,
    EngineError,
    FlowLoadError,
    FlowProblem,
    FlowRuntimeError,
    HookReturnError,
    InputError,
    UnknownFormat,
    UnknownHook,
    VersionConflict,
)
from .hooks import HookContext, HookKind, HookRegistry, HookResult, HookSpec
from .loader import CompiledFlow, check_paths, flow_files, load_flow, load_flows, parse_flow
from .runtime import Engine, Sink
from .script import ScriptResult, run_script
from .simulator import MediaReader, SimUser, Simulator
from .spec import FlowSpec, StateSpec
from .step import Step
from .store import Conversation, ConversationStore, Key, MemoryStore
from .types import (
    AnswerCallback,
    Button,
    Callback,
    Command,
    Contact,
    DeleteMessage,
    EditText,
    Event,
    InlineButton,
    Location,
    Outgoing,
    Payload,
    ReplyAction,
    SendDocument,
    SendText,
    Update,
    UpdateKind,
    VideoNote,
)

__all__ = [
    # running
    "Engine",
    "Sink",
    "Step",
    # updates in, replies out
    "Update",
    "UpdateKind",
    "Payload",
    "Contact",
    "Location",
    "VideoNote",
    "Command",
    "Callback",
    "Event",
    "Outgoing",
    "ReplyAction",
    "SendText",
    "EditText",
    "AnswerCallback",
    "DeleteMessage",
    "SendDocument",
    "Button",
    "InlineButton",
    # hooks
    "HookRegistry",
    "HookContext",
    "HookResult",
    "HookSpec",
    "HookKind",
    # flows
    "load_flows",
    "load_flow",
    "parse_flow",
    "check_paths",
    "flow_files",
    "CompiledFlow",
    "FlowSpec",
    "StateSpec",
    "FlowProblem",
    # conversations
    "ConversationStore",
    "MemoryStore",
    "Conversation",
    "Key",
    "is_transient",
    "TIMEOUT_EVENT",
    # offline
    "Simulator",
    "SimUser",
    "MediaReader",
    "run_script",
    "ScriptResult",
    "draw",
    "markdown",
    # logging
    "request_id_var",
    "RequestIdFilter",
    # errors
    "EngineError",
    "FlowLoadError",
    "FlowRuntimeError",
    "UnknownHook",
    "DuplicateHook",
    "HookReturnError",
    "VersionConflict",
    "InputError",
    "UnknownFormat",
]
