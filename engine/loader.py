"""Read flow files: YAML (with lines) → JSON Schema → FlowSpec → semantic checks → machine."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import yaml
from statemachine.exceptions import InvalidDefinition

from .checker import check_flow
from .compiler import Stepper, compile_machine
from .errors import FlowLoadError, FlowProblem
from .explain import duplicate_problems, schema_problems, yaml_problem
from .hooks import HookRegistry
from .spec import FlowSpec, build_spec
from .yaml_lines import load_yaml_with_lines

SCHEMA_PATH = Path(__file__).with_name("flow.schema.json")


@lru_cache(maxsize=1)
def flow_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@dataclass
class CompiledFlow:
    spec: FlowSpec
    machine: type
    stepper: Stepper = field(init=False)

    def __post_init__(self) -> None:
        self.stepper = Stepper(self.machine)

    @property
    def name(self) -> str:
        return self.spec.name


def parse_flow(text: str, path: str, hooks: HookRegistry) -> tuple[Optional[CompiledFlow], list[FlowProblem]]:
    """Parse and check one flow; return it compiled when it has no errors."""
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
    try:
        machine = compile_machine(spec)
    except InvalidDefinition as exc:
        return None, [FlowProblem(path, 1, f"state machine: {exc}", kind="machine")]
    return CompiledFlow(spec, machine), []


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
    if problems or flow is None:
        raise FlowLoadError(problems)
    return flow


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
            flow, errs = _parse_file(file, hooks)
            errors += errs
            if flow is None:
                continue
            other = flows.get(flow.spec.bot)
            if other is not None and other.spec.path != flow.spec.path:
                errors.append(FlowProblem(str(file), 1, f"bot '{flow.spec.bot}' is already served by {other.spec.path}", kind="duplicate"))
            flows.setdefault(flow.spec.bot, flow)
    return flows, errors


def check_paths(targets: Targets, hooks: HookRegistry) -> list[FlowProblem]:
    """Every error of every flow file under the given paths (files or folders)."""
    return _parse_all(targets, hooks)[1]


def load_flows(targets: Targets, hooks: HookRegistry) -> dict[str, CompiledFlow]:
    """All flows in the given files or folders, keyed by the bot that serves them."""
    flows, errors = _parse_all(targets, hooks)
    if errors:
        raise FlowLoadError(errors)
    return flows
