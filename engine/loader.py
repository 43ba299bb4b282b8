"""Read flow files: YAML (with lines) → JSON Schema → FlowSpec → semantic checks → machine."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import yaml
from statemachine.exceptions import InvalidDefinition

from .checker import check_flow
from .compiler import Stepper, compile_machine
from .errors import FlowLoadError, FlowProblem, errors_of
from .explain import duplicate_problems, schema_problems, yaml_problem
from .hooks import HookRegistry
from .i18n import language_tag, translations_of
from .spec import FlowSpec, build_spec
from .yaml_lines import load_yaml_with_lines

log = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).with_name("flow.schema.json")


@lru_cache(maxsize=1)
def flow_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@dataclass
class CompiledFlow:
    spec: FlowSpec  # in the flow's default language
    machine: type
    localized: dict[str, FlowSpec] = field(default_factory=dict)  # the other languages (engine/i18n.py)
    stepper: Stepper = field(init=False)

    def __post_init__(self) -> None:
        self.stepper = Stepper(self.machine)

    @property
    def name(self) -> str:
        return self.spec.name

    def spec_in(self, language: Optional[str]) -> FlowSpec:
        """The flow with its texts in ``language`` (the default language's where none)."""
        return self.localized.get(language or "", self.spec)

    def language_for(self, language_code: Optional[str]) -> str:
        """The flow's language for a user's app language (an IETF tag), else its default."""
        tag = language_tag(language_code)
        return tag if tag in self.spec.languages else self.spec.default_language  # type: ignore[return-value]


def parse_flow(text: str, path: str, hooks: HookRegistry) -> tuple[Optional[CompiledFlow], list[FlowProblem]]:
    """Parse and check one flow; return it compiled when it has no errors.

    The problems may include warnings (texts not translated yet) even when the flow compiles."""
    try:
        raw = load_yaml_with_lines(text)
    except yaml.YAMLError as exc:
        return None, [yaml_problem(exc, text, path)]
    if not isinstance(raw, dict):
        return None, [FlowProblem(path, 1, "a flow file must be a mapping (flow:, bot:, states: ...)",
                                  kind="wrong_type")]
    errors = list(duplicate_problems(raw, path))
    errors += schema_problems(raw, flow_schema(), path)
    if errors:
        return None, errors
    spec = build_spec(raw, path)
    errors = check_flow(spec, hooks)
    if errors:
        return None, errors
    localized, problems = translations_of(spec, hooks)
    if errors_of(problems):
        return None, problems
    try:
        machine = compile_machine(spec)
    except InvalidDefinition as exc:
        return None, [FlowProblem(path, 1, f"state machine: {exc}", kind="machine")]
    return CompiledFlow(spec, machine, localized), problems


def _parse_file(path: Path, hooks: HookRegistry) -> tuple[Optional[CompiledFlow], list[FlowProblem]]:
    """A missing or unreadable file is one more problem to report, not a traceback."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return None, [FlowProblem(str(path), 1, f"cannot read the file: {reason}", kind="file")]
    return parse_flow(text, str(path), hooks)


def load_flow(path: Path | str, hooks: HookRegistry) -> CompiledFlow:
    """One flow file, checked and compiled; :class:`FlowLoadError` lists every problem."""
    flow, problems = _parse_file(Path(path), hooks)
    if errors_of(problems) or flow is None:
        raise FlowLoadError(errors_of(problems))
    _log_warnings(problems)
    return flow


def _log_warnings(problems: list[FlowProblem]) -> None:
    """One line per flow file: the bot still runs; `run.py check` lists each warning."""
    by_file: dict[str, int] = {}
    for problem in problems:
        if problem.warning:
            by_file[problem.path] = by_file.get(problem.path, 0) + 1
    for path, count in by_file.items():
        log.warning("%s: %d warning(s), e.g. texts not translated yet (they fall back to the default"
                    " language); run `python run.py check` to list them", path, count)


def flow_files(target: Path | str) -> list[Path]:
    target = Path(target)
    if target.is_dir():
        return sorted(p for p in target.glob("*.y*ml") if not p.name.startswith("_"))
    return [target]


Targets = Union[Path, str, Iterable[Union[Path, str]]]


def _targets(targets: Targets) -> list[Path]:
    if isinstance(targets, (str, Path)):
        return [Path(targets)]
    return [Path(t) for t in targets]


def _parse_all(targets: Targets, hooks: HookRegistry) -> tuple[dict[str, CompiledFlow], list[FlowProblem]]:
    flows: dict[str, CompiledFlow] = {}
    errors: list[FlowProblem] = []
    for target in _targets(targets):
        for file in flow_files(target):
            flow, found = _parse_file(file, hooks)
            errors += found
            if flow is None:
                continue
            other = flows.get(flow.spec.bot)
            if other is not None and other.spec.path != flow.spec.path:
                errors.append(FlowProblem(str(file), 1, f"bot '{flow.spec.bot}' is already served by {other.spec.path}", kind="duplicate"))
            flows.setdefault(flow.spec.bot, flow)
    return flows, errors


def check_paths(targets: Targets, hooks: HookRegistry) -> list[FlowProblem]:
    """Every problem of every flow file under the given paths (files or folders): the errors,
    and the warnings (``FlowProblem.warning``) that do not stop a flow from loading."""
    return _parse_all(targets, hooks)[1]


def load_flows(targets: Targets, hooks: HookRegistry) -> dict[str, CompiledFlow]:
    """All flows in the given files or folders, keyed by the bot that serves them (warnings are
    logged; errors raise :class:`FlowLoadError`)."""
    flows, problems = _parse_all(targets, hooks)
    if errors_of(problems):
        raise FlowLoadError(errors_of(problems))
    _log_warnings(problems)
    return flows
