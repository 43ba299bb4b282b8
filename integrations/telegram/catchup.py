"""Catch up after downtime: fetch what each bot missed and answer it, in order.

MTProto does not push what arrived while a client was offline; the client asks with
``updates.getDifference(pts, date, qts)`` from the last state it had. Pyrogram 2.0.106 never
asked. pyrofork can (``skip_updates=False``), but it records the state when an update
*arrives* (an update in flight at a crash is then skipped for good), feeds the missed messages
to its concurrent handler workers (no order) and drops the other updates; so the transport
keeps ``skip_updates=True`` and does it here:

* :class:`UpdateTracker` knows which updates are *handled* (submitted to the engine, which saved
  the step): the state it reports never passes an update still in flight, so a crash makes the
  next start fetch it again rather than lose it (an update may then be handled twice: the engine
  answers a repeated input as the flow says, e.g. "That is not what I asked for").
* :class:`StateSaver` writes that state to an :class:`UpdateStateStore` (per bot, keyed by the
  bot's numeric id) at most every ``STATE_SAVE_INTERVAL_S`` while updates flow, and at stop.
* :func:`catch_up` runs at start, before live updates are handled: ``getDifference`` from the
  stored state until the difference is complete, each update handled in order (messages first,
  in the order Telegram lists them; the bot's own outgoing messages skipped). Without a stored
  state (first start) it only records ``updates.getState``.

Telegram keeps a bot's pending updates for a limited time (about a day); an older gap comes back
as ``differenceTooLong`` and is logged as lost.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional, Protocol

from pyrogram import raw

from integrations.telegram.constants import CATCH_UP_MAX_ROUNDS, STATE_SAVE_INTERVAL_S

log = logging.getLogger(__name__)

HandleRaw = Callable[[Any, dict, dict], Awaitable[Any]]


@dataclass(frozen=True)
class UpdateState:
    """Where a bot's update sequence stands (the arguments of ``updates.getDifference``)."""

    pts: int
    qts: int
    date: int


class UpdateStateStore(Protocol):
    """Persisted :class:`UpdateState` per bot (keyed by the bot's numeric id)."""

    async def load(self, bot_id: int) -> Optional[UpdateState]: ...

    async def save(self, bot_id: int, state: UpdateState) -> None: ...


class MemoryUpdateStateStore:
    """:class:`UpdateStateStore` in memory (tests; ``STORE=memory``)."""

    def __init__(self) -> None:
        self.states: dict[int, UpdateState] = {}

    async def load(self, bot_id: int) -> Optional[UpdateState]:
        return self.states.get(bot_id)

    async def save(self, bot_id: int, state: UpdateState) -> None:
        self.states[bot_id] = state


class UpdateTracker:
    """The highest state such that every update up to it has been handled."""

    def __init__(self, state: Optional[UpdateState] = None) -> None:
        self._ids = itertools.count()
        self._in_flight: dict[int, int] = {}  # token -> pts before the update
        self.reset(state or UpdateState(0, 0, 0))
        self.on_change: Optional[Callable[[], None]] = None

    def reset(self, state: UpdateState) -> None:
        self.baseline = state
        self._pts, self._qts, self._date = state.pts, state.qts, state.date

    @staticmethod
    def _pts_of(update: Any) -> tuple[Optional[int], int]:
        pts = getattr(update, "pts", None)
        return (pts, int(getattr(update, "pts_count", 0) or 0)) if isinstance(pts, int) else (None, 0)

    def is_old(self, update: Any) -> bool:
        """Already covered by the state (e.g. fetched by the catch-up, then pushed live too)."""
        pts, _ = self._pts_of(update)
        return pts is not None and pts <= self.baseline.pts

    def begin(self, update: Any) -> Optional[int]:
        """An update is being handled; returns a token for :meth:`end` (None if it has no pts)."""
        pts, count = self._pts_of(update)
        self._see_date(update)
        if pts is None:
            return None
        token = next(self._ids)
        self._in_flight[token] = pts - count
        self._pts = max(self._pts, pts)
        return token

    def end(self, token: Optional[int]) -> None:
        if token is not None and self._in_flight.pop(token, None) is not None and self.on_change:
            self.on_change()

    def observe(self, update: Any) -> None:
        """An update the transport does not handle: it only moves the state on."""
        pts, _ = self._pts_of(update)
        qts = getattr(update, "qts", None)
        self._see_date(update)
        changed = False
        if pts is not None and pts > self._pts:
            self._pts, changed = pts, True
        if isinstance(qts, int) and qts > self._qts:
            self._qts, changed = qts, True
        if changed and self.on_change:
            self.on_change()

    def _see_date(self, update: Any) -> None:
        date = getattr(getattr(update, "message", None), "date", None)
        if isinstance(date, int) and date > self._date:
            self._date = date

    def safe(self) -> UpdateState:
        """The state to persist: never past an update still being handled."""
        pts = min(self._in_flight.values(), default=self._pts)
        return UpdateState(max(self.baseline.pts, min(pts, self._pts)), self._qts, self._date)


