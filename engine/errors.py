"""Every exception the engine raises derives from :class:`EngineError`, so an app can catch the
engine's failures in one place. Secondary bases (KeyError, ValueError ...) stay where callers
already catch those."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence


class EngineError(Exception):
    """Base of every engine exception."""


@dataclass(frozen=True)
class FlowProblem:
    """One problem in a flow file, printed as `file:line: state 'x': message`.

    A *warning* (``warning=True``, printed `file:line: warning: ...`) does not stop the flow from
    loading: a text not translated yet falls back to the default language's.
    """

    path: str
    line: int
    message: str
    state: Optional[str] = None
    kind: str = "error"
    warning: bool = False

    def __str__(self) -> str:
        severity = "warning: " if self.warning else ""
        where = f"state '{self.state}': " if self.state else ""
        return f"{self.path}:{self.line}: {severity}{where}{self.message}"


def errors_of(problems: Sequence[FlowProblem]) -> list[FlowProblem]:
    """The problems that stop a flow from loading (not the warnings)."""
    return [p for p in problems if not p.warning]


class FlowLoadError(EngineError):
    """A flow file could not be loaded; ``problems`` says why, each at its line."""

    def __init__(self, problems: Sequence[FlowProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class FlowRuntimeError(EngineError, RuntimeError):
    """A flow did something its checks should have caught (e.g. an unhandled outcome)."""


class UnknownHook(EngineError, KeyError):
    """No hook of that name is registered."""


class DuplicateHook(EngineError, ValueError):
    """A hook name registered twice: the second would silently replace the first."""


class HookReturnError(EngineError, TypeError):
    """A hook returned something other than a HookResult, an outcome name, a list or None."""


class VersionConflict(EngineError):
    """Someone else saved this conversation since we read it."""


class InputError(EngineError, ValueError):
    """A simulator input line (or script) that cannot be understood."""


class UnknownFormat(EngineError, ValueError):
    """A diagram format the engine cannot draw."""
