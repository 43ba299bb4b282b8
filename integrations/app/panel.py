"""The web panel's wiring in the app: its context from an app or from settings, and waiting for a signal."""
from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Optional

from integrations.app.assembly import App
from integrations.attendance.audit import AuditLog
from integrations.attendance.reports import ReportScheduler
from integrations.hooks.registry import build_registry
from integrations.presence.faces.base import FaceVerifier
from integrations.roster.service import RosterService
from integrations.settings import Settings
from integrations.web.context import WebContext


def web_context(settings: Settings, roster: RosterService, verifier: FaceVerifier,
                reports: Optional[ReportScheduler] = None, audit: Optional[AuditLog] = None) -> WebContext:
    """The panel's services; the hooks' registry is passed so the flows page can check flows."""
    return WebContext(settings, roster, verifier, reports, flows_dir=settings.flows_dir, registry=build_registry(),
                      audit=audit)


def context_for_app(app: App) -> WebContext:
    """The panel inside a running app (``run``, ``demo --web``): its roster, verifier and reports."""
    return web_context(app.settings, app.services.roster, app.verifier, app.services.reports,
                       app.services.audit)


async def wait_for_signal() -> None:
    """Until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
