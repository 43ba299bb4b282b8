"""Run the teacher bot and the student bot(s), and stop them gracefully.

Start-up order: the sender replays the reply journal (what a previous run had not sent), each
client starts and is attached to the sender, then each bot catches up on what arrived while it
was down (:mod:`integrations.telegram.catchup`) before its live updates are handled.

Shutdown order matters: stop accepting updates, let handlers already running finish handing
their update to the engine, ``await drain()`` (the engine flushes in-flight steps and
verifications, which still produce replies), let the send queues empty (what does not fit in
the remaining time stays in the journal for the next start), save the update states, then stop
the clients. A second SIGTERM/SIGINT during the drain is ignored (logged): orchestrators re-send
signals, and cutting a drain short is what loses attendance marks. A drain that exceeds
``drain_timeout`` is abandoned with an error so the process still exits.

Clients are built inside :meth:`run` because the client library binds
``asyncio.get_event_loop()`` at construction; building them before ``asyncio.run`` would tie
them to a different loop.
"""
from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any, Awaitable, Callable, Optional, Union

from pyrogram import Client

from engine import Outgoing
from integrations.settings import Settings
from integrations.telegram.bots import ChatRoutes, MemoryChatRoutes
from integrations.telegram.catchup import (
    CatchUpResult,
    MemoryUpdateStateStore,
    StateSaver,
    UpdateStateStore,
    UpdateTracker,
    catch_up,
)
from integrations.telegram.config import TelegramConfig, require_telegram_settings
from integrations.telegram.health import heartbeat_path, write_heartbeat
from integrations.telegram.journal import MemoryReplyJournal, ReplyJournal
from integrations.telegram.mongo_state import mongo_stores
from integrations.telegram.sender import TelegramSender
from integrations.telegram.startup import explain_start_failure
from integrations.telegram.transport import BotTransport, Submit

log = logging.getLogger(__name__)

Drain = Callable[[], Awaitable[object]]
ClientFactory = Callable[[str, TelegramConfig], Client]
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TelegramStartError(RuntimeError):
    """A bot could not connect or authorise; the message names the bot, never its token."""


def default_client_factory(in_memory: bool = False) -> ClientFactory:
    """The real clients: ``workers`` set explicitly; FloodWaits always reach the send queue
    (``sleep_threshold=0``: the library would otherwise sleep inside one send, unseen by the
    queue); the library's own catch-up off (``skip_updates=True``; ours is ordered and safe)."""
    def build(bot: str, config: TelegramConfig) -> Client:
        return Client(
            name=f"attendance-{bot}",
            api_id=config.api_id,
            api_hash=config.api_hash,
            bot_token=config.bot_tokens[bot],
            workdir=str(config.session_dir),
            in_memory=in_memory,
            workers=config.workers,
            skip_updates=True,
            sleep_threshold=0,
        )
    return build


def default_stores(config: TelegramConfig) -> dict[str, Any]:
    """Journal, update states and routes: in MongoDB with ``STORE=mongo``, else in memory."""
    if config.store == "mongo":
        return mongo_stores()
    return {"journal": MemoryReplyJournal(), "state_store": MemoryUpdateStateStore(), "routes": MemoryChatRoutes()}


