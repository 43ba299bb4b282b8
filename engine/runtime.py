"""The engine: per-chat ordering, persistence after every step, timers, and delivery.

Updates of one chat run strictly one after another; different chats run concurrently. A step
that raises leaves the stored conversation untouched and answers with the flow's error text.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, defaultdict
from typing import Any, Awaitable, Callable, Optional

from .context import request_id_var
from .hooks import HookRegistry
from .constants import (
    DEFAULT_TEXTS,
    LANGUAGE_CHOSEN_KEY,
    LANGUAGE_KEY,
    REFUSED_CHATS_REMEMBERED,
    TIMEOUT_EVENT,
    is_transient,
)
from .loader import CompiledFlow
from .errors import VersionConflict
from .step import Step
from .store import Conversation, ConversationStore, Key, MemoryStore
from .timers import TimerService
from .types import Event, EventData, Outgoing, ReplyAction, SendText, Update

log = logging.getLogger(__name__)

Sink = Callable[[Outgoing], Awaitable[None]]


class _ChatLocks:
    """One lock per chat, dropped when nobody holds or waits for it (bounded memory)."""

    def __init__(self) -> None:
        self._locks: dict[Key, asyncio.Lock] = {}
        self._users: dict[Key, int] = defaultdict(int)

    def hold(self, key: Key) -> "_Held":
        return _Held(self, key)

    def __len__(self) -> int:
        return len(self._locks)


class _Held:
    def __init__(self, owner: _ChatLocks, key: Key) -> None:
        self.owner, self.key = owner, key

    async def __aenter__(self) -> None:
        owner = self.owner
        lock = owner._locks.get(self.key)
        if lock is None:
            lock = owner._locks[self.key] = asyncio.Lock()
        owner._users[self.key] += 1
        await lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        owner = self.owner
        owner._locks[self.key].release()
        owner._users[self.key] -= 1
        if owner._users[self.key] == 0:
            del owner._users[self.key]
            del owner._locks[self.key]


def _error_text(flow: CompiledFlow, language_code: Optional[str]) -> str:
    """The flow's error text when even the conversation could not be read."""
    return flow.spec_in(flow.language_for(language_code)).texts["error"]


