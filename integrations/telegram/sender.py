"""Render engine reply actions as Pyrogram calls: rate-limited, FloodWait-aware, never raising.

A failed send is logged (the request id comes from the log record via the contextvar, never a
token) and the remaining actions still go out: the engine has already committed the step, so
stopping halfway would only lose more. Text is sent with parse mode disabled because flow texts
are plain and may contain ``*``/``_`` (e.g. student ids) that Markdown would swallow.
"""
from __future__ import annotations

import asyncio
import io
import logging
from typing import Any, Awaitable, Callable, Mapping, Optional, TypeVar

from pyrogram import Client, enums
from pyrogram.errors import FloodWait, MessageNotModified, RPCError

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
from integrations.telegram.markup import inline_keyboard, markup_for
from integrations.telegram.ratelimit import SendRateLimiter

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_TEXT = 4096  # Telegram's limit for one message, in characters


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


class TelegramSender:
    """Delivers :class:`Outgoing` replies through the client registered for ``out.bot``."""

    def __init__(
        self,
        clients: Optional[Mapping[str, Client]] = None,
        *,
        per_chat_rate: float = 1.0,
        global_rate: float = 30.0,
        max_flood_wait: float = 600.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        parse_mode: enums.ParseMode = enums.ParseMode.DISABLED,
    ):
        self.per_chat_rate = per_chat_rate
        self.global_rate = global_rate
        self.max_flood_wait = max_flood_wait
        self.sleep = sleep
        self.parse_mode = parse_mode
        self.clients: dict[str, Client] = {}
        self.limiters: dict[str, SendRateLimiter] = {}
        for bot, client in (clients or {}).items():
            self.attach(bot, client)

    def attach(self, bot: str, client: Client) -> None:
        """Route ``bot``'s replies through ``client``, with that bot's own rate limits."""
        self.clients[bot] = client
        self.limiters.setdefault(bot, SendRateLimiter(self.per_chat_rate, self.global_rate))

    def detach_all(self) -> None:
        """Stop sending (called once the clients are stopped); later replies are logged and dropped."""
        self.clients.clear()

    async def deliver(self, out: Outgoing) -> list[Optional[int]]:
        """Perform ``out.actions`` in order; returns the sent/edited message ids (None on failure)."""
        token = request_id_var.set(out.request_id) if out.request_id else None
        try:
            client = self.clients.get(out.bot)
            if client is None:
                log.error("no running Telegram client for bot %r; dropping %d action(s) for chat %s",
                          out.bot, len(out.actions), out.chat_id)
                return [None] * len(out.actions)
            results: list[Optional[int]] = []
            for action in out.actions:
                results.append(await self._perform_logged(out.bot, client, out.chat_id, action))
            return results
        finally:
            if token is not None:
                request_id_var.reset(token)

    async def _perform_logged(self, bot: str, client: Client, chat_id: int, action: ReplyAction) -> Optional[int]:
        name = type(action).__name__
        try:
            return await self._perform(bot, client, chat_id, action)
        except asyncio.CancelledError:
            raise
        except MessageNotModified:
            log.debug("%s to chat %s: message not modified", name, chat_id)
            return getattr(action, "message_id", None)
        except RPCError as exc:  # Telegram refused: blocked bot, old callback, deleted message...
            log.warning("%s to chat %s (bot %s) failed: %s", name, chat_id, bot, exc)
        except Exception:
            log.exception("%s to chat %s (bot %s) failed", name, chat_id, bot)
        return None

    async def _perform(self, bot: str, client: Client, chat_id: int, action: ReplyAction) -> Optional[int]:
        limiter = self.limiters[bot]
        if isinstance(action, AnswerCallback):
            # Not a chat message and time-critical (the button spins until answered): no limiter.
            await self._call(lambda: client.answer_callback_query(action.callback_id, text=action.text or None))
            return None
        await limiter.acquire(chat_id)
        if isinstance(action, SendText):
            parts = split_text(action.text)
            message = None
            for i, part in enumerate(parts):
                if i:
                    await limiter.acquire(chat_id)
                markup = markup_for(action) if i == len(parts) - 1 else None
                message = await self._call(lambda part=part, markup=markup: client.send_message(
                    chat_id, part, parse_mode=self.parse_mode, reply_markup=markup,
                    disable_web_page_preview=True))
            return getattr(message, "id", None)
        if isinstance(action, EditText):
            markup = inline_keyboard(action.inline) if action.inline else None
            message = await self._call(lambda: client.edit_message_text(
                chat_id, action.message_id, action.text, parse_mode=self.parse_mode,
                reply_markup=markup, disable_web_page_preview=True))
            return getattr(message, "id", action.message_id)
        if isinstance(action, DeleteMessage):
            await self._call(lambda: client.delete_messages(chat_id, action.message_id))
            return None
        if isinstance(action, SendDocument):
            def upload() -> Awaitable[Any]:
                document = io.BytesIO(action.data)  # fresh each try: an upload consumes the stream
                document.name = action.filename
                return client.send_document(chat_id, document, caption=action.caption,
                                            file_name=action.filename, parse_mode=self.parse_mode)
            message = await self._call(upload)
            return getattr(message, "id", None)
        raise TypeError(f"unknown reply action {type(action).__name__}")

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call``; on FloodWait sleep the requested time and retry exactly once."""
        try:
            return await call()
        except FloodWait as exc:
            wait = float(exc.value or 0)
            if wait > self.max_flood_wait:
                log.error("FloodWait of %ss exceeds the %ss cap; giving up", wait, self.max_flood_wait)
                raise
            log.warning("FloodWait: sleeping %ss before one retry", wait)
            await self.sleep(wait)
            return await call()
