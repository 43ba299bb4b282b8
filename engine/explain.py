"""YAML and JSON Schema errors in a flow author's words: what is wrong, at the line of the key at
fault, and how to fix it (quote the text, the closest valid key), instead of the parser's own."""
from __future__ import annotations

import re
from typing import Any, Iterator, Optional

import jsonschema
import yaml

from .checker import closest, did_you_mean
from .constants import MAX_PROBLEM_LENGTH, STATE_NAME_PATTERN
from .errors import FlowProblem
from .yaml_lines import LineDict, LineList, line_of

TYPE_NAMES = {
    "boolean": "true or false",
    "string": "a text",
    "number": "a number",
    "integer": "a whole number",
    "object": "a mapping (key: value lines)",
    "array": "a list",
    "null": "nothing",
}


# ---------------------------------------------------------------------------------- YAML
def yaml_problem(exc: yaml.YAMLError, text: str, path: str) -> FlowProblem:
    """One problem for a YAML syntax error, with the usual fix."""
    mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    problem = str(getattr(exc, "problem", None) or exc)
    line = mark.line + 1 if mark else 1
    source = text.splitlines()[mark.line] if mark and mark.line < len(text.splitlines()) else ""
    column = mark.column if mark else 0
    opened = context_mark.line + 1 if context_mark else line

    if problem == "mapping values are not allowed here":
        if re.search(r":(\s|$)", source[:column]):
            key, _, value = source.strip().partition(": ")
            quoted = value.replace("\\", "\\\\").replace('"', '\\"')
            message = f"a text that contains ': ' must be in quotes: {key}: \"{quoted}\""
        else:
            message = "this line is indented deeper than the key above it (or the line above misses its ':')"
    elif "'\\t'" in problem:
        message = "a tab cannot indent YAML: use spaces"
    elif "end of stream" in problem and "quoted scalar" in str(getattr(exc, "context", "")):
        line, message = opened, "a quote opened on this line is never closed"
    elif problem.startswith("expected ',' or ']'"):
        line, message = opened, "a '[' list opened on this line is not closed (quote a text that starts with '[')"
    elif problem.startswith("expected ',' or '}'"):
        line, message = opened, "a '{' opened on this line is not closed (quote a text that starts with '{')"
    elif problem.startswith("expected <block end>, but found '<scalar>'"):
        message = ("text after a closing quote or '}': quote the whole text"
                   " (a text that starts with {, [, \" or ' must be in quotes)")
    elif problem.startswith("expected <block end>"):
        message = "this line's indentation does not line up with the keys above it"
    elif "could not find expected ':'" in problem:
        message = "a line is missing its ':' (key: value), or a quote above is not closed"
    else:
        message = problem
    return FlowProblem(path, line, f"YAML syntax: {message}", kind="yaml")


def duplicate_problems(node: Any, path: str, trail: tuple[str, ...] = ()) -> Iterator[FlowProblem]:
    """Every key given twice in one mapping (the second silently replaces the first)."""
    if isinstance(node, LineDict):
        state = trail[1] if len(trail) >= 2 and trail[0] == "states" else None
        for key, line in node.duplicates:
            if trail == ("states",):
                yield FlowProblem(path, line, "duplicate state", str(key), "duplicate")
            else:
                yield FlowProblem(path, line, f"duplicate key '{key}'", state, "duplicate")
        for key, value in node.items():
            yield from duplicate_problems(value, path, (*trail, str(key)))
    elif isinstance(node, LineList):
        for index, value in enumerate(node):
            yield from duplicate_problems(value, path, (*trail, str(index)))


# ---------------------------------------------------------------------------------- schema
def schema_problems(raw: Any, schema: dict[str, Any], path: str) -> list[FlowProblem]:
    validator = jsonschema.Draft202012Validator(schema)
    out: list[FlowProblem] = []
    for error in sorted(validator.iter_errors(raw), key=lambda e: list(map(str, e.absolute_path))):
        for problem in _explain(error, raw, path):
            if problem not in out:
                out.append(problem)
    return out


def _locate(raw: Any, parts: list[Any]) -> tuple[int, Optional[str], str]:
    """(line of the last key, state name if inside a state, the key path to name)."""
    node, line = raw, line_of(raw, default=1)
    for part in parts:
        line = line_of(node, part, line)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
    if len(parts) >= 2 and parts[0] == "states":
        return line, str(parts[1]), ".".join(map(str, parts[2:]))
    return line, None, ".".join(map(str, parts))