class TelegramRuntime:
    """Every bot's client and transport, one sender, the catch-up, and the signal-driven lifecycle.

    Wire it as ``runtime = TelegramRuntime(config, submit=..., drain=...)``, give the engine
    ``runtime.deliver``, then ``await runtime.run()`` (returns after a graceful stop).
    ``journal``, ``state_store`` and ``routes`` default to MongoDB with ``STORE=mongo`` (see
    :func:`default_stores`); :meth:`stats` and :meth:`health` report the queues.
    ``on_connected`` is called with :meth:`usernames` once every bot has connected, before the
    catch-up and the live updates (e.g. ``StudentBots.set_usernames``).
    """

    def __init__(
        self,
        config: Union[TelegramConfig, Settings],
        submit: Submit,
        drain: Drain,
        *,
        in_memory: bool = False,
        drain_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        heartbeat_interval: float = 30.0,
        handle_signals: bool = True,
        client_factory: Optional[ClientFactory] = None,
        sender: Optional[TelegramSender] = None,
        journal: Optional[ReplyJournal] = None,
        state_store: Optional[UpdateStateStore] = None,
        routes: Optional[ChatRoutes] = None,
        on_connected: Optional[Callable[[dict[str, str]], None]] = None,
    ):
        self.config = config if isinstance(config, TelegramConfig) else require_telegram_settings(config)
        self.submit = submit
        self.drain = drain
        self.in_memory = in_memory
        self.drain_timeout = drain_timeout
        self.stop_timeout = stop_timeout
        self.heartbeat_interval = heartbeat_interval
        self.handle_signals = handle_signals
        self.client_factory = client_factory or default_client_factory(in_memory)
        self.on_connected = on_connected
        stores = default_stores(self.config) if None in (journal, state_store, routes) and sender is None \
            else {}
        self.state_store: UpdateStateStore = state_store or stores.get("state_store") or MemoryUpdateStateStore()
        self.sender = sender or TelegramSender(
            bots=self.config.flow_of or {b: b for b in self.config.bot_tokens},
            per_chat_rate=self.config.send_rate_per_chat, global_rate=self.config.send_rate_global,
            chat_burst=self.config.chat_burst, senders=self.config.senders,
            max_attempts=self.config.max_attempts,
            journal=journal or stores.get("journal"), routes=routes or stores.get("routes"),
        )
        self.clients: dict[str, Client] = {}
        self.transports: dict[str, BotTransport] = {}
        self.savers: dict[str, StateSaver] = {}
        self.caught_up: dict[str, CatchUpResult] = {}
        self.started = asyncio.Event()
        self.drained = False
        self._stop = asyncio.Event()
        self._stopping = False
        self._signals: list[signal.Signals] = []

    async def deliver(self, out: Outgoing) -> list[Optional[int]]:
        """The engine's reply sink; safe to call before start/after stop (logs and drops)."""
        return await self.sender.deliver(out)

    def request_stop(self, reason: str = "requested") -> None:
        """Begin a graceful stop (what a signal does); later calls are ignored."""
        if self._stopping:
            log.info("already stopping; ignoring %s", reason)
            return
        self._stopping = True
        log.info("stopping Telegram runtime (%s)", reason)
        self._stop.set()

    async def run(self) -> None:
        """Start both bots, serve until a stop is requested, shut down gracefully, return."""
        await self.start()
        beat = asyncio.create_task(self._heartbeat()) if self.heartbeat_interval > 0 else None
        try:
            await self._stop.wait()
        finally:
            if beat is not None:
                beat.cancel()
            await self.shutdown()

    async def start(self) -> None:
        if not self.in_memory:
            self.config.session_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._install_signal_handlers()
        await self.sender.start()
        bot = ""
        try:
            for bot in self.config.bot_tokens:
                client = self.client_factory(bot, self.config)
                transport = BotTransport(bot, client, self.submit, video_max_bytes=self.config.video_max_bytes,
                                         flow_bot=self.config.flow_bot(bot), on_input=self.sender.note_input,
                                         tracker=UpdateTracker())
                if self.config.catch_up:
                    transport.hold()
                transport.install()
                self.clients[bot], self.transports[bot] = client, transport
                await client.start()
                self.sender.attach(bot, client)
                me = getattr(client, "me", None)
                log.info("%s bot started as @%s", bot, getattr(me, "username", "?"))
        except BaseException as exc:
            log.error("Telegram start-up failed (%s bot); stopping the clients already started", bot)
            await self.sender.stop()
            await self._stop_clients()
            self._remove_signal_handlers()
            if isinstance(exc, Exception):
                # The library reports an unreachable Telegram as e.g. KeyError(0) or OSError.
                raise TelegramStartError(explain_start_failure(bot, exc)) from exc
            raise
        if self.on_connected is not None:  # before the catch-up: its updates may need the names
            try:
                self.on_connected(self.usernames())
            except Exception:
                log.exception("on_connected failed")
        for bot, transport in self.transports.items():
            if self.config.catch_up:
                await self._catch_up(bot, transport)
            transport.open()
        self.started.set()

    async def _catch_up(self, bot: str, transport: BotTransport) -> None:
        """Answer what ``bot`` missed while down, then keep its update state saved."""
        bot_id = self.config.bot_id(bot)
        try:
            self.caught_up[bot] = await catch_up(self.clients[bot].invoke, transport.handle_caught_up,
                                                 self.state_store, bot_id, transport.tracker)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("catch-up of the %s bot failed; serving live updates only", bot)
        self.savers[bot] = StateSaver(self.state_store, bot_id, transport.tracker)

    async def shutdown(self) -> None:
        """Stop accepting, finish running handlers, drain the engine, stop the clients.

        Handlers and drain share one ``drain_timeout`` budget, so the whole stop fits in the
        container's grace period.
        """
        self._stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_timeout
        for transport in self.transports.values():
            transport.stop_accepting()
        try:
            await asyncio.wait_for(
                asyncio.gather(*(t.wait_idle() for t in self.transports.values())), self.drain_timeout
            )
        except asyncio.TimeoutError:
            log.error("handlers still running after %ss; draining anyway", self.drain_timeout)
        try:
            await asyncio.wait_for(self.drain(), max(0.1, deadline - loop.time()))
            self.drained = True
            log.info("engine drained")
        except asyncio.TimeoutError:
            log.error("engine drain exceeded %ss; stopping without it", self.drain_timeout)
        except Exception:
            log.exception("engine drain failed")
        if not await self.sender.flush(max(0.1, deadline - loop.time())):
            depth = sum(s["depth"] + s["in_flight"] for s in self.sender.stats().values())
            log.warning("%d reply message(s) not sent before the stop; they stay in the journal", depth)
        await self.sender.stop()
        for saver in self.savers.values():
            await saver.close()
        await self._stop_clients()
        self._remove_signal_handlers()
        if self.heartbeat_interval > 0:  # a stopped runtime must not look healthy to the next check
            heartbeat_path(self.config.session_dir).unlink(missing_ok=True)
        log.info("Telegram runtime stopped")

    async def _stop_clients(self) -> None:
        for bot, client in self.clients.items():
            if not getattr(client, "is_connected", True):
                continue
            try:
                await asyncio.wait_for(client.stop(), self.stop_timeout)
            except Exception as exc:  # already stopped, network gone: nothing left to save
                log.warning("stopping the %s client: %s", bot, type(exc).__name__)

    def stats(self) -> dict[str, Any]:
        """Per bot: connection, updates in flight, and its send queue (depth, rate, waits...)."""
        queues = self.sender.stats()
        return {bot: {"connected": bool(getattr(self.clients.get(bot), "is_connected", False)),
                      "updates_in_flight": self.transports[bot].in_flight if bot in self.transports else 0,
                      "caught_up": self.caught_up[bot].handled if bot in self.caught_up else None,
                      **queues.get(bot, {})}
                for bot in self.config.bot_tokens}

    def health(self) -> dict[str, Any]:
        """``ok`` when every bot is connected and no send queue is stalled."""
        queues = self.sender.health()["bots"]
        bots = {bot: {"connected": bool(getattr(self.clients.get(bot), "is_connected", False)),
                      **queues.get(bot, {})} for bot in self.config.bot_tokens}
        return {"ok": all(b["connected"] and b.get("ok", False) for b in bots.values()), "bots": bots}

    def usernames(self) -> dict[str, str]:
        """Telegram bot name -> @username (known once started), e.g. for the teacher's message."""
        return {bot: getattr(getattr(c, "me", None), "username", "") or "" for bot, c in self.clients.items()}

    async def _heartbeat(self) -> None:
        path = heartbeat_path(self.config.session_dir)
        while True:
            try:
                write_heartbeat(path, {b: bool(getattr(c, "is_connected", False)) for b, c in self.clients.items()},
                                queues=self.sender.health()["bots"])
            except OSError as exc:
                log.warning("cannot write heartbeat: %s", exc)
            await asyncio.sleep(self.heartbeat_interval)

    def _install_signal_handlers(self) -> None:
        if not self.handle_signals:
            return
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            try:
                loop.add_signal_handler(sig, self.request_stop, sig.name)
                self._signals.append(sig)
            except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
                log.warning("cannot install a %s handler; use request_stop()", sig.name)

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        while self._signals:
            loop.remove_signal_handler(self._signals.pop())


async def serve_engine(config: Union[TelegramConfig, Settings], engine: Any, **runtime_options: Any) -> None:
    """Run the bots for an engine until SIGTERM/SIGINT, then drain and stop it; for ``run.py``.

    ``engine`` needs ``add_sink``, ``start``, ``submit``, ``drain`` and ``stop`` (as
    :class:`engine.runtime.Engine` has). Returns normally after a graceful stop, so the process
    exits 0.
    """
    runtime = TelegramRuntime(config, submit=engine.submit, drain=engine.drain, **runtime_options)
    engine.add_sink(runtime.deliver)
    await engine.start()
    try:
        await runtime.run()
    finally:
        await engine.stop()
