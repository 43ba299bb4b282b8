"""One bot's outgoing queue: replies leave the update path, in order per chat, within the limits.

Why: sending used to be awaited inside ``engine.submit`` inside Pyrogram's handler workers, so
a two-message step held its worker for a second (the per-chat limit) and a class of 1,000
managed 13 messages/s. Now a step only appends its replies to the journal and this queue; a
dispatcher task per bot sends them:

* **order per chat**: a chat has at most one message in flight; its messages go in the order
  the steps produced them;
* **per bot**: a smooth budget (``SEND_RATE_GLOBAL``, aiolimiter with no burst), and up to
  ``SEND_CONCURRENCY`` messages in flight (network round trips overlap);
* **per chat**: ``SEND_RATE_PER_CHAT`` with a burst of ``SEND_BURST_PER_CHAT``; a chat that must
  wait does not hold a sender: the dispatcher takes the chat that has been ready longest;
* **FloodWait**: the whole bot pauses for the time Telegram asks, and the message goes first
  again once the pause ends (a FloodWait is not a failed try);
* **failures**: a transient failure (network, Telegram 5xx) is retried after a back-off, up to
  ``SEND_MAX_ATTEMPTS`` tries, then recorded as failed in the journal; a refusal (blocked bot,
  bad request) is recorded at once;
* **follow-ups**: what the bot says with no user input since its last message (a face-check
  verdict after "Video received") joins that message: merged while it still waits in the queue,
  else appended by editing it if it was sent less than ``FOLLOW_UP_EDIT_WINDOW_S`` ago (no new
  message, same rate budget); a failed edit falls back to a new message.

The queue is in memory; the journal makes it durable (see ``integrations/telegram/journal.py``).
"""
from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional

from pyrogram.errors import FloodWait, MessageNotModified, RPCError

from engine import DeleteMessage, EditText, ReplyAction, SendText
from integrations.foundation.logs import request_id_var
from integrations.telegram.coalesce import (
    coalesce,
    is_plain,
    join_text,
    merge,
    plain_text,
)
from integrations.telegram.constants import (
    FLOOD_WAIT_LOG_ERROR_S,
    FOLLOW_UP_EDIT_WINDOW_S,
    GLOBAL_RATE,
    MAX_CHATS_TRACKED,
    PER_CHAT_BURST,
    PER_CHAT_RATE,
    RATE_WINDOW_S,
    RETRY_BACKOFF_S,
    SEND_ATTEMPTS,
    SENDERS_PER_BOT,
    STALLED_AFTER_S,
    WAIT_SAMPLES,
)
from integrations.telegram.journal import JournalEntry, ReplyJournal
from integrations.telegram.ratelimit import ChatPacers, global_limiter

log = logging.getLogger(__name__)

# perform(client, chat_id, action) -> (message id, text of that message) or None; raises on failure
Perform = Callable[[Any, int, ReplyAction], Awaitable[Optional[tuple[int, str]]]]


@dataclass
class _Item:
    """One message to send (a coalesced part of one or more journal entries)."""

    action: ReplyAction
    entries: list[int]  # journal seqs this message belongs to
    input_seq: int  # the chat's input counter when the step that produced it ran
    request_id: str
    enqueued: float  # loop time it was queued: chats are served in the order they became ready
    attempts: int = 0
    not_before: float = 0.0
    follow_up: bool = False  # plain text said with no user input since: may be appended by an edit
    edit_of: Optional[int] = None  # set at send time when a follow-up became an edit


@dataclass
class _Sent:
    message_id: int
    text: str
    plain: bool
    at: float
    input_seq: int


@dataclass
class _Chat:
    chat_id: int
    pending: deque = field(default_factory=deque)  # of _Item, not started
    busy: bool = False
    busy_input_seq: int = -1
    queued: bool = False  # in the ready heap
    version: int = 0
    input_seq: int = 0
    last: Optional[_Sent] = None


@dataclass
class _Open:
    """A journal entry being sent: how many of its messages are still to go."""

    remaining: int
    enqueued: float
    request_id: str
    waited: bool = False
    failure: Optional[str] = None


def _transient(exc: BaseException) -> bool:
    """Worth another try: the network or Telegram's servers, not a refusal."""
    if isinstance(exc, RPCError):
        return int(getattr(exc, "CODE", 0) or 0) >= 500
    return isinstance(exc, (OSError, asyncio.TimeoutError, ConnectionError))


