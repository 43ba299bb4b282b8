"""Several Telegram bots serving one flow: names, which bot a batch uses, and reply routes.

Telegram allows each bot ~30 messages/s, so a class of 1,000 students (5 messages each) takes
at least ~170 s on one bot. ``STUDENT_BOT_TOKENS`` adds student bots: they all run the
``student`` flow (the engine, the flows and the hooks still see one bot named ``student``, so
a student's conversation, verdict and later messages do not depend on which bot they used), and
each keeps its own send budget.

* **Names.** The bot of ``STUDENT_BOT_TOKEN`` is ``student``; the others are ``student-2``,
  ``student-3``, ... in the order given (:func:`physical_names`). Sessions files follow the name.
* **Which bot a batch uses.** :func:`student_bot_for_batches` spreads the batches of a session
  over the bots, stable for a given set of batches and bots (rendezvous hashing of the batch
  name and the bot's numeric id, balanced by size). The teacher's "session open" message should
  name, per batch, the bot to use, e.g. ``PFS-101 → @codegnan_student_2_bot``
  (:func:`describe_student_bots`). A roster column may pin a batch to a bot (``pinned``).
* **Replies.** A reply goes out through the bot the student last wrote to (:class:`ChatRoutes`),
  else through ``student``; routes are kept (in MongoDB with ``STORE=mongo``) so a verdict that
  arrives after a restart still reaches the right bot.
"""
from __future__ import annotations

import hashlib
from typing import Mapping, Optional, Protocol, Sequence

from integrations.telegram.constants import STUDENT_BOT


def physical_names(logical: str, count: int) -> list[str]:
    """Bot names for ``count`` bots of one flow: ``student``, ``student-2``, ``student-3``..."""
    return [logical if i == 0 else f"{logical}-{i + 1}" for i in range(count)]


def bot_id(token: str) -> int:
    """The numeric bot id at the start of a token (not secret: it is the bot's user id)."""
    return int(token.split(":", 1)[0])


def _score(batch: str, bot: int) -> int:
    digest = hashlib.blake2b(f"{batch.strip().casefold()}|{bot}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def student_bot_for_batches(
    batches: Sequence[str],
    bots: Sequence[int | str],
    *,
    sizes: Optional[Mapping[str, int]] = None,
    pinned: Optional[Mapping[str, int | str]] = None,
) -> dict[str, int | str]:
    """Which bot each batch of a session should use.

    ``bots`` are stable identities (bot ids or usernames; order does not matter). Each batch
    prefers bots in rendezvous order (a stable hash of batch and bot); batches are placed
    largest first (``sizes``, student counts, if known) on the preferred bot among the least
    loaded, so a session's students spread evenly and a batch keeps its bot while the set of
    batches and bots stays the same. Adding a bot moves only the batches that now prefer it.
    ``pinned`` (e.g. from a roster column) wins for the batches it names.
    """
    if not bots:
        raise ValueError("no student bot")
    pinned = dict(pinned or {})
    sizes = dict(sizes or {})
    load: dict[int | str, int] = {b: 0 for b in bots}
    chosen: dict[str, int | str] = {}
    for batch, bot in pinned.items():
        if batch in batches and bot in load:
            chosen[batch] = bot
            load[bot] += sizes.get(batch, 1)
    order = sorted((b for b in dict.fromkeys(batches) if b not in chosen),
                   key=lambda b: (-sizes.get(b, 1), b))
    for batch in order:
        preference = sorted(bots, key=lambda bot: _score(batch, hash_key(bot)), reverse=True)
        least = min(load.values())
        bot = next(b for b in preference if load[b] == least)
        chosen[batch] = bot
        load[bot] += sizes.get(batch, 1)
    return {batch: chosen[batch] for batch in batches}


def hash_key(bot: int | str) -> int:
    """A bot identity as an integer for hashing (ids as is, names by a stable digest)."""
    if isinstance(bot, int):
        return bot
    return int.from_bytes(hashlib.blake2b(bot.encode(), digest_size=8).digest(), "big")


def describe_student_bots(assignment: Mapping[str, int | str], usernames: Mapping[int | str, str]) -> str:
    """The line for the teacher's session message, e.g. ``Students check in with @a_bot``."""
    by_bot: dict[str, list[str]] = {}
    for batch, bot in assignment.items():
        by_bot.setdefault(usernames.get(bot, str(bot)), []).append(batch)
    if len(by_bot) == 1:
        return f"Students check in with @{next(iter(by_bot))}"
    parts = [f"{', '.join(batches)} → @{name}" for name, batches in by_bot.items()]
    return "Students check in with: " + "; ".join(parts)


class ChatRoutes(Protocol):
    """Which Telegram bot a chat of a multi-bot flow last wrote to (persisted)."""

    async def get(self, logical: str, chat_id: int) -> Optional[str]: ...

    async def set(self, logical: str, chat_id: int, bot: str) -> None: ...


class MemoryChatRoutes:
    """:class:`ChatRoutes` in memory (tests; ``STORE=memory``)."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, int], str] = {}

    async def get(self, logical: str, chat_id: int) -> Optional[str]:
        return self._routes.get((logical, chat_id))

    async def set(self, logical: str, chat_id: int, bot: str) -> None:
        self._routes[(logical, chat_id)] = bot


__all__ = ["STUDENT_BOT", "ChatRoutes", "MemoryChatRoutes", "bot_id", "describe_student_bots",
           "physical_names", "student_bot_for_batches"]
