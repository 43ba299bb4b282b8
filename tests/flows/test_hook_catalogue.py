"""Issue 15.7: `run.py hooks` and the generated hook reference in docs/flows.md."""
from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

from integrations.app import catalogue
from integrations.app.cli import main
from integrations.hooks.registry import build_registry

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "flows.md"


def test_the_hook_reference_in_the_docs_is_up_to_date() -> None:
    generated = catalogue.markdown(build_registry())
    assert catalogue.current_block(DOC.read_text(encoding="utf-8")) == generated, (
        "docs/flows.md's hook reference is out of date: run `python run.py hooks --write docs/flows.md`")


def test_every_hook_is_in_the_reference_with_its_outcomes_and_uses() -> None:
    registry = build_registry()
    text = catalogue.markdown(registry)
    for spec in registry:
        assert f"#### `{spec.name}` ({spec.kind})" in text
    entries = {e.spec.name: e for e in catalogue.catalogue(registry)}
    assert [(u.flow, u.state) for u in entries["check_code"].uses] == [("student.yaml", "ask_code")]
    assert {(u.flow, u.how) for u in entries["teacher_batches"].uses} == {("teacher.yaml", "options_from")}
    assert entries["valid_duration"].uses[0].how == "validate"
    assert entries["identify_by_student_id"].uses[0].answer == "typed text"


def test_hooks_command_prints_the_catalogue(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["hooks"]) == 0
    out = capsys.readouterr().out
    assert "check_code (call): Limits and lockouts first, then a constant-time compare" in out
    assert "    reads:    student_id" in out and "    used in:  student.yaml:ask_code" in out
    assert main(["hooks", "--markdown"]) == 0
    assert capsys.readouterr().out.startswith(catalogue.START)


def test_splice_replaces_only_the_generated_block() -> None:
    doc = f"intro\n{catalogue.START}\nold\n{catalogue.END}\noutro\n"
    assert catalogue.splice(doc, f"{catalogue.START}\nnew\n{catalogue.END}\n") == (
        f"intro\n{catalogue.START}\nnew\n{catalogue.END}\noutro\n")


def _data_keys_read(fn) -> set[str]:  # type: ignore[no-untyped-def]
    """Keys a hook's own body reads from the conversation: ctx.data.get("k") and ctx.data["k"]."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(fn))))
    keys = set()
    for node in ast.walk(tree):
        target, key = None, None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and node.args and isinstance(node.args[0], ast.Constant):
            target, key = node.func.value, node.args[0].value
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            target, key = node.value, node.slice.value
        if isinstance(target, ast.Attribute) and target.attr == "data" and isinstance(key, str):
            keys.add(key)
    return keys


def test_declared_reads_cover_what_each_hook_reads() -> None:
    registry = build_registry()
    assert _data_keys_read(registry.get("open_session").fn) >= {"batches", "subject"}  # the scan sees reads
    assert _data_keys_read(registry.get("check_code").fn) == {"student_id"}  # through the audit wrapper
    for spec in registry:
        missing = _data_keys_read(spec.fn) - set(spec.reads)
        assert not missing, f"hook {spec.name} reads {sorted(missing)} but does not declare them (reads=...)"
