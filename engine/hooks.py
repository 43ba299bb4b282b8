"""Named hooks that flows call: the only way a flow reaches the outside world.

A hook declares the outcomes it can return and the data keys it provides, so `run.py check`
can tell a flow author about an `on:` branch that can never happen or a `{placeholder}` that
nothing fills, before any user sees it.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Literal, Optional, Union

from .constants import DEFAULT_LANGUAGE
from .errors import DuplicateHook, HookReturnError, UnknownHook
from .types import Update

HookKind = Literal["call", "validate", "options"]


@dataclass
class HookContext:
    """What a hook sees: the update, the conversation data and the app's services, and the
    conversation's language (for dates and numbers it formats, or labels it gives)."""

    update: Update
    data: dict[str, Any]
    flow: str
    state: str
    services: Any = None
    answer: Any = None
    language: str = DEFAULT_LANGUAGE

    @property
    def request_id(self) -> str:
        return self.update.request_id


@dataclass
class HookResult:
    outcome: str = "ok"
    data: dict[str, Any] = field(default_factory=dict)


HookReturn = Union[HookResult, str, list, None]
HookFn = Callable[[HookContext], Union[HookReturn, Awaitable[HookReturn]]]


@dataclass(frozen=True)
class HookSpec:
    name: str
    fn: HookFn
    kind: HookKind = "call"
    outcomes: tuple[str, ...] = ("ok",)
    provides: tuple[str, ...] = ()
    description: str = ""
    reads: tuple[str, ...] = ()  # conversation data keys the hook reads (documentation: `run.py hooks`)


class HookRegistry:
    """Hooks by name. One registry serves every flow of an app."""

    def __init__(self) -> None:
        self._hooks: dict[str, HookSpec] = {}

    def register(
        self,
        name: str,
        fn: HookFn,
        *,
        kind: HookKind = "call",
        outcomes: tuple[str, ...] = ("ok",),
        provides: tuple[str, ...] = (),
        reads: tuple[str, ...] = (),
    ) -> HookFn:
        if name in self._hooks:
            raise DuplicateHook(f"hook {name!r} is registered twice")
        if kind == "validate" and "invalid" not in outcomes:
            outcomes = tuple(outcomes) + ("invalid",)
        doc = inspect.getdoc(fn) or ""
        self._hooks[name] = HookSpec(name, fn, kind, tuple(outcomes), tuple(provides), doc, tuple(reads))
        return fn

    def hook(
        self,
        name: Optional[str] = None,
        *,
        kind: HookKind = "call",
        outcomes: tuple[str, ...] = ("ok",),
        provides: tuple[str, ...] = (),
        reads: tuple[str, ...] = (),
    ) -> Callable[[HookFn], HookFn]:
        """Decorator form of :meth:`register`."""

        def decorate(fn: HookFn) -> HookFn:
            return self.register(
                name or fn.__name__, fn, kind=kind, outcomes=outcomes, provides=provides, reads=reads
            )

        return decorate

    def merge(self, other: "HookRegistry") -> "HookRegistry":
        for spec in other:
            self.register(
                spec.name, spec.fn, kind=spec.kind, outcomes=spec.outcomes, provides=spec.provides,
                reads=spec.reads,
            )
        return self

    def get(self, name: str) -> HookSpec:
        try:
            return self._hooks[name]
        except KeyError:
            raise UnknownHook(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._hooks

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._hooks.values())

    async def call(self, name: str, ctx: HookContext) -> HookResult:
        """Run a hook (sync or async) and normalise what it returns."""
        spec = self.get(name)
        result = spec.fn(ctx)
        if inspect.isawaitable(result):
            result = await result
        if result is None:
            return HookResult()
        if isinstance(result, str):
            return HookResult(outcome=result)
        if isinstance(result, list):  # options hooks return a list of (id, label)
            return HookResult(data={"options": result})
        if isinstance(result, HookResult):
            return result
        raise HookReturnError(f"hook {name!r} returned {type(result).__name__}, not a HookResult")