class BotQueue:
    """The outgoing queue and dispatcher of one bot. ``put`` is synchronous and never waits."""

    def __init__(
        self,
        bot: str,
        perform: Perform,
        journal: ReplyJournal,
        *,
        global_rate: float = GLOBAL_RATE,
        per_chat_rate: float = PER_CHAT_RATE,
        chat_burst: int = PER_CHAT_BURST,
        senders: int = SENDERS_PER_BOT,
        max_attempts: int = SEND_ATTEMPTS,
        follow_up_window: float = FOLLOW_UP_EDIT_WINDOW_S,
        max_chats: int = MAX_CHATS_TRACKED,
    ) -> None:
        self.bot = bot
        self.perform = perform
        self.journal = journal
        self.global_rate = global_rate
        self.senders = senders
        self.max_attempts = max(1, max_attempts)
        self.follow_up_window = follow_up_window
        self.max_chats = max_chats
        self.client: Any = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None  # the loop it runs on (its clock)
        self._limiter = global_limiter(global_rate)
        self._pacers = ChatPacers(per_chat_rate, chat_burst, max_chats)
        self._chats: OrderedDict[int, _Chat] = OrderedDict()
        self._heap: list[tuple[float, int, int, int]] = []  # (ready_at, order, chat_id, version)
        self._order = itertools.count()
        self._open: dict[int, _Open] = {}
        self._depth = 0
        self._in_flight = 0
        self._paused_until = float("-inf")
        self._wakeup: Optional[asyncio.Future] = None
        self._attached = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._slots = asyncio.Semaphore(senders)
        self._task: Optional[asyncio.Task] = None
        self._sends: set[asyncio.Task] = set()
        # figures
        self.sent = 0
        self.edits = 0
        self.deletes = 0
        self.flood_waits = 0
        self.flood_wait_seconds = 0.0
        self.retries = 0
        self.failed = 0
        self._send_times: deque[float] = deque()
        self._waits: deque[float] = deque(maxlen=WAIT_SAMPLES)
        self.all_waits: Optional[list[float]] = None  # set to a list to keep every wait (load tests)

    # ------------------------------------------------------------------ lifecycle
    def _now(self) -> float:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop.time()

    def attach(self, client: Any) -> None:
        """Send through ``client`` from now on (the dispatcher waits for it)."""
        self.client = client
        self._attached.set()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"send-queue-{self.bot}")

    async def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until nothing is queued or in flight; False if ``timeout`` ran out first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def stop(self) -> None:
        """Stop sending; what is still queued stays in the journal for the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._sends):
            task.cancel()
        if self._sends:
            await asyncio.gather(*self._sends, return_exceptions=True)
        self._attached.clear()
        self.client = None

    # ------------------------------------------------------------------ input
    def note_input(self, chat_id: int) -> None:
        """A user's update for ``chat_id`` arrived: what the bot says next is an answer to it."""
        self._chat(chat_id).input_seq += 1

    def put(self, entry: JournalEntry, *, fresh: bool = True) -> None:
        """Queue a journal entry's messages (``fresh``: just produced, not a replay)."""
        items = coalesce(entry.actions)
        now = self._now()
        if not items:
            self._open[entry.seq] = _Open(0, now, entry.request_id)
            self._close(entry.seq)
            return
        chat = self._chat(entry.chat_id)
        self._open[entry.seq] = _Open(0, now, entry.request_id)
        text = plain_text(items) if fresh and self._is_follow_up(chat) else None
        if text is not None:
            last = chat.pending[-1] if chat.pending else None
            if last is not None:
                merged = merge(last.action, SendText(text))
                if merged is not None:
                    last.action = merged
                    last.entries.append(entry.seq)
                    self._open[entry.seq].remaining += 1
                    return
            items = [SendText(text)]
        for action in items:
            item = _Item(action, [entry.seq], chat.input_seq, entry.request_id, now,
                         follow_up=text is not None)
            chat.pending.append(item)
            self._open[entry.seq].remaining += 1
            self._depth += 1
        self._idle.clear()
        self._schedule(chat)

    def _is_follow_up(self, chat: _Chat) -> bool:
        """No user input since the bot's previous message (queued, in flight or sent) was produced."""
        if chat.pending:
            reference = chat.pending[-1].input_seq
        elif chat.busy:
            reference = chat.busy_input_seq
        elif chat.last is not None:
            reference = chat.last.input_seq
        else:
            return False
        return reference == chat.input_seq

    def _chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = _Chat(chat_id)
            if len(self._chats) > self.max_chats:
                self._forget_idle_chats()
        else:
            self._chats.move_to_end(chat_id)
        return chat

    def _forget_idle_chats(self) -> None:
        for chat_id in list(self._chats):
            if len(self._chats) <= self.max_chats:
                return
            chat = self._chats[chat_id]
            if not chat.pending and not chat.busy:
                del self._chats[chat_id]

    # ------------------------------------------------------------------ scheduling
    def _schedule(self, chat: _Chat) -> None:
        """Put a chat with pending messages (and none in flight) in the ready heap."""
        if chat.busy or chat.queued or not chat.pending:
            return
        head = chat.pending[0]
        ready = max(self._pacers[chat.chat_id].ready_at(), head.enqueued, head.not_before)
        chat.version += 1
        chat.queued = True
        heapq.heappush(self._heap, (ready, next(self._order), chat.chat_id, chat.version))
        self._wake()

    def _peek(self) -> Optional[tuple[float, _Chat]]:
        while self._heap:
            ready, _, chat_id, version = self._heap[0]
            chat = self._chats.get(chat_id)
            if chat is None or chat.version != version or not chat.queued:
                heapq.heappop(self._heap)
                continue
            return ready, chat
        return None

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def _sleep_until(self, when: Optional[float]) -> None:
        """Sleep until ``when`` (loop time) or until woken by new work."""
        loop = asyncio.get_running_loop()
        self._wakeup = loop.create_future()
        handle = loop.call_at(when, self._wake) if when is not None else None
        try:
            await self._wakeup
        finally:
            if handle is not None:
                handle.cancel()
            self._wakeup = None

    async def _next_chat(self) -> _Chat:
        """The chat ready longest, once the bot is not paused and the budget allows a message."""
        while True:
            now = self._now()
            if self._paused_until > now:
                await asyncio.sleep(self._paused_until - now)
                continue
            top = self._peek()
            if top is None:
                await self._sleep_until(None)
                continue
            ready, _ = top
            if ready > now:
                await self._sleep_until(ready)
                continue
            await self._limiter.acquire()
            if self._paused_until > self._now():
                continue  # a FloodWait arrived while waiting for the budget
            top = self._peek()
            if top is None:  # cannot happen (only this task takes from the heap); stay safe
                continue
            chat = top[1]
            heapq.heappop(self._heap)
            chat.queued = False
            return chat

    async def _run(self) -> None:
        await self._attached.wait()
        while True:
            await self._slots.acquire()
            try:
                chat = await self._next_chat()
            except BaseException:
                self._slots.release()
                raise
            item = chat.pending.popleft()
            self._depth -= 1
            chat.busy = True
            chat.busy_input_seq = item.input_seq
            self._in_flight += 1
            self._pacers[chat.chat_id].take(self._now())
            task = asyncio.get_running_loop().create_task(self._send(chat, item))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    # ------------------------------------------------------------------ sending
    def _as_edit(self, chat: _Chat, item: _Item) -> Optional[EditText]:
        """A follow-up appended to the chat's last message, if that message allows it."""
        last = chat.last
        if (not item.follow_up or not isinstance(item.action, SendText) or last is None or not last.plain
                or last.input_seq != item.input_seq or self._now() - last.at > self.follow_up_window):
            return None
        text = join_text(last.text, item.action.text)
        return EditText(last.message_id, text) if text is not None else None

    async def _send(self, chat: _Chat, item: _Item) -> None:
        token = request_id_var.set(item.request_id) if item.request_id else None
        try:
            await self._send_one(chat, item)
        finally:
            if token is not None:
                request_id_var.reset(token)
            chat.busy = False
            self._in_flight -= 1
            self._slots.release()
            self._schedule(chat)
            if self._depth == 0 and self._in_flight == 0:
                self._idle.set()

    async def _send_one(self, chat: _Chat, item: _Item) -> None:
        action: ReplyAction = item.action
        edit = self._as_edit(chat, item)
        item.edit_of = edit.message_id if edit is not None else None
        if edit is not None:
            action = edit
        now = self._now()
        self._send_times.append(now)
        try:
            result = await self.perform(self.client, chat.chat_id, action)
        except asyncio.CancelledError:
            raise
        except FloodWait as exc:
            wait = float(exc.value or 0)
            self.flood_waits += 1
            self.flood_wait_seconds += wait
            self._paused_until = max(self._paused_until, self._now() + wait)
            (log.error if wait > FLOOD_WAIT_LOG_ERROR_S else log.warning)(
                "FloodWait of %ss for bot %s: pausing its queue", wait, self.bot)
            self._requeue(chat, item)
            return
        except MessageNotModified:
            result = None
        except Exception as exc:
            if item.edit_of is not None and not _transient(exc):
                log.info("appending to message %s failed (%s); sending it as a new message",
                         item.edit_of, type(exc).__name__)
                item.follow_up, item.edit_of = False, None
                self._requeue(chat, item)
                return
            item.attempts += 1
            name = type(action).__name__
            if _transient(exc) and item.attempts < self.max_attempts:
                self.retries += 1
                backoff = RETRY_BACKOFF_S[min(item.attempts, len(RETRY_BACKOFF_S)) - 1]
                item.not_before = self._now() + backoff
                log.warning("%s to chat %s (bot %s) failed (%s), try %d of %d in %ss", name, chat.chat_id,
                            self.bot, type(exc).__name__, item.attempts, self.max_attempts, backoff)
                self._requeue(chat, item)
                return
            self.failed += 1
            reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, RPCError) else type(exc).__name__
            if isinstance(exc, RPCError):
                log.warning("%s to chat %s (bot %s) failed: %s", name, chat.chat_id, self.bot, exc)
            else:
                log.warning("%s to chat %s (bot %s) failed: %s: %s", name, chat.chat_id, self.bot,
                            type(exc).__name__, exc)
            await self._done(item, failure=reason[:200])
            return
        self._record(chat, item, action, result)
        await self._done(item)

    def _requeue(self, chat: _Chat, item: _Item) -> None:
        chat.pending.appendleft(item)
        self._depth += 1

    def _record(self, chat: _Chat, item: _Item, action: ReplyAction, result: Optional[tuple[int, str]]) -> None:
        """Count the call and remember the chat's last message (what a follow-up may extend)."""
        if isinstance(action, EditText):
            self.edits += 1
            if chat.last is not None and chat.last.message_id == action.message_id:
                chat.last.text = action.text
                chat.last.plain = chat.last.plain and not action.inline
            return
        if isinstance(action, DeleteMessage):
            self.deletes += 1
            return
        self.sent += 1
        if isinstance(action, SendText) and result is not None:
            chat.last = _Sent(result[0], result[1], is_plain(action), self._now(), item.input_seq)
        else:
            chat.last = None

    async def _done(self, item: _Item, failure: Optional[str] = None) -> None:
        now = self._now()
        for seq in item.entries:
            entry = self._open.get(seq)
            if entry is None:
                continue
            if not entry.waited:
                entry.waited = True
                self._waits.append(now - entry.enqueued)
                if self.all_waits is not None:
                    self.all_waits.append(now - entry.enqueued)
            if failure and entry.failure is None:
                entry.failure = failure
            entry.remaining -= 1
            if entry.remaining <= 0:
                await self._close_async(seq)

    def _close(self, seq: int) -> None:
        asyncio.get_running_loop().create_task(self._close_async(seq))

    async def _close_async(self, seq: int) -> None:
        entry = self._open.pop(seq, None)
        if entry is None:
            return
        try:
            if entry.failure:
                await self.journal.fail(seq, entry.failure)
            else:
                await self.journal.ack(seq)
        except Exception:
            log.exception("journal update for reply %s of bot %s failed", seq, self.bot)

    # ------------------------------------------------------------------ figures
    def stats(self) -> dict[str, Any]:
        """Queue depth, send rate and what went wrong, for ``run.py stats`` and ``health``."""
        now = self._now()
        while self._send_times and self._send_times[0] < now - RATE_WINDOW_S:
            self._send_times.popleft()
        waits = sorted(self._waits)
        oldest = min((now - self._open[c.pending[0].entries[0]].enqueued
                      for c in self._chats.values() if c.pending and c.pending[0].entries[0] in self._open),
                     default=0.0)
        return {
            "depth": self._depth,
            "in_flight": self._in_flight,
            "chats_waiting": sum(1 for c in self._chats.values() if c.pending),
            "send_rate": round(len(self._send_times) / RATE_WINDOW_S, 2),
            "budget_per_s": self.global_rate,
            "sent": self.sent,
            "edits": self.edits,
            "deletes": self.deletes,
            "retries": self.retries,
            "failed": self.failed,
            "flood_waits": self.flood_waits,
            "paused_s": round(max(0.0, self._paused_until - now), 1),
            "oldest_wait_s": round(oldest, 2),
            "reply_wait_p50_s": round(_pct(waits, 50), 3),
            "reply_wait_p95_s": round(_pct(waits, 95), 3),
            "attached": self.client is not None,
        }

    def health(self) -> dict[str, Any]:
        s = self.stats()
        stalled = s["oldest_wait_s"] > STALLED_AFTER_S
        return {"ok": s["attached"] and not stalled, "attached": s["attached"], "stalled": stalled,
                "depth": s["depth"], "paused_s": s["paused_s"], "oldest_wait_s": s["oldest_wait_s"]}


def _pct(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    k = min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]

