"""The engine's reply sink for Telegram: journal, route, queue; and how one message is sent.

:meth:`TelegramSender.deliver` is what the engine awaits after saving a step. It only
(1) answers callback queries at once (the button spins until answered; not a chat message),
(2) picks the Telegram bot that serves the chat (one per flow, or the one a student last wrote
to when a flow has several bots), (3) appends the replies to the :class:`ReplyJournal` and
(4) queues them on that bot's :class:`~integrations.telegram.send_queue.BotQueue`. Sending
happens in the queue's own tasks, so a step never waits for Telegram or its rate limits.

:func:`perform` turns one (coalesced) reply action into the Pyrogram call. Text is sent with
parse mode disabled because flow texts are plain and may contain ``*``/``_`` (e.g. student ids)
that Markdown would swallow.
"""
from __future__ import annotations

import asyncio
import io
import logging
from typing import Any, Mapping, Optional

from pyrogram import enums
from pyrogram.errors import RPCError

from engine import (
    AnswerCallback,
    DeleteMessage,
    EditText,
    Outgoing,
    ReplyAction,
    SendDocument,
    SendText,
)
from integrations.foundation.logs import request_id_var
from integrations.telegram.bots import ChatRoutes, MemoryChatRoutes
from integrations.telegram.coalesce import split_text
from integrations.telegram.constants import (
    FOLLOW_UP_EDIT_WINDOW_S,
    GLOBAL_RATE,
    PER_CHAT_BURST,
    PER_CHAT_RATE,
    SEND_ATTEMPTS,
    SENDERS_PER_BOT,
)
from integrations.telegram.journal import JournalEntry, MemoryReplyJournal, ReplyJournal
from integrations.telegram.markup import inline_keyboard, markup_for
from integrations.telegram.send_queue import BotQueue

log = logging.getLogger(__name__)

PARSE_MODE = enums.ParseMode.DISABLED

__all__ = ["TelegramSender", "perform", "split_text"]


async def perform(client: Any, chat_id: int, action: ReplyAction) -> Optional[tuple[int, str]]:
    """Send one message (or edit/delete one); returns (message id, its text) for a text.

    Raises what Pyrogram raises; the queue decides between retry, pause and giving up.
    """
    if isinstance(action, SendText):
        message = await client.send_message(chat_id, action.text, parse_mode=PARSE_MODE,
                                            reply_markup=markup_for(action), disable_web_page_preview=True)
        message_id = getattr(message, "id", None)
        return (message_id, action.text) if message_id is not None else None
    if isinstance(action, EditText):
        markup = inline_keyboard(action.inline) if action.inline else None
        message = await client.edit_message_text(chat_id, action.message_id, action.text, parse_mode=PARSE_MODE,
                                                 reply_markup=markup, disable_web_page_preview=True)
        return (getattr(message, "id", action.message_id), action.text)
    if isinstance(action, DeleteMessage):
        await client.delete_messages(chat_id, action.message_id)
        return None
    if isinstance(action, SendDocument):
        document = io.BytesIO(action.data)  # fresh each try: an upload consumes the stream
        document.name = action.filename
        message = await client.send_document(chat_id, document, caption=action.caption,
                                             file_name=action.filename, parse_mode=PARSE_MODE)
        message_id = getattr(message, "id", None)
        return (message_id, action.caption) if message_id is not None else None
    raise TypeError(f"unknown reply action {type(action).__name__}")


