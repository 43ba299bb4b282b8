"""State timeouts on APScheduler. The store holds each deadline, so timers survive restarts:
:meth:`Engine.start` re-arms every deadline it finds."""
from __future__ import annotations

import datetime as dt
import logging
from typing import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from .store import Key

log = logging.getLogger(__name__)

FireFn = Callable[[Key, int], Awaitable[None]]


class TimerService:
    """One pending timeout per conversation; a newer one replaces the older."""

    def __init__(self, fire: FireFn, scheduler: AsyncIOScheduler | None = None) -> None:
        self._fire = fire
        self._scheduler = scheduler or AsyncIOScheduler(timezone=dt.timezone.utc)
        self._owns_scheduler = scheduler is None

    @staticmethod
    def job_id(key: Key) -> str:
        return f"timeout:{key[0]}:{key[1]}"

    def start(self) -> None:
        if not self._scheduler.running:
            self._scheduler.start()

    def shutdown(self) -> None:
        if self._owns_scheduler and self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def schedule(self, key: Key, epoch: int, when: float) -> None:
        run_at = dt.datetime.fromtimestamp(when, tz=dt.timezone.utc)
        self._scheduler.add_job(
            self._fire,
            trigger="date",
            run_date=run_at,
            args=[key, epoch],
            id=self.job_id(key),
            replace_existing=True,
            misfire_grace_time=None,  # late is better than never (e.g. after a restart)
            coalesce=True,
        )

    def cancel(self, key: Key) -> None:
        job = self._scheduler.get_job(self.job_id(key))
        if job is not None:
            job.remove()

    def pending(self) -> list[tuple[str, dt.datetime]]:
        return [(job.id, job.next_run_time) for job in self._scheduler.get_jobs()]

    def pending_for(self, key: Key) -> bool:
        return self._scheduler.get_job(self.job_id(key)) is not None
