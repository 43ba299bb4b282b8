"""Incoming side for one bot: Pyrogram handlers -> ``await submit(Update)``.

Every accepted update reaches ``submit`` even if a later reply fails: reply failures are
contained in :class:`~integrations.telegram.sender.TelegramSender`, and anything ``submit``
raises is logged here, so a handler never propagates into Pyrogram's dispatcher. The transport
counts handlers in flight, so shutdown can stop accepting and wait for the ones already
running before the engine drains.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from typing import Any, AsyncIterator, Awaitable, Callable, Optional

from pyrogram import Client, StopPropagation, raw, types
from pyrogram.handlers import CallbackQueryHandler, MessageHandler, RawUpdateHandler

from engine import Update, VideoNote
from integrations.foundation.logs import request_id_var
from integrations.telegram.mapping import location_from_raw, map_callback, map_message

log = logging.getLogger(__name__)

Submit = Callable[[Update], Awaitable[object]]  # Engine.submit returns its actions; ignored
_NEW_MESSAGE = (raw.types.UpdateNewMessage, raw.types.UpdateNewChannelMessage)


class BotTransport:
    """Feeds one bot's updates to the engine; ``bot`` is the flow's bot name ("teacher")."""

    def __init__(self, bot: str, client: Client, submit: Submit, *, video_max_bytes: int):
        self.bot = bot
        self.client = client
        self.submit = submit
        self.video_max_bytes = video_max_bytes
        self.accepting = True
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def install(self) -> None:
        """Register the handlers (call before or after ``client.start()``)."""
        self.client.add_handler(RawUpdateHandler(self.on_raw), group=-1)
        self.client.add_handler(MessageHandler(self.on_message), group=0)
        self.client.add_handler(CallbackQueryHandler(self.on_callback), group=0)

    @property
    def bot_username(self) -> Optional[str]:
        me = getattr(self.client, "me", None)
        return getattr(me, "username", None)

    # -- handlers (signature fixed by Pyrogram: client first)

    async def on_raw(self, client: Client, update: Any, users: dict, chats: dict) -> None:
        """Locations, read from raw TL (Pyrogram drops live ones and the accuracy)."""
        if not isinstance(update, _NEW_MESSAGE) or not isinstance(update.message, raw.types.Message):
            return
        location = location_from_raw(update.message.media)
        if location is None:
            return
        async with self._handling() as accepted:
            if accepted:
                message = await types.Message._parse(client, update.message, users, chats, replies=0)
                mapped = map_message(message, self.bot, bot_username=self.bot_username, location=location)
                await self._submit(mapped)
        raise StopPropagation  # the parsed MessageHandler must not submit it a second time

    async def on_message(self, client: Client, message: types.Message) -> None:
        async with self._handling() as accepted:
            if not accepted:
                return
            data, size = b"", None
            if message.video_note is not None:
                data, size = await self._download_video_note(client, message)
            mapped = map_message(message, self.bot, bot_username=self.bot_username, video_data=data)
            if mapped is not None and size is not None and isinstance(mapped.payload, VideoNote):
                mapped = dataclasses.replace(mapped, payload=dataclasses.replace(mapped.payload, file_size=size))
            await self._submit(mapped)

    async def on_callback(self, client: Client, query: types.CallbackQuery) -> None:
        async with self._handling() as accepted:
            if accepted:
                await self._submit(map_callback(query, self.bot))

    # -- helpers

    async def _download_video_note(self, client: Client, message: types.Message) -> tuple[bytes, Optional[int]]:
        """Bytes in memory (never a file), or empty when too large or the download failed."""
        note = message.video_note
        if (note.file_size or 0) > self.video_max_bytes:
            log.info("video note of %s bytes exceeds the %s byte cap; not downloading",
                     note.file_size, self.video_max_bytes)
            return b"", None
        try:
            buffer = await client.download_media(message, in_memory=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("video note download failed")
            return b"", None
        if buffer is None:  # Pyrogram swallows transfer errors and returns None
            log.warning("video note download returned nothing")
            return b"", None
        data = bytes(buffer.getbuffer())
        if len(data) > self.video_max_bytes:
            log.info("downloaded video note is %s bytes, over the cap; discarding", len(data))
            return b"", len(data)
        return data, None

    async def _submit(self, update: Optional[Update]) -> None:
        if update is None:
            return
        if request_id_var.get() != "-":
            update = dataclasses.replace(update, request_id=request_id_var.get())
        token = request_id_var.set(update.request_id)
        try:
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

    async def wait_idle(self) -> None:
        """Return once no handler is running (call after :meth:`stop_accepting`)."""
        await self._idle.wait()
