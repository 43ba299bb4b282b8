"""The hook registry of the whole app: every hook any shipped flow may call."""
from __future__ import annotations

from engine import HookRegistry
from integrations.hooks import example as example_hooks
from integrations.hooks import student, teacher


def build_registry() -> HookRegistry:
    registry = HookRegistry()
    example_hooks.register(registry)
    teacher.register(registry)
    student.register(registry)
    return registry
