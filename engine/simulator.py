"""In-process transport: play a user (or many) against an engine, offline.

Used three ways: `run.py simulate` (interactive), `run.py simulate --script` (replay with
expected replies), and the tests, which share exactly this harness.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import shlex
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .constants import TICK, TIMEOUT_EVENT
from .errors import InputError
from .runtime import Engine
from .types import (
    AnswerCallback,
    Callback,
    Command,
    Contact,
    DeleteMessage,
    EditText,
    EventData,
    InlineButton,
    Location,
    Outgoing,
    ReplyAction,
    SendDocument,
    SendText,
    Update,
    VideoNote,
)


@dataclass
class SimUser:
    name: str
    user_id: int
    bot: str
    first_name: str = ""
    chat_id: Optional[int] = None
    language: Optional[str] = None  # the app language their updates carry ("hi"), as Telegram's language_code

    @property
    def chat(self) -> int:
        return self.chat_id if self.chat_id is not None else self.user_id


@dataclass
class Received:
    message_id: int
    action: ReplyAction
    at: float = field(default_factory=time.monotonic)

    @property
    def text(self) -> str:
        """The transcript line: the text plus its buttons, so scripts can expect either."""
        return describe(self.action)


def describe(action: ReplyAction) -> str:
    """One line for a transcript."""
    if isinstance(action, SendText):
        extra = ""
        if action.keyboard:
            extra = "  [" + " | ".join(b.text + (f" ({b.request})" if b.request else "")
                                       for row in action.keyboard for b in row) + "]"
        if action.inline:
            extra = "  {" + " | ".join(b.text for row in action.inline for b in row) + "}"
        return action.text + extra
    if isinstance(action, EditText):
        buttons = " | ".join(b.text for row in action.inline or [] for b in row)
        return f"(edited) {action.text}" + (f"  {{{buttons}}}" if buttons else "")
    if isinstance(action, AnswerCallback):
        return f"(toast) {action.text}" if action.text else ""
    if isinstance(action, SendDocument):
        return f"[document {action.filename}, {len(action.data)} bytes] {action.caption}"
    if isinstance(action, DeleteMessage):
        return f"[deleted your message {action.message_id}]"
    return repr(action)


MediaReader = Callable[[str], VideoNote]
"""Turns a path typed after `/video` into a VideoNote. The engine reads no files and decodes no
video itself: the app passes one in (integrations.presence.media_reader.read_video_note)."""


class Simulator:
    """A fake Telegram for one engine: numbered messages, buttons you can tap, transcripts."""

    def __init__(
        self,
        engine: Engine,
        echo: Optional[Callable[[str], None]] = None,
        media_reader: Optional[MediaReader] = None,
    ) -> None:
        self.engine = engine
        self.echo = echo
        self.media_reader = media_reader
        self.inbox: dict[tuple[str, int], list[Received]] = {}
        self._message_ids = itertools.count(1)
        self._arrived = asyncio.Condition()
        engine.add_sink(self._receive)

    # ------------------------------------------------------------------ receiving
    async def _receive(self, out: Outgoing) -> None:
        box = self.inbox.setdefault((out.bot, out.chat_id), [])
        for action in out.actions:
            box.append(Received(next(self._message_ids), action))
            if self.echo:
                line = describe(action)
                if line:
                    self.echo(f"  {out.bot}→{out.chat_id}: {line}")
        async with self._arrived:
            self._arrived.notify_all()

    def received(self, user: SimUser) -> list[Received]:
        return self.inbox.get((user.bot, user.chat), [])

    def texts(self, user: SimUser, since: int = 0) -> list[str]:
        return [r.text for r in self.received(user)[since:] if r.text]

    async def wait_for(self, user: SimUser, needles: list[str], since: int, within: float) -> list[str]:
        """Wait until every needle appears, in order, among replies after index ``since``.

        Returns the needles still missing when ``within`` seconds have passed."""
        deadline = time.monotonic() + within
        while True:
            missing = _missing_in_order(self.texts(user, since), needles)
            remaining = deadline - time.monotonic()
            if not missing or remaining <= 0:
                return missing
            async with self._arrived:
                try:
                    await asyncio.wait_for(self._arrived.wait(), timeout=remaining)
                except asyncio.TimeoutError:
                    pass

    # ------------------------------------------------------------------ sending
    def _update(self, user: SimUser, kind: str, payload: Any, **kw: Any) -> Update:
        return Update(user.bot, user.chat, user.user_id, kind, payload,  # type: ignore[arg-type]
                      first_name=user.first_name, message_id=next(self._message_ids),
                      language_code=user.language, **kw)

    def parse(self, user: SimUser, line: str) -> Optional[Update]:
        """Turn one input line into an Update (None for simulator-only directives)."""
        forwarded = False
        if line.startswith("/forward "):
            forwarded, line = True, line[len("/forward "):]
        if not line.startswith("/"):
            return self._update(user, "text", line, forwarded=forwarded)
        word, _, rest = line[1:].partition(" ")
        word = word.lower()
        args = shlex.split(rest) if rest else []
        try:
            if word == "location" or word == "live":
                lat, lon = float(args[0]), float(args[1])
                acc = float(args[2]) if len(args) > 2 else None
                loc = Location(lat, lon, acc, 3600 if word == "live" else None)
                return self._update(user, "location", loc, forwarded=forwarded)
            if word == "contact":
                owner = int(args[1]) if len(args) > 1 else user.user_id
                contact = Contact(args[0], owner, user.first_name)
                return self._update(user, "contact", contact, forwarded=forwarded)
            if word == "video":
                if self.media_reader is None:
                    raise InputError("this simulator was given no media reader, so /video is off")
                note = self.media_reader(args[0])
                return self._update(user, "video_note", note, forwarded=forwarded)
            if word in ("photo", "sticker", "voice", "document", "audio"):
                return self._update(user, "other", word, forwarded=forwarded)
        except (IndexError, ValueError, OSError) as exc:
            raise InputError(f"cannot read {line!r}: {exc}") from exc
        if word == "tap":
            return self._tap(user, rest.strip())
        return self._update(user, "command", Command(word.split("@")[0], rest.strip()))

    def _tap(self, user: SimUser, label: str) -> Update:
        wanted = label.casefold()
        for item in reversed(self.received(user)):
            action = item.action
            rows = getattr(action, "inline", None) or []
            for row in rows:
                for button in row:
                    if _label(button).casefold() == wanted:
                        message_id = action.message_id if isinstance(action, EditText) else item.message_id
                        return Update(user.bot, user.chat, user.user_id, "callback",
                                      Callback(button.data, f"cb{next(self._message_ids)}"),
                                      message_id=message_id, first_name=user.first_name,
                                      language_code=user.language)
            for row in getattr(action, "keyboard", None) or []:
                for button in row:
                    if button.text.casefold() == wanted and button.request is None:
                        return self._update(user, "text", button.text)
        raise InputError(f"no button {label!r} on screen")

    async def send(self, user: SimUser, line: str) -> list[str]:
        """Send one input line; return the reply texts it produced right away."""
        if self.echo:
            self.echo(f"{user.name}: {line}")
        if line.strip() == "/timeout":
            return await self.fire_timeout(user)
        if line.startswith("/event "):
            name, _, raw = line[len("/event "):].partition(" ")
            data = json.loads(raw) if raw.strip() else {}
            return await self.event(user, name, data)
        update = self.parse(user, line)
        before = len(self.received(user))
        await self.engine.submit(update)  # type: ignore[arg-type]
        return self.texts(user, before)

    async def event(self, user: SimUser, name: str, data: Optional[EventData] = None) -> list[str]:
        before = len(self.received(user))
        await self.engine.post_event(user.bot, user.chat, name, data or {}, user.user_id)
        return self.texts(user, before)

    async def fire_timeout(self, user: SimUser) -> list[str]:
        """Fire the chat's pending state timeout now instead of waiting for it."""
        conv = await self.engine.store.get((user.bot, user.chat))
        if conv is None or conv.deadline is None:
            raise InputError("no timeout is pending in this chat")
        return await self.event(user, TIMEOUT_EVENT, {"epoch": conv.epoch})

    async def state_of(self, user: SimUser) -> Optional[str]:
        conv = await self.engine.store.get((user.bot, user.chat))
        return conv.state if conv else None


def _label(button: InlineButton) -> str:
    return button.text[len(TICK):] if button.text.startswith(TICK) else button.text


def _missing_in_order(texts: list[str], needles: list[str]) -> list[str]:
    joined = "\n".join(texts)
    pos = 0
    for i, needle in enumerate(needles):
        found = joined.find(needle, pos)
        if found < 0:
            return needles[i:]
        pos = found + len(needle)
    return []
