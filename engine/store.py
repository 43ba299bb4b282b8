"""Where conversations live between updates.

Every step ends with :meth:`ConversationStore.save` guarded by the version read at the start, so
two workers can never both advance one chat: the second gets :class:`VersionConflict`.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol

from .errors import VersionConflict

Key = tuple[str, int]  # (bot, chat_id)


@dataclass
class Conversation:
    bot: str
    chat_id: int
    user_id: int
    flow: str
    state: str
    data: dict[str, Any] = field(default_factory=dict)
    version: int = 0  # 0 = never saved
    retries: int = 0  # failed inputs in the current state
    epoch: int = 0  # bumps on every state entry; stale timers and buttons carry an older one
    deadline: Optional[float] = None  # wall-clock time of the current state's timeout
    updated_at: float = field(default_factory=time.time)

    @property
    def key(self) -> Key:
        return (self.bot, self.chat_id)

    def clone(self) -> "Conversation":
        """An independent copy (the data is JSON-like, so a shallow walk beats deepcopy 4x)."""
        return dataclasses.replace(self, data=_copy(self.data))


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool, bytes)):
        return value
    return copy.deepcopy(value)


class ConversationStore(Protocol):
    async def get(self, key: Key) -> Optional[Conversation]: ...

    async def save(self, conversation: Conversation) -> None:
        """Persist; ``conversation.version`` is the version read. Bumps it on success."""

    async def with_deadlines(self) -> list[Conversation]:
        """Conversations waiting on a timeout (to re-arm timers after a restart)."""

    async def count(self) -> int: ...

    async def close(self) -> None: ...


class MemoryStore:
    """The default store: a dict of snapshots. Keeps nothing across processes."""

    def __init__(self) -> None:
        self._items: dict[Key, Conversation] = {}

    async def get(self, key: Key) -> Optional[Conversation]:
        stored = self._items.get(key)
        return stored.clone() if stored else None

    async def save(self, conversation: Conversation) -> None:
        stored = self._items.get(conversation.key)
        current = stored.version if stored else 0
        if current != conversation.version:
            raise VersionConflict(f"{conversation.key}: read v{conversation.version}, now v{current}")
        conversation.version += 1
        conversation.updated_at = time.time()
        self._items[conversation.key] = conversation.clone()

    async def with_deadlines(self) -> list[Conversation]:
        return [c.clone() for c in self._items.values() if c.deadline is not None]

    async def count(self) -> int:
        return len(self._items)

    async def close(self) -> None:
        return None