class TelegramSender:
    """Routes and queues every bot's replies; one :class:`BotQueue` per Telegram bot.

    ``bots`` maps each Telegram bot's name to the flow bot it serves (``{"teacher": "teacher",
    "student": "student", "student-2": "student"}``); a bot attached later that is not listed
    serves the flow of its own name. Call :meth:`start` once (it replays the journal), then give
    :meth:`deliver` to the engine; :meth:`flush`/:meth:`stop` at shutdown.
    """

    def __init__(
        self,
        clients: Optional[Mapping[str, Any]] = None,
        *,
        bots: Optional[Mapping[str, str]] = None,
        per_chat_rate: float = PER_CHAT_RATE,
        global_rate: float = GLOBAL_RATE,
        chat_burst: int = PER_CHAT_BURST,
        senders: int = SENDERS_PER_BOT,
        max_attempts: int = SEND_ATTEMPTS,
        follow_up_window: float = FOLLOW_UP_EDIT_WINDOW_S,
        journal: Optional[ReplyJournal] = None,
        routes: Optional[ChatRoutes] = None,
    ) -> None:
        self.options = dict(per_chat_rate=per_chat_rate, global_rate=global_rate, chat_burst=chat_burst,
                            senders=senders, max_attempts=max_attempts, follow_up_window=follow_up_window)
        self.journal: ReplyJournal = journal or MemoryReplyJournal()
        self.routes: ChatRoutes = routes or MemoryChatRoutes()
        self.logical_of: dict[str, str] = dict(bots or {})
        self.queues: dict[str, BotQueue] = {}
        self._route_cache: dict[tuple[str, int], str] = {}
        self._started = False
        self._replaying = False
        self._held: list[JournalEntry] = []
        self._tasks: set[asyncio.Task] = set()
        for bot in self.logical_of:
            self._queue(bot)
        for bot, client in (clients or {}).items():
            self.attach(bot, client)

    # ------------------------------------------------------------------ bots
    def _queue(self, bot: str) -> BotQueue:
        queue = self.queues.get(bot)
        if queue is None:
            self.logical_of.setdefault(bot, bot)
            queue = self.queues[bot] = BotQueue(bot, perform, self.journal, **self.options)  # type: ignore[arg-type]
            if self._started:
                queue.start()
        return queue

    def attach(self, bot: str, client: Any) -> None:
        """Send ``bot``'s replies through ``client`` (a started Pyrogram client)."""
        self._queue(bot).attach(client)

    def detach_all(self) -> None:
        """Kept for callers of the old sender; :meth:`stop` is the graceful way."""
        for queue in self.queues.values():
            queue.client = None

    def bots_for(self, logical: str) -> list[str]:
        return [bot for bot, flow in self.logical_of.items() if flow == logical]

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> int:
        """Replay what the journal still holds (in order), then start sending; returns the count."""
        self._replaying = True
        try:
            entries = await self.journal.pending()
            seen = {e.seq for e in entries}
            for entry in entries:
                self._put(entry, fresh=False)
            for entry in sorted(self._held, key=lambda e: e.seq):
                if entry.seq not in seen:
                    self._put(entry, fresh=True)
            self._held.clear()
        finally:
            self._replaying = False
        self._started = True
        for queue in self.queues.values():
            queue.start()
        if entries:
            log.info("replaying %d reply batch(es) left from the previous run", len(entries))
        return len(entries)

    async def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every queue is empty; False if ``timeout`` ran out (the rest stays journaled)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        for queue in self.queues.values():
            left = None if deadline is None else max(0.0, deadline - loop.time())
            if not await queue.flush(left):
                return False
        return True

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for queue in self.queues.values():
            await queue.stop()
        self._started = False

    # ------------------------------------------------------------------ input side
    def note_input(self, bot: str, chat_id: int) -> None:
        """A user update reached Telegram bot ``bot`` (call before submitting it to the engine).

        What the bot says next in that chat is an answer (a new message, not a follow-up), and a
        flow served by several bots answers this chat through ``bot`` from now on.
        """
        logical = self.logical_of.get(bot, bot)
        self._queue(bot).note_input(chat_id)
        if len(self.bots_for(logical)) > 1 and self._route_cache.get((logical, chat_id)) != bot:
            self._route_cache[(logical, chat_id)] = bot
            self._spawn(self._save_route(logical, chat_id, bot))

    async def _save_route(self, logical: str, chat_id: int, bot: str) -> None:
        try:
            await self.routes.set(logical, chat_id, bot)
        except Exception:
            log.exception("could not save the reply route of a %s chat", logical)

    async def _route(self, logical: str, chat_id: int) -> Optional[str]:
        bots = self.bots_for(logical)
        if len(bots) <= 1:
            return bots[0] if bots else None
        cached = self._route_cache.get((logical, chat_id))
        if cached is None:
            try:
                cached = await self.routes.get(logical, chat_id)
            except Exception:
                log.exception("could not read the reply route of a %s chat", logical)
            if cached not in bots:
                cached = bots[0]
            self._route_cache[(logical, chat_id)] = cached
        return cached

    # ------------------------------------------------------------------ the sink
    async def deliver(self, out: Outgoing) -> None:
        """Engine sink: answer callbacks now, journal and queue the rest; never raises."""
        token = request_id_var.set(out.request_id) if out.request_id else None
        try:
            bot = await self._route(out.bot, out.chat_id)
            if bot is None:
                log.error("no Telegram bot serves %r; dropping %d action(s) for chat %s",
                          out.bot, len(out.actions), out.chat_id)
                return
            for action in out.actions:
                if isinstance(action, AnswerCallback):
                    self._spawn(self._answer(bot, action, out.request_id))
            rest = tuple(a for a in out.actions if not isinstance(a, AnswerCallback))
            if not rest:
                return
            entry = await self.journal.append(bot, out.bot, out.chat_id, rest, out.request_id)
            if self._replaying:
                self._held.append(entry)
            elif self._started:
                self._put(entry, fresh=True)
            else:
                log.info("sender not started: reply for chat %s kept in the journal", out.chat_id)
        except Exception:
            log.exception("could not queue %d reply action(s) for chat %s", len(out.actions), out.chat_id)
        finally:
            if token is not None:
                request_id_var.reset(token)

    def _put(self, entry: JournalEntry, *, fresh: bool) -> None:
        bot = entry.bot if entry.bot in self.queues else None
        if bot is None:
            candidates = self.bots_for(entry.logical)
            bot = candidates[0] if candidates else None
        if bot is None:
            log.error("no Telegram bot for a journaled reply to a %s chat; it stays in the journal", entry.logical)
            return
        self.queues[bot].put(entry, fresh=fresh)

    async def _answer(self, bot: str, action: AnswerCallback, request_id: str) -> None:
        """Answer a callback query right away: outside the queue and its limits (not a message)."""
        token = request_id_var.set(request_id) if request_id else None
        try:
            client = self.queues[bot].client
            if client is None:
                log.info("no running client for bot %s; callback answer dropped", bot)
                return
            await client.answer_callback_query(action.callback_id, text=action.text or None)
        except asyncio.CancelledError:
            raise
        except RPCError as exc:  # an old query, or answered already
            log.info("callback answer on bot %s failed: %s", bot, exc)
        except Exception:
            log.exception("callback answer on bot %s failed", bot)
        finally:
            if token is not None:
                request_id_var.reset(token)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ figures
    def stats(self) -> dict[str, Any]:
        """Per bot: queue depth, send rate, waits, retries, FloodWaits (for ``run.py stats``)."""
        return {bot: queue.stats() for bot, queue in self.queues.items()}

    def health(self) -> dict[str, Any]:
        bots = {bot: queue.health() for bot, queue in self.queues.items()}
        return {"ok": all(b["ok"] for b in bots.values()), "bots": bots}
