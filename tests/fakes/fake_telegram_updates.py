"""A fake of Telegram's raw updates API for one bot: ``updates.getState`` and ``getDifference``.

The account has a ``pts`` sequence; every message in a private chat (a user's, or the bot's own
outgoing one) takes the next pts. :meth:`FakeUpdatesApi.answer` answers the two raw functions
the way Telegram does, with the library's real raw types serialised and read back: an empty
difference when the client is up to date, ``DifferenceSlice`` (with an intermediate state)
when more than ``slice_size`` messages are missing, ``Difference`` for the last part, and
``DifferenceTooLong`` when the client's pts is older than what the server keeps.
"""
from __future__ import annotations

import io
from typing import Any, Optional

from pyrogram import raw
from pyrogram.raw.core import TLObject

NOW = 1_700_000_000


def wire(obj: Any) -> Any:
    """Serialise and parse back, so the object is exactly what the network would give."""
    return TLObject.read(io.BytesIO(obj.write()))


class FakeUpdatesApi:
    """One bot account's update sequence (see the module docstring)."""

    def __init__(self, bot_id: int, *, pts: int = 100, qts: int = 0, date: int = NOW,
                 slice_size: int = 100, keep: int = 10_000) -> None:
        self.bot_id = bot_id
        self.pts, self.qts, self.date = pts, qts, date
        self.slice_size, self.keep = slice_size, keep
        self.log: list[tuple[int, raw.types.Message]] = []
        self.users: dict[int, raw.types.User] = {}
        self.calls: list[Any] = []
        self._msg_id = 1

    def _next(self, message: raw.types.Message) -> tuple[int, raw.types.Message]:
        self.pts += 1
        self.date += 1
        self.log.append((self.pts, message))
        return self.pts, message

    def incoming(self, user_id: int, text: str = "", *, media: Any = None, first_name: str = "User") -> tuple[int, Any]:
        """A user's message arrives (while the bot may be down); returns (pts, message)."""
        self.users[user_id] = raw.types.User(id=user_id, access_hash=1, first_name=first_name)
        message = raw.types.Message(id=self._msg_id, peer_id=raw.types.PeerUser(user_id=user_id),
                                    from_id=raw.types.PeerUser(user_id=user_id), date=self.date + 1,
                                    message=text, media=media)
        self._msg_id += 1
        return self._next(message)

    def outgoing(self, user_id: int, text: str) -> tuple[int, Any]:
        """The bot's own message (its sends take pts too, and come back in a difference)."""
        message = raw.types.Message(id=self._msg_id, peer_id=raw.types.PeerUser(user_id=user_id), out=True,
                                    from_id=raw.types.PeerUser(user_id=self.bot_id), date=self.date + 1,
                                    message=text)
        self._msg_id += 1
        return self._next(message)

    def live_update(self, pts: int, message: Any) -> tuple[Any, dict, dict]:
        """The push a connected client would get for a logged message: (update, users, chats)."""
        sender = message.from_id.user_id if message.from_id else None
        users = {sender: wire(self.users[sender])} if sender in self.users else {}
        return wire(raw.types.UpdateNewMessage(message=message, pts=pts, pts_count=1)), users, {}

    def state(self) -> raw.types.updates.State:
        return raw.types.updates.State(pts=self.pts, qts=self.qts, date=self.date, seq=0, unread_count=0)

    def answer(self, query: Any) -> Optional[Any]:
        """The answer to a raw updates function, or None if ``query`` is not one."""
        if isinstance(query, raw.functions.updates.GetState):
            self.calls.append(query)
            return wire(self.state())
        if not isinstance(query, raw.functions.updates.GetDifference):
            return None
        self.calls.append(query)
        if query.pts >= self.pts:
            return wire(raw.types.updates.DifferenceEmpty(date=self.date, seq=0))
        if query.pts < self.pts - self.keep:
            return wire(raw.types.updates.DifferenceTooLong(pts=self.pts))
        missing = [(p, m) for p, m in self.log if p > query.pts]
        part = missing[: self.slice_size]
        users = list(self.users.values()) + [raw.types.User(id=self.bot_id, access_hash=1, first_name="bot", bot=True,
                                                            bot_info_version=1)]
        fields = dict(new_messages=[m for _, m in part], new_encrypted_messages=[], other_updates=[], chats=[],
                      users=users)
        if len(missing) > len(part):
            last = part[-1][1]
            intermediate = raw.types.updates.State(pts=part[-1][0], qts=self.qts, date=last.date, seq=0, unread_count=0)
            return wire(raw.types.updates.DifferenceSlice(**fields, intermediate_state=intermediate))
        return wire(raw.types.updates.Difference(**fields, state=self.state()))
