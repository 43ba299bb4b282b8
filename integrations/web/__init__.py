"""The web admin panel: an ASGI app (Starlette, Jinja2) in the same process and loop as the bots.

A layer beside ``hooks``: it may use attendance, roster, storage, presence and below, never the
hooks or the app. Reads come straight from storage (off the event loop); every write goes
through :class:`~integrations.roster.service.RosterService`. See docs/web.md.
"""
