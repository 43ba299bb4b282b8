"""Turn flow texts and options into reply actions.

Placeholders are filled with plain `{name}` lookups only: no attribute or index access, so a
user's answer can never reach into Python objects through a template.
"""
from __future__ import annotations

import logging
import re
import string
from typing import Any, Mapping, Optional, Sequence

from .constants import BACK_CHOICE, DEFAULT_DONE_LABEL, DONE_CHOICE, MAX_TEXT, TICK
from .spec import StateSpec
from .types import Button, InlineButton, SendText

log = logging.getLogger(__name__)


class _SafeFormatter(string.Formatter):
    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if not field_name.isidentifier():
            raise KeyError(field_name)
        return self.get_value(field_name, args, kwargs), field_name

    def get_value(self, key: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        value = kwargs.get(key)
        if value is None:
            # Checked flows only name keys that *can* be set; one not set yet reads as empty.
            log.debug("placeholder {%s} has no value yet", key)
            return ""
        return value


_FORMATTER = _SafeFormatter()


def fill(text: str, values: Mapping[str, Any]) -> str:
    """Fill `{placeholders}`; an unset one reads as empty, a malformed text is sent as written."""
    try:
        result = _FORMATTER.vformat(text, (), values)
    except (KeyError, ValueError, IndexError) as exc:
        log.warning("placeholder problem %s in text %r", exc, text[:60])
        result = text
    return result[:MAX_TEXT]


def callback_data(epoch: int, choice: str) -> str:
    """Button data ties a tap to one state entry: an old or forged button is refused."""
    return f"{epoch}|{choice}"


_CALLBACK = re.compile(r"([0-9]{1,12})\|([a-z0-9]{1,16})")  # what callback_data writes, nothing else


def parse_callback(data: str) -> tuple[Optional[int], str]:
    """(epoch, choice) of data this engine wrote; (None, "") for anything else (forged data such
    as "²|o0": ``str.isdigit`` accepts "²" but ``int`` does not)."""
    match = _CALLBACK.fullmatch(data) if isinstance(data, str) else None
    if match is None:
        return None, ""
    return int(match.group(1)), match.group(2)


def inline_options(
    options: Sequence[tuple[str, str]],
    epoch: int,
    selected: Sequence[str] = (),
    done_label: Optional[str] = None,
    back_label: Optional[str] = None,
) -> list[list[InlineButton]]:
    rows = [
        [InlineButton((TICK if opt_id in selected else "") + label, callback_data(epoch, f"o{i}"))]
        for i, (opt_id, label) in enumerate(options)
    ]
    if done_label:
        rows.append([InlineButton(done_label, callback_data(epoch, DONE_CHOICE))])
    if back_label:
        rows.append([InlineButton(back_label, callback_data(epoch, BACK_CHOICE))])
    return rows


def prompt_action(
    state: StateSpec,
    values: Mapping[str, Any],
    epoch: int,
    options: Sequence[tuple[str, str]] = (),
    selected: Sequence[str] = (),
    back_label: Optional[str] = None,
) -> SendText:
    """The message that asks for a state's input, with the right keyboard (and a Back button
    when ``back_label`` is given: inline under options, else a reply-keyboard row)."""
    text = fill(state.prompt or "", values)
    if state.ask == "choice":
        return SendText(text, inline=inline_options(options, epoch, back_label=back_label))
    if state.ask == "multichoice":
        done = fill(state.done_label or DEFAULT_DONE_LABEL, values)
        return SendText(text, inline=inline_options(options, epoch, selected, done, back_label))
    rows: list[list[Button]] = []
    if state.ask in ("contact", "location") and state.button:
        rows.append([Button(fill(state.button, values), request=state.ask)])  # type: ignore[arg-type]
    elif state.suggestions:
        # Filled suggestions may repeat (a configured default that is also a fixed choice): once each.
        rows.append([Button(label) for label in dict.fromkeys(fill(s, values) for s in state.suggestions)])
    if back_label:
        rows.append([Button(back_label)])
    if rows:
        return SendText(text, keyboard=rows)
    return SendText(text, remove_keyboard=state.ask in ("text", "number", "video_note"))
