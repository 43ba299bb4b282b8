"""What one step says, in as few Telegram messages as possible (pure functions, no I/O).

A flow step often says something and then asks the next question ("Code accepted." then
"Now share your location" with its button): two ``SendText`` actions, two messages, two of the
chat's ~1 message/s. Telegram lets one message carry text of up to 4096 characters and one
markup, so consecutive texts are joined into one message when the markup allows it:

* a text that carries an **inline keyboard** ends a message (text after it would sit between
  the question and its buttons);
* the joined message carries the **last** reply markup of its parts (a reply keyboard, or its
  removal, is the chat's input state, and the last one said wins), or the inline keyboard of
  its last part;
* an inline keyboard cannot be joined after a reply keyboard or its removal (one message holds
  one markup), and nothing is joined past 4096 characters;
* edits, deletions and documents keep their place and are never merged.

Flows, the engine and the simulator are unchanged: this is how the Telegram transport renders.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

from engine import AnswerCallback, EditText, ReplyAction, SendText
from integrations.telegram.constants import JOIN, MAX_TEXT


def is_plain(action: ReplyAction) -> bool:
    """A text with no markup at all (what may be appended to an earlier message)."""
    return (isinstance(action, SendText) and not action.keyboard and not action.inline
            and not action.remove_keyboard)


def join_text(first: str, second: str, limit: int = MAX_TEXT) -> Optional[str]:
    """``first`` and ``second`` as one text, or ``None`` if that would exceed ``limit``."""
    if not first:
        return second
    if not second:
        return first
    joined = first + JOIN + second
    return joined if len(joined) <= limit else None


def merge(first: ReplyAction, second: SendText, limit: int = MAX_TEXT) -> Optional[ReplyAction]:
    """``first`` followed by ``second`` as one message, or ``None`` if they must stay apart.

    ``first`` may be a :class:`SendText` or (for a follow-up appended to a pending edit) an
    :class:`EditText` without buttons.
    """
    if isinstance(first, EditText):
        if first.inline or not is_plain(second):
            return None
        text = join_text(first.text, second.text, limit)
        return None if text is None else dataclasses.replace(first, text=text)
    if not isinstance(first, SendText) or first.inline:
        return None
    if second.inline and (first.keyboard or first.remove_keyboard):
        return None
    text = join_text(first.text, second.text, limit)
    if text is None:
        return None
    if second.inline or second.keyboard or second.remove_keyboard:
        return dataclasses.replace(second, text=text)
    return SendText(text, keyboard=first.keyboard, remove_keyboard=first.remove_keyboard)


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split a long text into messages, at a line break when one is near the limit."""
    parts: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", limit // 2, limit)
        cut = cut if cut > 0 else limit
        parts.append(text[:cut])
        text = text[cut:].lstrip("\n")
    parts.append(text)
    return parts


def _split(action: ReplyAction, limit: int) -> list[ReplyAction]:
    """A text over the limit as several messages; its markup goes on the last one."""
    if not isinstance(action, SendText) or len(action.text) <= limit:
        return [action]
    parts = split_text(action.text, limit)
    return [SendText(p) for p in parts[:-1]] + [dataclasses.replace(action, text=parts[-1])]


def coalesce(actions: Sequence[ReplyAction], limit: int = MAX_TEXT) -> list[ReplyAction]:
    """The messages to send for one step's actions, in order (callback answers are left out)."""
    return [part for action in _join(actions, limit) for part in _split(action, limit)]


def _join(actions: Sequence[ReplyAction], limit: int) -> list[ReplyAction]:
    out: list[ReplyAction] = []
    for action in actions:
        if isinstance(action, AnswerCallback):
            continue
        if isinstance(action, SendText) and out:
            merged = merge(out[-1], action, limit) if isinstance(out[-1], SendText) else None
            if merged is not None:
                out[-1] = merged
                continue
        out.append(action)
    return out


def plain_text(actions: Sequence[ReplyAction], limit: int = MAX_TEXT) -> Optional[str]:
    """The joined text if every action is a plain text (a candidate follow-up), else ``None``."""
    if not actions or not all(is_plain(a) for a in actions):
        return None
    text = ""
    for action in actions:
        joined = join_text(text, action.text, limit)  # type: ignore[union-attr]
        if joined is None:
            return None
        text = joined
    return text