def _explain(error: jsonschema.ValidationError, raw: Any, path: str) -> Iterator[FlowProblem]:
    parts = list(error.absolute_path)
    line, state, where = _locate(raw, parts)
    prefix = f"{where}: " if where else ""
    kind, instance, value = error.validator, error.instance, error.validator_value

    def problem(message: str, at: int = line) -> FlowProblem:
        if len(message) > MAX_PROBLEM_LENGTH:
            message = message[:MAX_PROBLEM_LENGTH] + "…"
        return FlowProblem(path, at, message, state, "wrong_type")

    if kind == "additionalProperties" and isinstance(instance, dict):
        allowed = list(error.schema.get("properties", {}))
        for key in instance:
            if key not in allowed:
                inside = f" in {where}" if where else ""
                yield problem(f"unknown key '{key}'{inside}{did_you_mean(closest(str(key), allowed))}",
                              line_of(instance, key, line))
    elif kind == "required":
        match = re.match(r"'(.+)' is a required property", error.message)
        missing = match.group(1) if match else error.message
        known = set(error.schema.get("properties", {})) | set(value)
        typo = next((k for k in instance if k not in known and closest(str(k), [missing])), None)
        if typo is None:
            yield problem(f"{where or 'the flow'}: missing required key '{missing}'")
        elif error.schema.get("additionalProperties") is not False:
            # nothing else reports the mistyped key (texts and commands take any name)
            yield problem(f"{where or 'the flow'}: missing required key '{missing}'"
                          f" ('{typo}' looks like a typo of it)", line_of(instance, typo, line))
        # else: the unknown-key problem names the typo and suggests this key: one cause, one message
    elif kind == "oneOf":
        yield from _explain_handler(error, raw, path, problem, prefix)
    elif kind == "type":
        wanted = value if isinstance(value, list) else [value]
        names = " or ".join(TYPE_NAMES.get(t, t) for t in wanted)
        yield problem(f"{prefix}expected {names}, got {_show(instance)}")
    elif kind == "enum":
        choices = ", ".join(map(str, value))
        yield problem(f"{prefix}{_show(instance)} is not one of {choices}"
                      f"{did_you_mean(closest(str(instance), map(str, value)))}")
    elif kind == "pattern":
        yield problem(f"{prefix}{_show(instance)} {_pattern_hint(where, value)}")
    elif kind == "minLength":
        yield problem(f"{prefix}must not be empty")
    elif kind == "exclusiveMinimum":
        yield problem(f"{prefix}must be more than {value}, got {_show(instance)}")
    elif kind == "minimum":
        yield problem(f"{prefix}must be at least {value}, got {_show(instance)}")
    elif kind in ("minItems", "minProperties"):
        yield problem(f"{prefix}needs at least {value} item(s)")
    else:
        yield problem(f"{prefix}{error.message}")


def _explain_handler(error: jsonschema.ValidationError, raw: Any, path: str, problem: Any,
                     prefix: str) -> Iterator[FlowProblem]:
    """A handler is a state name or a mapping: explain the branch the author meant."""
    instance = error.instance
    if isinstance(instance, str):
        yield problem(f"{prefix}{_show(instance)} {_pattern_hint('goto', STATE_NAME_PATTERN)}")
        return
    if isinstance(instance, dict):
        meant = [e for e in error.context or () if e.relative_schema_path and e.relative_schema_path[0] == 1]
        if meant:
            for sub in meant:
                yield from _explain(sub, raw, path)
            return
    yield problem(f"{prefix}must be a state name or a mapping of say/goto, got {_show(instance)}")


def _pattern_hint(where: str, pattern: str) -> str:
    last = where.rsplit(".", 1)[-1]
    if last == "save":
        return "is not a valid data key: use lower_snake_case (a leading '_' keeps it for one step only)"
    if pattern == STATE_NAME_PATTERN and last in ("flow", "bot"):
        return f"is not a valid {last} name: use lower_snake_case"
    if pattern == STATE_NAME_PATTERN:
        return "is not a valid state name: use lower_snake_case"
    return f"does not match {pattern}"


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:60] + "…"