class StateSaver:
    """Writes a tracker's safe state to the store, at most every ``interval`` s, and at stop."""

    def __init__(self, store: UpdateStateStore, bot_id: int, tracker: UpdateTracker,
                 interval: float = STATE_SAVE_INTERVAL_S) -> None:
        self.store, self.bot_id, self.tracker, self.interval = store, bot_id, tracker, interval
        self.saved: Optional[UpdateState] = None
        self._task: Optional[asyncio.Task] = None
        tracker.on_change = self.changed

    def changed(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._later())

    async def _later(self) -> None:
        await asyncio.sleep(self.interval)
        await self.save()

    async def save(self) -> None:
        state = self.tracker.safe()
        if state == self.saved:
            return
        try:
            await self.store.save(self.bot_id, state)
            self.saved = state
        except Exception:
            log.exception("could not save the update state of bot %s", self.bot_id)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        await self.save()


@dataclass
class CatchUpResult:
    handled: int = 0
    rounds: int = 0
    first_start: bool = False
    lost_gap: bool = False


async def catch_up(invoke: Callable[[Any], Awaitable[Any]], handle: HandleRaw, store: UpdateStateStore,
                   bot_id: int, tracker: UpdateTracker, *, max_rounds: int = CATCH_UP_MAX_ROUNDS) -> CatchUpResult:
    """Fetch and handle (in order) what ``bot_id`` missed since its stored state.

    ``invoke`` is the client's raw ``invoke``; ``handle(update, users, chats)`` is the
    transport's handler. The state is saved after every difference, so a crash during a long
    catch-up resumes where it stopped.
    """
    result = CatchUpResult()
    state = await store.load(bot_id)
    if state is None:
        server = await invoke(raw.functions.updates.GetState())
        state = UpdateState(server.pts, server.qts, server.date)
        await store.save(bot_id, state)
        tracker.reset(state)
        result.first_start = True
        log.info("bot %s: first start, nothing to catch up", bot_id)
        return result
    while result.rounds < max_rounds:
        result.rounds += 1
        diff = await invoke(raw.functions.updates.GetDifference(pts=state.pts, date=state.date, qts=state.qts))
        if isinstance(diff, raw.types.updates.DifferenceEmpty):
            state = UpdateState(state.pts, state.qts, diff.date)
            break
        if isinstance(diff, raw.types.updates.DifferenceTooLong):
            log.error("bot %s: the gap since the last run is too long for Telegram; updates before pts %s are lost",
                      bot_id, diff.pts)
            result.lost_gap = True
            state = UpdateState(diff.pts, state.qts, state.date)
            continue
        users = {u.id: u for u in diff.users}
        chats = {c.id: c for c in diff.chats}
        for message in diff.new_messages:
            if not isinstance(message, raw.types.Message) or message.out:
                continue  # the bot's own messages, or a deleted one
            await handle(raw.types.UpdateNewMessage(message=message, pts=0, pts_count=0), users, chats)
            result.handled += 1
        for update in diff.other_updates:
            await handle(update, users, chats)
            result.handled += 1
        new = diff.state if isinstance(diff, raw.types.updates.Difference) else diff.intermediate_state
        state = UpdateState(new.pts, new.qts, new.date)
        await store.save(bot_id, state)
        if isinstance(diff, raw.types.updates.Difference):
            break
    else:
        log.error("bot %s: catch-up stopped after %d rounds", bot_id, max_rounds)
    await store.save(bot_id, state)
    tracker.reset(state)
    if result.handled:
        log.info("bot %s: caught up %d update(s) missed while down", bot_id, result.handled)
    return result
