"""Replay a simulation script: inputs and the replies they must produce.

Script (YAML)::

    lang: hi                         # optional: the app language of every user (default: none)
    users:
      asha: {id: 1001, first_name: Asha, bot: example}   # `lang: te` here: this user's own
    steps:
      - asha: /start                 # an input line, as typed in the interactive simulator
        expect: ["Hi Asha", "full name"]   # substrings that must appear, in this order
        within: 5                    # seconds to wait for late replies (default 0)
        state: ask_name              # optional: the conversation's state afterwards
      - asha: "/location 17.38 78.48"
        expect_not: ["Sorry"]
      - wait: 0.5                    # real seconds, to let timers or workers run
      - teacher: /tap Done
        capture: {otp: "Code: (\\d{6})"}   # remember a value from the replies ...
      - asha: $otp                   # ... and use it later as $otp (also in expect)
"""
from __future__ import annotations

import asyncio
import re
import string
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .simulator import InputError, SimUser, Simulator

STEP_KEYS = {"expect", "expect_not", "within", "state", "no_reply", "note", "capture"}


@dataclass
class ScriptResult:
    steps: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def users_of(script: dict[str, Any], default_bot: Optional[str] = None,
             language: Optional[str] = None) -> dict[str, SimUser]:
    """The script's users; a user's `lang` comes first, then ``language``, then the script's `lang`."""
    users = {}
    default_language = language or script.get("lang")
    for name, raw in (script.get("users") or {}).items():
        raw = raw or {}
        bot = raw.get("bot", default_bot)
        if not bot:
            raise InputError(f"user {name!r} needs a bot")
        lang = raw.get("lang", default_language)
        users[name] = SimUser(name, int(raw["id"]), bot, raw.get("first_name", name.title()),
                              raw.get("chat_id"), str(lang) if lang else None)
    return users


async def run_script(
    sim: Simulator,
    script: dict[str, Any],
    default_bot: Optional[str] = None,
    stop_on_failure: bool = True,
    echo: Optional[Callable[[str], None]] = None,
    variables: Optional[dict[str, str]] = None,
    language: Optional[str] = None,
) -> ScriptResult:
    """Play the script; ``language`` is the app language of users the script gives none."""
    users = users_of(script, default_bot, language)
    result = ScriptResult()
    values: dict[str, str] = dict(variables or {})

    def sub(text: Any) -> str:
        return string.Template(str(text)).safe_substitute(values)

    for number, step in enumerate(script.get("steps") or [], start=1):
        result.steps = number
        if "wait" in step:
            await asyncio.sleep(float(step["wait"]))
            continue
        actors = [k for k in step if k not in STEP_KEYS]
        if len(actors) != 1 or actors[0] not in users:
            result.failures.append(f"step {number}: name exactly one known user ({sorted(users)})")
            break
        user = users[actors[0]]
        line = sub(step[actors[0]])
        before = len(sim.received(user))
        try:
            await sim.send(user, line)
        except InputError as exc:
            result.failures.append(f"step {number} ({user.name}: {line}): {exc}")
            if stop_on_failure:
                break
            continue
        problems = []
        expect = [sub(e) for e in step.get("expect") or []]
        missing = await sim.wait_for(user, expect, before, float(step.get("within", 0)))
        if missing:
            problems.append(f"missing {missing!r}")
        got = sim.texts(user, before)
        for name, pattern in (step.get("capture") or {}).items():
            found = re.search(pattern, "\n".join(got))
            if found:
                values[name] = found.group(1)
            else:
                problems.append(f"nothing to capture as {name!r} with {pattern!r}")
        for unwanted in step.get("expect_not") or []:
            if any(sub(unwanted) in text for text in got):
                problems.append(f"unexpected {unwanted!r}")
        if step.get("no_reply") and got:
            problems.append("expected no reply")
        if "state" in step:
            state = await sim.state_of(user)
            if state != step["state"]:
                problems.append(f"state is {state!r}, expected {step['state']!r}")
        if problems:
            shown = " / ".join(t.replace("\n", " ")[:120] for t in got) or "(no reply)"
            result.failures.append(
                f"step {number} ({user.name}: {line}): {'; '.join(problems)}; got: {shown}"
            )
            if stop_on_failure:
                break
    return result
