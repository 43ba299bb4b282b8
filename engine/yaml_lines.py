"""YAML loading that remembers line numbers, so flow errors can say `file:line`."""
from __future__ import annotations

from typing import Any

import yaml


class LineDict(dict):
    """A dict that knows the line of itself and of each of its keys (1-based)."""

    line: int = 0
    key_lines: dict[str, int]
    duplicates: list[tuple[Any, int]]


class LineList(list):
    """A list that knows its line and the line of each item (1-based)."""

    line: int = 0
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    result.duplicates = []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, bool) and isinstance(key_node, yaml.ScalarNode):
            key = key_node.value  # YAML 1.1 reads a bare `on:` key as True; flows mean "on"
        if key in result:
            # Duplicate keys are almost always a copy-paste mistake (e.g. two states of one name).
            result.duplicates.append((key, key_node.start_mark.line + 1))
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml_with_lines(text: str) -> Any:
    return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass


def line_of(node: Any, key: Any = None, default: int = 0) -> int:
    """Line of ``node[key]`` (or of the node itself) if known."""
    if key is not None and isinstance(node, LineDict):
        return node.key_lines.get(key, node.line or default)
    return getattr(node, "line", default) or default


def key_lines(node: Any, prefix: str = "") -> dict[str, int]:
    """Line of every key below ``node`` by dotted path (``on.ok.goto``; list items by index), so a
    problem can point at the key at fault rather than at the start of its state."""
    out: dict[str, int] = {}
    if isinstance(node, LineDict):
        for key, value in node.items():
            path = f"{prefix}{key}"
            out[path] = node.key_lines.get(key, node.line)
            out.update(key_lines(value, path + "."))
    elif isinstance(node, LineList):
        for index, value in enumerate(node):
            path = f"{prefix}{index}"
            out[path] = node.item_lines[index] if index < len(node.item_lines) else node.line
            out.update(key_lines(value, path + "."))
    return out


def duplicates_of(node: Any) -> list[tuple[Any, int]]:
    if isinstance(node, LineDict):
        return list(node.duplicates)
    return []