class Engine:
    def __init__(
        self,
        flows: dict[str, CompiledFlow],
        hooks: HookRegistry,
        store: Optional[ConversationStore] = None,
        services: Any = None,
        clock: Callable[[], float] = time.time,
        use_timers: bool = True,
    ) -> None:
        self.flows = flows  # by bot name
        self.hooks = hooks
        self.store: ConversationStore = store or MemoryStore()
        self.services = services
        self.clock = clock
        self._sinks: list[Sink] = []
        self._locks = _ChatLocks()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._accepting = True
        self._input_open = True  # user input (not internal events); see close_input()
        self.timers: Optional[TimerService] = (
            TimerService(self._fire_timeout, clock) if use_timers else None
        )
        self.stats: dict[str, int] = defaultdict(int)
        self._refused: OrderedDict[Key, None] = OrderedDict()  # non-private chats already told

    # ------------------------------------------------------------------ lifecycle
    def add_sink(self, sink: Sink) -> None:
        """Where replies go (a transport); several sinks each get every reply."""
        self._sinks.append(sink)

    async def start(self) -> int:
        """Start timers and re-arm every stored deadline; returns how many were re-armed."""
        if self.timers is None:
            return 0
        self.timers.start()
        pending = await self.store.with_deadlines()
        for conv in pending:
            self.timers.schedule(conv.key, conv.epoch, conv.deadline or self.clock())
        return len(pending)

    async def close_input(self) -> None:
        """Refuse user input but keep taking internal events (a face check's answer, a timer, a
        report), and wait for the updates in flight: the first half of a graceful stop."""
        self._input_open = False
        await self._idle.wait()

    async def drain(self) -> None:
        """Stop taking updates and wait for the in-flight ones to finish."""
        self._accepting = False
        await self._idle.wait()

    async def stop(self) -> None:
        await self.drain()
        if self.timers:
            self.timers.shutdown()
        await self.store.close()

    # ------------------------------------------------------------------ input
    async def post_event(
        self, bot: str, chat_id: int, name: str, data: Optional[EventData] = None,
        user_id: Optional[int] = None, about: Optional[dict[str, Any]] = None,
    ) -> list[ReplyAction]:
        """Deliver an internal event (report ready, verification done) to one conversation.

        ``data`` may be a function of the conversation's language (see :class:`Event`).
        ``about``: the conversation values the event answers (e.g. its session id); a state's
        own handler takes it only when the conversation holds them (see Step._on_event)."""
        update = Update(bot, chat_id, user_id if user_id is not None else chat_id, "event",
                        Event(name, data or {}, dict(about or {})))
        return await self.submit(update)

    async def _fire_timeout(self, key: Key, epoch: int) -> None:
        await self.post_event(key[0], key[1], TIMEOUT_EVENT, {"epoch": epoch})

    async def submit(self, update: Update) -> list[ReplyAction]:
        """Handle one update in its chat's turn, persist, deliver; never raises."""
        if not self._accepting or (not self._input_open and update.kind != "event"):
            log.warning("update refused: engine is stopping", extra={"request_id": update.request_id})
            return []
        self._in_flight += 1
        self._idle.clear()
        token = request_id_var.set(update.request_id)
        try:
            async with self._locks.hold(update.key):
                try:
                    actions = await self._process(update)
                except Exception:  # the store failed: nothing was saved, so say so and move on
                    self.stats["errors"] += 1
                    log.exception("store failure", extra={"request_id": update.request_id})
                    flow = self.flows.get(update.bot)
                    actions = [SendText(_error_text(flow, update.language_code))] if flow and update.kind != "event" else []
                if actions:
                    await self._deliver(Outgoing(update.bot, update.chat_id, tuple(actions), update.request_id))
            return actions
        finally:
            request_id_var.reset(token)
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _deliver(self, out: Outgoing) -> None:
        for sink in self._sinks:
            try:
                await sink(out)
            except Exception:  # a transport failure must not undo a saved step
                log.exception("delivery failed", extra={"request_id": out.request_id})

    def _refuse_chat(self, flow: CompiledFlow, update: Update) -> list[ReplyAction]:
        """A group, supergroup or channel: one polite refusal per chat, and nothing stored."""
        self.stats["refused_chats"] += 1
        if update.key in self._refused:
            return []
        self._refused[update.key] = None
        while len(self._refused) > REFUSED_CHATS_REMEMBERED:
            self._refused.popitem(last=False)
        log.info("update from a non-private chat refused", extra={"request_id": update.request_id})
        return [SendText(flow.spec.texts.get("private_only", DEFAULT_TEXTS["private_only"]))]

    async def _process(self, update: Update) -> list[ReplyAction]:
        flow = self.flows.get(update.bot)
        if flow is None:
            log.error("no flow serves bot %r", update.bot)
            return []
        if update.kind != "event" and not update.private:
            return self._refuse_chat(flow, update)
        for attempt in (1, 2):
            conv = await self.store.get(update.key)
            if conv is not None and update.kind != "event" and conv.user_id != update.user_id:
                # Every update of a conversation comes from its own user (never otherwise in a
                # private chat): someone else's contact, code or location must not reach it.
                self.stats["refused_users"] += 1
                log.warning("update from another user refused", extra={"request_id": update.request_id})
                return [SendText(flow.spec.texts.get("not_yours", DEFAULT_TEXTS["not_yours"]))]
            before = (conv.deadline, conv.epoch) if conv else None
            fresh = conv is None or conv.flow != flow.name or conv.state not in flow.spec.states
            if fresh:
                if update.kind == "event":
                    return await self._event_without_conversation(flow, update)
                data = dict(flow.spec.data)
                if conv is not None:  # another flow's (or a removed state's): keep the language
                    data.update({k: conv.data[k] for k in (LANGUAGE_KEY, LANGUAGE_CHOSEN_KEY) if k in conv.data})
                conv = Conversation(update.bot, update.chat_id, update.user_id, flow.name,
                                    flow.spec.start, data, version=conv.version if conv else 0)
            assert conv is not None
            step = Step(flow, conv, update, self.hooks, self.services, self.clock)
            try:
                await (step.start() if fresh else step.handle())
            except Exception:
                self.stats["errors"] += 1
                log.exception("step failed in %s/%s", flow.name, conv.state,
                              extra={"request_id": update.request_id})
                return [SendText(flow.spec_in(step.language).texts["error"])]
            step.conv.data = {k: v for k, v in step.conv.data.items() if not is_transient(k)}
            try:
                await self.store.save(step.conv)
            except VersionConflict:
                self.stats["conflicts"] += 1
                log.warning("conversation changed under us (attempt %d)", attempt,
                            extra={"request_id": update.request_id})
                continue
            self.stats["updates"] += 1
            self._rearm(before, step.conv)
            return step.actions
        return [SendText(flow.spec_in(step.language).texts["error"])]

    async def _event_without_conversation(self, flow: CompiledFlow, update: Update) -> list[ReplyAction]:
        """A flow-wide event for a chat with no stored conversation (e.g. a report after a
        restart of an in-memory store): answer it; keep a conversation only if it moved to a state."""
        event = update.payload
        if not isinstance(event, Event) or event.name not in flow.spec.events:
            return []
        conv = Conversation(update.bot, update.chat_id, update.user_id, flow.name, flow.spec.start,
                            dict(flow.spec.data))
        step = Step(flow, conv, update, self.hooks, self.services, self.clock)
        try:
            await step.handle()
        except Exception:
            log.exception("event %s failed", event.name, extra={"request_id": update.request_id})
            return []
        if step.trace:
            step.conv.data = {k: v for k, v in step.conv.data.items() if not is_transient(k)}
            try:
                await self.store.save(step.conv)
            except VersionConflict:
                return []
            self._rearm(None, step.conv)
        return step.actions

    def _rearm(self, before: Optional[tuple[Optional[float], int]], after: Conversation) -> None:
        """Schedule, move or cancel the chat's timeout; `before` is (deadline, epoch) as read."""
        if self.timers is None:
            return
        if after.deadline is not None:
            if before != (after.deadline, after.epoch):
                self.timers.schedule(after.key, after.epoch, after.deadline)
        elif before is not None and before[0] is not None:
            self.timers.cancel(after.key)
