"""Roster backends (local MongoDB roster or the external API) behind one interface.

Import lazily: :mod:`integrations.api` depends on :mod:`integrations.roster.base`, and the
http backend depends on the API client, so nothing heavy is imported here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from integrations.roster.base import RosterBackend
    from integrations.settings import Settings


def make_roster(settings: "Settings | None" = None, **client_options: object) -> "RosterBackend":
    """The backend chosen by ROSTER_BACKEND: ``local`` (default) or ``http``.

    ``client_options`` go to :class:`~integrations.api.client.AttendanceApiClient` (http only).
    The database must already be connected (:func:`integrations.db.connect_db`).
    """
    if settings is None:
        from integrations.settings import get_settings

        settings = get_settings()
    if settings.roster_backend == "http":
        from integrations.api.client import AttendanceApiClient
        from integrations.roster.http import HttpRoster

        return HttpRoster(AttendanceApiClient.from_settings(settings, **client_options))
    from integrations.roster.local import LocalRoster

    return LocalRoster()
