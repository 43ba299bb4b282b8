"""How workflows speak into conversations without importing the engine.

Workflows (face-check answers, the outbox, reports) run outside any update and must post
events into chats. The engine is built after them (its hooks need them), so the app assembly
binds :class:`Notifier` to ``engine.post_event`` once, right after building the engine.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Mapping, Optional, Protocol, Union

# An event's data, or a function of the recipient conversation's language that makes it
# (engine.types.EventData): a report is formatted for the teacher who reads it.
EventData = Union[Mapping[str, Any], Callable[[str], Mapping[str, Any]]]


class PostEvent(Protocol):
    def __call__(self, bot: str, chat_id: int, name: str, data: Optional[EventData] = None,
                 user_id: Optional[int] = None, about: Optional[dict[str, Any]] = None) -> Awaitable[Any]: ...


class NotifierNotBound(RuntimeError):
    """An event was posted before the app bound the engine (a bug in the assembly)."""


class Notifier:
    """Posts internal events into conversations; answers are what the engine returns (falsy: refused)."""

    def __init__(self) -> None:
        self._post: Optional[PostEvent] = None

    def bind(self, post: PostEvent) -> None:
        if self._post is not None:
            raise RuntimeError("the notifier is already bound")
        self._post = post

    @property
    def bound(self) -> bool:
        return self._post is not None

    async def __call__(self, bot: str, chat_id: int, name: str, data: Optional[EventData] = None,
                       user_id: Optional[int] = None, about: Optional[dict[str, Any]] = None) -> Any:
        """``about``: the conversation values the event answers (a face check's session id); the
        flow's state takes it only when the conversation still holds them."""
        if self._post is None:
            raise NotifierNotBound(f"event {name!r} posted before the engine was bound")
        if about:
            return await self._post(bot, chat_id, name, data or {}, user_id, about=about)
        return await self._post(bot, chat_id, name, data or {}, user_id)
