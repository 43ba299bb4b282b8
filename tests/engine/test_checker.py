"""Flow problems: one cause, one message, at the line of the key at fault, with a suggestion;
and no command (check, draw, simulate) prints a traceback for a broken flow."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.hooks import HookRegistry
from engine.loader import check_paths
from integrations.hooks.registry import build_registry

from .flowkit import flow_text, write_flow

REPO = Path(__file__).resolve().parents[2]

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


def line_of(text: str, needle: str, nth: int = 0) -> int:
    return [i for i, line in enumerate(text.splitlines(), 1) if needle in line][nth]


def at(tmp_path: Path, text: str, needle: str) -> str:
    """The `file:line: ` prefix of a problem on the line containing ``needle``."""
    return f"{tmp_path / 't.yaml'}:{line_of(text, needle)}: "


def only(errors: list[str]) -> str:
    assert len(errors) == 1, errors
    return errors[0]


def test_good_flow_has_no_errors(tmp_path: Path) -> None:
    assert errors_for(tmp_path, flow_text(GOOD_STATES)) == []


def test_shipped_flows_have_no_errors() -> None:
    assert [str(e) for e in check_paths(REPO / "flows", build_registry())] == []


@pytest.mark.parametrize(
    "states, needle, message",
    [
        (GOOD_STATES.replace("next: bye", "next: nowhere"), "next: nowhere",
         "state 'first': next goes to unknown state 'nowhere'"),
        (GOOD_STATES + "  island:\n    say: 'x'\n    final: true\n", "  island:",
         "state 'island': unreachable state"),
        (GOOD_STATES.replace("    final: true\n", ""), "  bye:",
         "state 'bye': non-final state has no way out"),
        (GOOD_STATES.replace("    next: bye\n", "    call: no_such_hook\n    on: {ok: bye}\n"),
         "call: no_such_hook", "state 'first': unknown hook 'no_such_hook'"),
        (GOOD_STATES.replace("Bye {name}", "Bye {nmae}"), "Bye {nmae}",
         "state 'bye': unknown placeholder '{nmae}' (did you mean '{name}'?)"),
        (GOOD_STATES.replace("    save: name\n", "    save: name\n    validate:\n      error: 'no'\n      regex: '([a-z'\n"),
         "regex:", "state 'first': bad regex '([a-z': unterminated character set at position 1"),
        (GOOD_STATES.replace("ask: text", "ask: txt"), "ask: txt",
         "state 'first': ask: 'txt' is not one of text, number, contact, location, video_note, choice,"
         " multichoice (did you mean 'text'?)"),
        (GOOD_STATES.replace("    final: true", "    final: maybe"), "final: maybe",
         "state 'bye': final: expected true or false, got 'maybe'"),
        (GOOD_STATES.replace("    save: name\n", "    save: name\n    timeout:\n      after: 0\n      goto: bye\n"),
         "after: 0", "state 'first': timeout.after: must be more than 0, got 0"),
    ],
    ids=["unknown_target", "unreachable", "no_way_out", "unknown_hook", "unknown_placeholder",
         "bad_regex", "wrong_enum", "wrong_type_bool", "too_small"],
)
def test_each_problem_is_alone_at_the_line_of_its_key(tmp_path: Path, states: str, needle: str,
                                                      message: str) -> None:
    text = flow_text(states)
    assert only(errors_for(tmp_path, text)) == at(tmp_path, text, needle) + message


# ------------------------------------------------------------------ one cause, one message
def broken_copy(tmp_path: Path, name: str, old: str, new: str) -> tuple[Path, str]:
    text = (REPO / "flows" / f"{name}.yaml").read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    text = text.replace(old, new)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path, text


def test_a_mistyped_target_is_one_problem_with_the_closest_state(tmp_path: Path) -> None:
    # Before: 10 problems, 7 of them "unreachable state" for the states behind the typo.
    path, text = broken_copy(tmp_path, "student", "goto: ask_code}\n      not_own",
                             "goto: ask_cod}\n      not_own")
    errors = [str(e) for e in check_paths(path, build_registry())]
    assert only(errors) == (f"{path}:{line_of(text, 'goto: ask_cod}')}: state 'ask_contact': "
                            "outcome 'ok' goes to unknown state 'ask_cod' (did you mean 'ask_code'?)")


def test_a_target_like_no_state_is_one_problem_too(tmp_path: Path) -> None:
    path, _ = broken_copy(tmp_path, "student", "goto: ask_code}\n      not_own",
                          "goto: zzzz}\n      not_own")
    errors = [str(e) for e in check_paths(path, build_registry())]
    assert "unknown state 'zzzz'" in only(errors) and "did you mean" not in errors[0]


def test_an_unknown_hook_is_one_problem_with_the_closest_hook(tmp_path: Path) -> None:
    # Before: 9 problems, 8 of them "unknown placeholder" for the data the hook provides.
    path, text = broken_copy(tmp_path, "student", "call: check_code", "call: chek_code")
    errors = [str(e) for e in check_paths(path, build_registry())]
    assert only(errors) == (f"{path}:{line_of(text, 'call: chek_code')}: state 'ask_code': "
                            "unknown hook 'chek_code' (did you mean 'check_code'?)")


def test_a_hook_like_no_hook_is_one_problem_too(tmp_path: Path) -> None:
    path, _ = broken_copy(tmp_path, "student", "call: check_code", "call: qqqq")
    errors = [str(e) for e in check_paths(path, build_registry())]
    assert "unknown hook 'qqqq'" in only(errors)


def test_a_mistyped_outcome_is_not_also_unhandled(tmp_path: Path) -> None:
    hooks = HookRegistry()
    hooks.register("login", lambda ctx: "ok", outcomes=("ok", "invalid"))
    states = GOOD_STATES.replace("    next: bye\n", "    call: login\n    on:\n      okk: bye\n      invalid: first\n")
    text = flow_text(states)
    assert only(errors_for(tmp_path, text, hooks)) == at(tmp_path, text, "okk: bye") + (
        "state 'first': hook 'login' has no outcome 'okk' (did you mean 'ok'?) (it has: ok, invalid)")


def test_hook_outcomes_are_checked_both_ways(tmp_path: Path) -> None:
    hooks = HookRegistry()
    hooks.register("login", lambda ctx: "ok", outcomes=("ok", "invalid"))
    states = GOOD_STATES.replace("    next: bye\n", "    call: login\n    on: {ok: bye, typo: bye}\n")
    errors = errors_for(tmp_path, flow_text(states), hooks)
    assert any("hook 'login' has no outcome 'typo'" in e for e in errors)
    assert any("outcome 'invalid' of hook 'login' is not handled" in e for e in errors)


def test_independent_problems_are_all_reported_at_once(tmp_path: Path) -> None:
    states = GOOD_STATES.replace("next: bye", "next: nowhere").replace("    final: true", "    final: maybe")
    errors = errors_for(tmp_path, flow_text(states))
    assert len(errors) == 1  # a schema error stops the semantic checks: fix types first
    states = GOOD_STATES.replace("next: bye", "next: nowhere").replace("Bye {name}", "Bye {x}")
    assert len(errors_for(tmp_path, flow_text(states))) == 2


# ------------------------------------------------------------------ schema errors
def test_an_unknown_key_names_the_closest_valid_one(tmp_path: Path) -> None:
    text = flow_text(GOOD_STATES.replace('prompt: "Name?"', 'promt: "Name?"'))
    assert only(errors_for(tmp_path, text)) == at(tmp_path, text, "promt:") + (
        "state 'first': unknown key 'promt' (did you mean 'prompt'?)")


def test_an_unknown_key_in_a_handler_names_the_closest_valid_one(tmp_path: Path) -> None:
    text = flow_text(GOOD_STATES, extra="events:\n  news:\n    say: 'hi'\n    gotoo: bye\n")
    assert only(errors_for(tmp_path, text)) == at(tmp_path, text, "gotoo:") + (
        "unknown key 'gotoo' in events.news (did you mean 'goto'?)")


def test_a_mistyped_top_level_key_is_not_also_a_missing_one(tmp_path: Path) -> None:
    text = flow_text(GOOD_STATES).replace("states:\n", "stats:\n")
    assert only(errors_for(tmp_path, text)) == at(tmp_path, text, "stats:") + (
        "unknown key 'stats' (did you mean 'states'?)")


def test_a_mistyped_required_text_points_at_the_typo(tmp_path: Path) -> None:
    text = flow_text(GOOD_STATES).replace('  ended: "ENDED"', '  endd: "ENDED"')
    assert only(errors_for(tmp_path, text)) == at(tmp_path, text, "endd:") + (
        "texts: missing required key 'ended' ('endd' looks like a typo of it)")


def test_a_missing_required_text_is_reported(tmp_path: Path) -> None:
    text = flow_text(GOOD_STATES).replace('  ended: "ENDED"\n', "")
    assert only(errors_for(tmp_path, text)) == at(tmp_path, text, "texts:") + (
        "texts: missing required key 'ended'")


def test_a_bad_state_name_says_how_to_write_one(tmp_path: Path) -> None:
    text = flow_text(GOOD_STATES.replace("next: bye", "next: Bye"))
    assert only(errors_for(tmp_path, text)) == at(tmp_path, text, "next: Bye") + (
        "state 'first': next: 'Bye' is not a valid state name: use lower_snake_case")


def test_duplicate_state_is_reported_at_the_second_definition(tmp_path: Path) -> None:
    text = flow_text(GOOD_STATES + "  bye:\n    say: 'again'\n    final: true\n")
    second = line_of(text, "  bye:", nth=1)
    assert only(errors_for(tmp_path, text)) == f"{tmp_path / 't.yaml'}:{second}: state 'bye': duplicate state"


def test_duplicate_key_inside_a_state_is_reported(tmp_path: Path) -> None:
    text = flow_text(GOOD_STATES.replace('    say: "Bye {name}"\n', '    say: "Bye {name}"\n    say: "Again"\n'))
    assert only(errors_for(tmp_path, text)) == at(tmp_path, text, 'say: "Again"') + (
        "state 'bye': duplicate key 'say'")


def test_video_bytes_cannot_be_saved_persistently(tmp_path: Path) -> None:
    text = flow_text(GOOD_STATES.replace("ask: text", "ask: video_note"))
    assert only(errors_for(tmp_path, text)) == at(tmp_path, text, "save: name") + (
        "state 'first': video bytes cannot be persisted: save under a name starting with '_' (save: _name)")


def test_the_timeout_event_name_is_reserved(tmp_path: Path) -> None:
    text = flow_text(GOOD_STATES, extra="events:\n  timeout: {say: 'late'}\n")
    assert only(errors_for(tmp_path, text)) == at(tmp_path, text, "  timeout:") + (
        "event 'timeout' is reserved: use a state's 'timeout:' key, or name the event otherwise")


# ------------------------------------------------------------------ YAML syntax
@pytest.mark.parametrize(
    "old, new, needle, message",
    [
        ('say: "Bye {name}"', "say: Note: bye", "Note: bye",
         'YAML syntax: a text that contains \': \' must be in quotes: say: "Note: bye"'),
        ('    prompt: "Name?"', '\tprompt: "Name?"', '\tprompt', "YAML syntax: a tab cannot indent YAML: use spaces"),
        ('say: "Bye {name}"', 'say: "Bye {name}', 'say: "Bye {name}',
         "YAML syntax: a quote opened on this line is never closed"),
        ('say: "Bye {name}"', "say: {name} is gone", "{name} is gone",
         "YAML syntax: text after a closing quote or '}': quote the whole text"),
        ("    save: name\n", "    save: name\n    suggestions: [a, b\n", "suggestions:",
         "YAML syntax: a '[' list opened on this line is not closed"),
    ],
    ids=["colon_in_text", "tab", "unclosed_quote", "brace_text", "unclosed_list"],
)
def test_yaml_syntax_errors_say_how_to_fix_them(tmp_path: Path, old: str, new: str, needle: str,
                                                message: str) -> None:
    text = flow_text(GOOD_STATES).replace(old, new)
    error = only(errors_for(tmp_path, text))
    assert error.startswith(at(tmp_path, text, needle) + message), error


# ------------------------------------------------------------------ commands never trace back
def run_cli(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run.py", *args], cwd=repo, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120)


def test_check_cli_exit_codes(tmp_path: Path, repo: Path) -> None:
    good = run_cli(repo, "check", "flows")
    assert good.returncode == 0, good.stdout + good.stderr
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    write_flow(bad_dir, flow_text(GOOD_STATES.replace("next: bye", "next: nowhere")))
    bad = run_cli(repo, "check", str(bad_dir))
    assert bad.returncode == 1
    assert "unknown state 'nowhere'" in bad.stdout


@pytest.mark.parametrize("command", [["check"], ["draw"], ["draw", "--format", "markdown"], ["simulate"]])
@pytest.mark.parametrize("breakage", ["target", "yaml", "missing_file"])
def test_no_command_prints_a_traceback_for_a_broken_flow(tmp_path: Path, repo: Path,
                                                         command: list[str], breakage: str) -> None:
    source = (repo / "flows" / "example.yaml").read_text(encoding="utf-8")
    path = tmp_path / "example.yaml"
    if breakage == "target":
        path.write_text(source.replace("next: ask_name", "next: ask_nme", 1), encoding="utf-8")
        expected = (f"{path}:{line_of(source, 'next: ask_name')}: state 'welcome': "
                    "next goes to unknown state 'ask_nme' (did you mean 'ask_name'?)")
    elif breakage == "yaml":
        path.write_text(source.replace("next: ask_name", "next: ask_name: now", 1), encoding="utf-8")
        expected = (f"{path}:{line_of(source, 'next: ask_name')}: YAML syntax: a text that contains"
                    " ': ' must be in quotes")
    else:
        expected = f"{path}:1: cannot read the file"
    run = run_cli(repo, command[0], str(path), *command[1:])
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "Traceback" not in output
    assert expected in output, output


# ------------------------------------------------------------------ the built-in back
BACK_BLOCK = 'back:\n  unavailable: "NO-BACK"\n'
TWO_QUESTIONS = GOOD_STATES.replace("    next: bye\n", "    next: second\n") + """\
  second:
    ask: text
    prompt: "Again?"
    save: again
    back: true
    next: bye
