"""Incoming side for one Telegram bot: raw MTProto updates -> ``await submit(Update)``.

One raw handler takes every update, so the transport knows when an update with a ``pts`` has
been *handled* (what :class:`~integrations.telegram.catchup.UpdateTracker` needs to persist a
safe state), and the start-up catch-up feeds missed updates through the very same path, in
order. Messages and callback queries are parsed with the library's own parsers
(``client.dispatcher.update_parsers``; the dispatcher's parse is reused, not repeated) and
mapped in :mod:`integrations.telegram.mapping`;
locations are read from the raw media because pyrofork, like Pyrogram before it, drops live
locations and the GPS accuracy.

Every accepted update reaches ``submit`` even if a later reply fails (replies are queued by
:class:`~integrations.telegram.sender.TelegramSender`, never sent here), and anything
``submit`` raises is logged here, so a handler never propagates into the dispatcher. Live
updates wait until the catch-up has finished (:meth:`open`), then skip what it already
handled. The transport counts handlers in flight, so shutdown can stop accepting and wait for
the ones already running before the engine drains.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from typing import Any, AsyncIterator, Awaitable, Callable, Optional

from pyrogram import Client, StopPropagation, raw, types
from pyrogram.handlers import RawUpdateHandler

from engine import Update, VideoNote
from integrations.foundation.logs import request_id_var
from integrations.telegram.catchup import UpdateTracker
from integrations.telegram.mapping import location_from_raw, map_callback, map_message

log = logging.getLogger(__name__)

Submit = Callable[[Update], Awaitable[object]]  # Engine.submit returns its actions; ignored
OnInput = Callable[[str, int], None]  # (Telegram bot name, chat id): a user update arrived
_NEW_MESSAGE = (raw.types.UpdateNewMessage, raw.types.UpdateNewChannelMessage)
_CALLBACK = (raw.types.UpdateBotCallbackQuery,)
_MAX_KEPT = 10_000


class BotTransport:
    """Feeds one Telegram bot's updates to the engine.

    ``bot`` names the Telegram bot ("student-2"); ``flow_bot`` the flow it serves ("student",
    the :attr:`Update.bot` the engine sees; defaults to ``bot``). ``on_input`` is told about every
    accepted user update before it is submitted (the sender routes and paces replies with it).
    """

    def __init__(self, bot: str, client: Client, submit: Submit, *, video_max_bytes: int,
                 flow_bot: Optional[str] = None, on_input: Optional[OnInput] = None,
                 tracker: Optional[UpdateTracker] = None):
        self.bot = bot
        self.flow_bot = flow_bot or bot
        self.client = client
        self.submit = submit
        self.video_max_bytes = video_max_bytes
        self.on_input = on_input
        self.tracker = tracker or UpdateTracker()
        self.accepting = True
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._open = asyncio.Event()
        self._open.set()
        self._parsers: dict[type, Any] = {}  # the library's own parsers, for updates it did not parse
        self._parsed: dict[int, tuple[Any, Any]] = {}  # id(raw update) -> (raw update, the dispatcher's parse)

    def install(self) -> None:
        """Register the raw handler (call before or after ``client.start()``)."""
        self._keep_parses()
        self.client.add_handler(RawUpdateHandler(self.on_raw), group=-1)

    def _keep_parses(self) -> None:
        """Reuse the dispatcher's parse in :meth:`on_raw` instead of parsing a second time.

        pyrofork's dispatcher parses every update it has a parser for before it calls any
        handler, raw handlers included, and drops the result for them; parsing again here
        doubled the cost of parsing each message. The parsers of the updates this transport
        handles are wrapped to keep their result for :meth:`on_raw`, which takes it at once.
        """
        parsers = getattr(getattr(self.client, "dispatcher", None), "update_parsers", None)
        if not isinstance(parsers, dict):
            return
        for kind in (*_NEW_MESSAGE, *_CALLBACK):
            parse = parsers.get(kind)
            if parse is None or kind in self._parsers:
                continue
            self._parsers[kind] = parse
            parsers[kind] = self._keeping(parse)

    def _keeping(self, parse: Any) -> Any:
        kept = self._parsed

        async def keep(update: Any, users: dict, chats: dict) -> Any:
            result = await parse(update, users, chats)
            if len(kept) > _MAX_KEPT:  # cannot happen while on_raw runs for every packet; stay bounded
                kept.clear()
            kept[id(update)] = (update, result)
            return result

        return keep

    def hold(self) -> None:
        """Make live updates wait (until :meth:`open`) while the catch-up runs."""
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    @property
    def bot_username(self) -> Optional[str]:
        me = getattr(self.client, "me", None)
        return getattr(me, "username", None)

    # -- the handler (signature fixed by Pyrogram: client first)

    async def on_raw(self, client: Client, update: Any, users: dict, chats: dict) -> None:
        """Every live update. Handled ones stop here; others go on to any later handler."""
        kept = self._parsed.pop(id(update), None)
        parse_result = kept[1] if kept is not None and kept[0] is update else None
        await self._open.wait()
        if self.tracker.is_old(update):
            log.debug("update already handled by the catch-up; skipped")
            raise StopPropagation
        if not self._handles(update):
            self.tracker.observe(update)
            return
        token = self.tracker.begin(update)
        try:
            await self.handle_raw(update, users, chats, parse_result)
        finally:
            self.tracker.end(token)
        raise StopPropagation

    async def handle_caught_up(self, update: Any, users: dict, chats: dict) -> None:
        """An update fetched by the catch-up (its state is tracked by the catch-up itself)."""
        if self._handles(update):
            await self.handle_raw(update, users, chats)

    @staticmethod
    def _handles(update: Any) -> bool:
        return (isinstance(update, _NEW_MESSAGE) and isinstance(update.message, raw.types.Message)) \
            or isinstance(update, _CALLBACK)

    async def handle_raw(self, update: Any, users: dict, chats: dict,
                         parse_result: Optional[tuple[Any, Any]] = None) -> None:
        """Parse with the library's parser (unless ``parse_result`` is its answer already), map, submit."""
        async with self._handling() as accepted:
            if not accepted:
                return
            parser = self._parsers.get(type(update)) or self.client.dispatcher.update_parsers.get(type(update))
            if parser is None:
                return
            try:
                parsed, _ = parse_result if parse_result is not None else await parser(update, users, chats)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not parse a %s update", type(update).__name__)
                return
            if isinstance(parsed, types.CallbackQuery):
                await self._submit(map_callback(parsed, self.flow_bot))
            elif isinstance(parsed, types.Message):
                await self._message(parsed, location_from_raw(update.message.media))

    async def on_message(self, client: Client, message: types.Message) -> None:
        """A parsed message (kept for callers and tests that have one)."""
        async with self._handling() as accepted:
            if accepted:
                await self._message(message, None)

    async def on_callback(self, client: Client, query: types.CallbackQuery) -> None:
        async with self._handling() as accepted:
            if accepted:
                await self._submit(map_callback(query, self.flow_bot))

    async def _message(self, message: types.Message, location: Any) -> None:
        data, size = b"", None
        if location is None and message.video_note is not None:
            data, size = await self._download_video_note(message)
        mapped = map_message(message, self.flow_bot, bot_username=self.bot_username, location=location,
                             video_data=data)
        if mapped is not None and size is not None and isinstance(mapped.payload, VideoNote):
            mapped = dataclasses.replace(mapped, payload=dataclasses.replace(mapped.payload, file_size=size))
        await self._submit(mapped)

    # -- helpers

    async def _download_video_note(self, message: types.Message) -> tuple[bytes, Optional[int]]:
        """Bytes in memory (never a file), or empty when too large or the download failed."""
        note = message.video_note
        if (note.file_size or 0) > self.video_max_bytes:
            log.info("video note of %s bytes exceeds the %s byte cap; not downloading",
                     note.file_size, self.video_max_bytes)
            return b"", None
        try:
            buffer = await self.client.download_media(message, in_memory=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("video note download failed")
            return b"", None
        if buffer is None:  # the library swallows transfer errors and returns None
            log.warning("video note download returned nothing")
            return b"", None
        data = bytes(buffer.getbuffer())
        if len(data) > self.video_max_bytes:
            log.info("downloaded video note is %s bytes, over the cap; discarding", len(data))
            return b"", len(data)
        return data, None

    async def submit_update(self, update: Update) -> None:
        """Submit an already mapped update as this bot's (what every handler ends with)."""
        async with self._handling() as accepted:
            if accepted:
                await self._submit(dataclasses.replace(update, bot=self.flow_bot))

    async def _submit(self, update: Optional[Update]) -> None:
        if update is None:
            return
        if request_id_var.get() != "-":
            update = dataclasses.replace(update, request_id=request_id_var.get())
        token = request_id_var.set(update.request_id)
        try:
            if self.on_input is not None:
                self.on_input(self.bot, update.chat_id)
            log.debug("update %s from chat %s (bot %s)", update.kind, update.chat_id, self.bot)
            await self.submit(update)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("engine failed on a %s update from chat %s", update.kind, update.chat_id)
        finally:
            request_id_var.reset(token)

    @contextlib.asynccontextmanager
    async def _handling(self) -> AsyncIterator[bool]:
        """Yield whether the update is accepted, counting it as in flight while it is handled."""
        if not self.accepting:
            log.info("shutting down: ignoring an update for bot %s", self.bot)
            yield False
            return
        self._in_flight += 1
        self._idle.clear()
        # A request id from the first moment, so download logs already carry it.
        token = request_id_var.set(uuid.uuid4().hex[:12])
        try:
            yield True
        finally:
            request_id_var.reset(token)
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def stop_accepting(self) -> None:
        self.accepting = False
        self._open.set()  # held updates see "not accepting" and return

    async def wait_idle(self) -> None:
        """Return once no handler is running (call after :meth:`stop_accepting`)."""
        await self._idle.wait()
