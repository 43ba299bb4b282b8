"""Each kind of flow error is reported as file:line with the state, and `check` exits 1."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.hooks import HookRegistry
from engine.loader import check_paths

from .flowkit import flow_text, write_flow

GOOD_STATES = """\
  first:
    ask: text
    prompt: "Name?"
    save: name
    next: bye
  bye:
    say: "Bye {name}"
    final: true
"""


def errors_for(tmp_path: Path, text: str, hooks: HookRegistry | None = None) -> list[str]:
    path = write_flow(tmp_path, text)
    return [str(e) for e in check_paths([path], hooks or HookRegistry())]


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_good_flow_has_no_errors(tmp_path: Path) -> None:
    assert errors_for(tmp_path, flow_text(GOOD_STATES)) == []


@pytest.mark.parametrize(
    "states, needle, message",
    [
        # unknown target
        (GOOD_STATES.replace("next: bye", "next: nowhere"), "  first:",
         "state 'first': next goes to unknown state 'nowhere'"),
        # unreachable state
        (GOOD_STATES + "  island:\n    say: 'x'\n    final: true\n", "  island:",
         "state 'island': unreachable state"),
        # non-final state with no way out
        (GOOD_STATES.replace("    final: true\n", ""), "  bye:",
         "state 'bye': non-final state has no way out"),
        # unknown hook
        (GOOD_STATES.replace("    next: bye\n", "    call: no_such_hook\n    on: {ok: bye}\n"),
         "  first:", "state 'first': unknown hook 'no_such_hook'"),
        # unknown placeholder
        (GOOD_STATES.replace("Bye {name}", "Bye {nmae}"), "  bye:",
         "state 'bye': unknown placeholder '{nmae}'"),
        # bad regex
        (GOOD_STATES.replace("    save: name\n", "    save: name\n    validate: {regex: '([a-z', error: 'no'}\n"),
         "  first:", "state 'first': bad regex '([a-z'"),
        # wrong type (schema)
        (GOOD_STATES.replace("ask: text", "ask: 42"), "ask: 42", "state 'first': ask: 42 is not one of"),
        (GOOD_STATES.replace("    final: true", "    final: maybe"), "final: maybe",
         "state 'bye': final: 'maybe' is not of type 'boolean'"),
    ],
    ids=["unknown_target", "unreachable", "no_way_out", "unknown_hook", "unknown_placeholder",
         "bad_regex", "wrong_type_enum", "wrong_type_bool"],
)
def test_error_kinds_name_file_line_and_state(tmp_path: Path, states: str, needle: str, message: str) -> None:
    text = flow_text(states)
    errors = errors_for(tmp_path, text)
    expected_prefix = f"{tmp_path / 't.yaml'}:{line_of(text, needle)}: "
    assert any(e.startswith(expected_prefix) and message in e for e in errors), errors


def test_duplicate_state_is_reported_at_the_second_definition(tmp_path: Path) -> None:
    text = flow_text(GOOD_STATES + "  bye:\n    say: 'again'\n    final: true\n")
    errors = errors_for(tmp_path, text)
    second = [i for i, line in enumerate(text.splitlines(), 1) if line == "  bye:"][1]
    assert f"{tmp_path / 't.yaml'}:{second}: state 'bye': duplicate state" in errors


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    text = flow_text(GOOD_STATES) + "  broken: [unclosed\n"
    errors = errors_for(tmp_path, text)
    assert len(errors) == 1 and "YAML syntax" in errors[0]
    assert errors[0].startswith(f"{tmp_path / 't.yaml'}:")


def test_hook_outcomes_are_checked_both_ways(tmp_path: Path) -> None:
    hooks = HookRegistry()
    hooks.register("login", lambda ctx: "ok", outcomes=("ok", "invalid"))
    states = GOOD_STATES.replace("    next: bye\n", "    call: login\n    on: {ok: bye, typo: bye}\n")
    errors = errors_for(tmp_path, flow_text(states), hooks)
    assert any("hook 'login' has no outcome 'typo'" in e for e in errors)
    assert any("outcome 'invalid' of hook 'login' is not handled" in e for e in errors)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    states = GOOD_STATES.replace("next: bye", "next: nowhere").replace("Bye {name}", "Bye {x}")
    errors = errors_for(tmp_path, flow_text(states))
    assert len(errors) >= 2


def test_missing_required_text_is_a_type_error(tmp_path: Path) -> None:
    text = flow_text(GOOD_STATES).replace('  ended: "ENDED"\n', "")
    errors = errors_for(tmp_path, text)
    assert any("'ended' is a required property" in e for e in errors), errors


def test_video_bytes_cannot_be_saved_persistently(tmp_path: Path) -> None:
    states = GOOD_STATES.replace("ask: text", "ask: video_note")
    errors = errors_for(tmp_path, flow_text(states))
    assert any("video bytes cannot be persisted" in e for e in errors)


def test_check_cli_exit_codes(tmp_path: Path, repo: Path) -> None:
    good = subprocess.run([sys.executable, "run.py", "check", "flows"], cwd=repo,
                          capture_output=True, text=True)
    assert good.returncode == 0, good.stdout + good.stderr
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    write_flow(bad_dir, flow_text(GOOD_STATES.replace("next: bye", "next: nowhere")))
    bad = subprocess.run([sys.executable, "run.py", "check", str(bad_dir)], cwd=repo,
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert "unknown state 'nowhere'" in bad.stdout