"""


def test_back_is_valid_between_two_questions(tmp_path: Path) -> None:
    assert errors_for(tmp_path, flow_text(TWO_QUESTIONS, extra=BACK_BLOCK)) == []


@pytest.mark.parametrize(
    "states, extra, needle, message",
    [
        (TWO_QUESTIONS, "", "back: true",
         "state 'second': back: true needs the flow-wide 'back:' block (with its 'unavailable' text)"),
        (GOOD_STATES.replace("    final: true", "    final: true\n    back: true"), BACK_BLOCK, "back: true",
         "state 'bye': back: true applies to questions only (states with 'ask')"),
        (GOOD_STATES.replace("    save: name\n", "    save: name\n    back: true\n"), BACK_BLOCK, "back: true",
         "state 'first': back: true, but no question's answer leads here, so there is nothing to go back to"),
        (GOOD_STATES, BACK_BLOCK, "back:", "'back:' is set but no state has back: true"),
        (TWO_QUESTIONS, BACK_BLOCK + "events:\n  x: {say: 'x'}\n", None, None),
    ],
    ids=["no_flow_block", "not_a_question", "nothing_before", "unused_block", "ok_with_events"],
)
def test_back_problems(tmp_path: Path, states: str, extra: str, needle: str | None,
                       message: str | None) -> None:
    text = flow_text(states, extra=extra)
    errors = errors_for(tmp_path, text)
    if message is None:
        assert errors == []
    else:
        assert only(errors) == at(tmp_path, text, needle) + message


def test_a_back_command_clashes_with_the_built_in_one(tmp_path: Path) -> None:
    text = flow_text(TWO_QUESTIONS, extra=BACK_BLOCK).replace(
        '  help: {say: "HELP"}\n', '  help: {say: "HELP"}\n  back: {say: "mine"}\n')
    assert only(errors_for(tmp_path, text)) == at(tmp_path, text, 'back: {say: "mine"}') + (
        "/back is built in when 'back:' is set: remove this command")
