"""Serving the panel with uvicorn inside the running event loop, beside the bots.

The bots' runtime owns SIGINT/SIGTERM; uvicorn must not install its own handlers (they would
replace the bots' graceful stop), so :class:`PanelServer` keeps them out and the host stops it.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Iterator, Optional

import uvicorn

from integrations.web import constants as C
from integrations.web.app import create_app
from integrations.web.context import WebContext

log = logging.getLogger(__name__)


class PanelServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the process it runs in."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Panel:
    """The running panel: ``start()`` in a loop, ``stop()`` to end live streams and the server."""

    def __init__(self, ctx: WebContext, host: str, port: int) -> None:
        self.ctx = ctx
        config = uvicorn.Config(create_app(ctx), host=host, port=port, log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=int(C.SHUTDOWN_GRACE_S),
                                proxy_headers=True, forwarded_allow_ips="127.0.0.1", server_header=False)
        self.server = PanelServer(config)
        self.host, self.requested_port = host, port
        self.sock: Optional[socket.socket] = None
        self.task: Optional[asyncio.Task[None]] = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self.sock.getsockname()[1]) if self.sock is not None else self.requested_port

    def _bind(self) -> socket.socket:
        """Bind here, not in uvicorn: its bind error is a SystemExit that would end the bots too."""
        family, kind, proto, _, address = socket.getaddrinfo(self.host, self.requested_port,
                                                             type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(True)
        return sock

    async def start(self) -> "Panel":
        """Start serving; returns once the socket listens (OSError if the address is taken)."""
        self.sock = self._bind()
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]), name="web-panel")
        while not self.server.started:
            if self.task.done():
                self.task.result()  # raises the bind error
                raise RuntimeError("the web panel stopped while starting")
            await asyncio.sleep(0.02)
        log.info("web panel on http://%s:%d", self.host, self.port)
        return self

    async def stop(self) -> None:
        self.ctx.stopping.set()
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self.task), C.SHUTDOWN_GRACE_S + 2)
            self.task = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    async def wait(self) -> None:
        """Until the server ends (stop() or an error)."""
        if self.task is not None:
            await self.task
