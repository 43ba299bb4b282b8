"""Typed view of a flow file: what the compiler and the interpreter read.

The YAML is first checked against ``flow.schema.json``; these classes then give the rest of the
engine attribute access and defaults instead of dict lookups scattered around.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from .constants import DEFAULT_LANGUAGE, FORWARD_SENSITIVE, LANGUAGE_TEXTS
from .yaml_lines import key_lines

@dataclass
class Document:
    data: str
    filename: str
    caption: str = ""


@dataclass
class Handler:
    """Reaction to a command, event or hook outcome."""

    say: Optional[str] = None
    goto: Optional[str] = None
    reset: bool = False
    document: Optional[Document] = None
    provides: tuple[str, ...] = ()
    line: int = 0


@dataclass
class Option:
    id: str
    label: str
    goto: Optional[str] = None


@dataclass
class Validation:
    regex: Optional[str] = None
    min: Optional[float] = None
    max: Optional[float] = None
    min_length: Optional[int] = None
    max_length: Optional[int] = None
    hook: Optional[str] = None
    error: Optional[str] = None


@dataclass
class Timeout:
    after: float
    goto: str
    say: Optional[str] = None


@dataclass
class Retry:
    max: int
    goto: str
    say: Optional[str] = None


@dataclass
class StateSpec:
    name: str
    line: int = 0
    say: Optional[str] = None
    document: Optional[Document] = None
    ask: Optional[str] = None
    prompt: Optional[str] = None
    hint: Optional[str] = None
    button: Optional[str] = None
    suggestions: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    options_from: Optional[str] = None
    done_label: Optional[str] = None
    min_selected: int = 1
    allow_forwarded: Optional[bool] = None
    delete_input: bool = False
    validate: Optional[Validation] = None
    save: Optional[str] = None
    call: Optional[str] = None
    on: dict[str, Handler] = field(default_factory=dict)
    next: Optional[str] = None
    timeout: Optional[Timeout] = None
    retry: Optional[Retry] = None
    commands: dict[str, Handler] = field(default_factory=dict)
    events: dict[str, Handler] = field(default_factory=dict)
    final: bool = False
    back: bool = False  # the user may go back from this question to the previous one
    lines: dict[str, int] = field(default_factory=dict)  # dotted key path -> line

    def at(self, *paths: str) -> int:
        """Line of the first of these keys the state has (else the state's own line)."""
        return next((self.lines[p] for p in paths if p in self.lines), self.line)

    @property
    def waits(self) -> bool:
        """A state that waits for the user (or an event) instead of moving on by itself."""
        return bool(self.ask) or self.final or not (self.call or self.next)

    @property
    def forwarded_ok(self) -> bool:
        if self.allow_forwarded is not None:
            return self.allow_forwarded
        return self.ask not in FORWARD_SENSITIVE


@dataclass
class Back:
    """The flow-wide part of the built-in back: its Back button and its refusal text."""

    unavailable: str  # sent when there is no previous question to go back to
    button: Optional[str] = None  # label of a Back button under prompts that allow going back


@dataclass
class FlowSpec:
    name: str
    bot: str
    start: str
    path: str
    texts: dict[str, str]
    commands: dict[str, Handler]
    events: dict[str, Handler]
    states: dict[str, StateSpec]
    data: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    back: Optional[Back] = None
    lines: dict[str, int] = field(default_factory=dict)  # dotted key path -> line (whole file)
    default_language: str = DEFAULT_LANGUAGE  # the language the file's own texts are written in
    languages: tuple[str, ...] = (DEFAULT_LANGUAGE,)  # every language the flow speaks
    language: str = DEFAULT_LANGUAGE  # the language of this spec's texts (see engine/i18n.py)

    def at(self, *paths: str) -> int:
        """Line of the first of these keys the file has (else 1)."""
        return next((self.lines[p] for p in paths if p in self.lines), 1)

    @property
    def multilingual(self) -> bool:
        """More than one language: /language is built in and catalogs are read."""
        return len(self.languages) > 1


def _handler(raw: Any, line: int = 0) -> Handler:
    if isinstance(raw, str):
        return Handler(goto=raw, line=line)
    doc = raw.get("document")
    return Handler(
        say=raw.get("say"),
        goto=raw.get("goto"),
        reset=bool(raw.get("reset", False)),
        document=Document(**doc) if doc else None,
        provides=tuple(raw.get("provides", ())),
        line=line or getattr(raw, "line", 0),
    )


def _handlers(raw: Any) -> dict[str, Handler]:
    if not raw:
        return {}
    lines = getattr(raw, "key_lines", {})
    return {str(k): _handler(v, lines.get(k, 0)) for k, v in raw.items()}


def _state(name: str, raw: dict, line: int) -> StateSpec:
    validate = raw.get("validate")
    timeout = raw.get("timeout")
    retry = raw.get("retry")
    doc = raw.get("document")
    return StateSpec(
        name=name,
        line=line,
        say=raw.get("say"),
        document=Document(**doc) if doc else None,
        ask=raw.get("ask"),
        prompt=raw.get("prompt"),
        hint=raw.get("hint"),
        button=raw.get("button"),
        suggestions=tuple(str(s) for s in raw.get("suggestions", ())),
        options=tuple(
            Option(id=str(o["id"]), label=o["label"], goto=o.get("goto"))
            for o in raw.get("options", ())
        ),
        options_from=raw.get("options_from"),
        done_label=raw.get("done_label"),
        min_selected=int(raw.get("min_selected", 1)),
        allow_forwarded=raw.get("allow_forwarded"),
        delete_input=bool(raw.get("delete_input", False)),
        validate=Validation(**validate) if validate else None,
        save=raw.get("save"),
        call=raw.get("call"),
        on=_handlers(raw.get("on")),
        next=raw.get("next"),
        timeout=Timeout(**timeout) if timeout else None,
        retry=Retry(**retry) if retry else None,
        commands=_handlers(raw.get("commands")),
        events=_handlers(raw.get("events")),
        final=bool(raw.get("final", False)),
        back=bool(raw.get("back", False)),
        lines=key_lines(raw),
    )


def build_spec(raw: dict, path: str) -> FlowSpec:
    """Turn a schema-valid flow document into a :class:`FlowSpec`."""
    state_lines = getattr(raw["states"], "key_lines", {})
    default_language = raw.get("default_language", DEFAULT_LANGUAGE)
    languages = tuple(raw.get("languages") or (default_language,))
    texts = dict(raw["texts"])
    if len(languages) > 1:
        for key, text in LANGUAGE_TEXTS.items():
            texts.setdefault(key, text)
    return FlowSpec(
        name=raw["flow"],
        bot=raw["bot"],
        start=raw["start"],
        path=path,
        texts=texts,
        commands=_handlers(raw["commands"]),
        events=_handlers(raw.get("events")),
        states={
            str(n): _state(str(n), s, state_lines.get(n, 0)) for n, s in raw["states"].items()
        },
        data=dict(raw.get("data") or {}),
        description=raw.get("description", ""),
        back=Back(**raw["back"]) if raw.get("back") else None,
        lines=key_lines(raw),
        default_language=default_language,
        languages=languages,
        language=default_language,
    )
