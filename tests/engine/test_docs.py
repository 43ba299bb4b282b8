"""The flow documentation tells the truth: the files it points at exist, and its examples call
hooks that are registered, with outcomes those hooks can return."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from integrations.hooks.registry import build_registry

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "flows.md"
SOURCES = [DOC, *sorted((REPO / "flows").glob("*.yaml"))]


@pytest.mark.parametrize("source", SOURCES, ids=[s.name for s in SOURCES])
def test_every_flow_file_mentioned_exists(source: Path) -> None:
    mentioned = set(re.findall(r"\bflows/[\w/]+\.yaml\b", source.read_text(encoding="utf-8")))
    assert mentioned, "nothing to check: the pattern no longer matches"
    assert sorted(m for m in mentioned if not (REPO / m).is_file()) == []


def yaml_examples() -> list[dict]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return [b for b in (yaml.safe_load(block) for block in blocks) if isinstance(b, dict)]


def states_in(example: dict) -> list[tuple[str, dict]]:
    states = example.get("states") if isinstance(example.get("states"), dict) else example
    return [(name, s) for name, s in states.items() if isinstance(s, dict)]


def test_documented_hooks_and_outcomes_are_real() -> None:
    registry = build_registry()
    checked = 0
    for example in yaml_examples():
        for name, state in states_in(example):
            hook = state.get("call")
            if not hook:
                continue
            assert hook in registry, f"docs/flows.md: state {name!r} calls unknown hook {hook!r}"
            outcomes = registry.get(hook).outcomes
            assert sorted(set(state.get("on") or {}) - set(outcomes)) == [], (name, outcomes)
            checked += 1
    assert checked >= 1
