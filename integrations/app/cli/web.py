"""`python run.py web` (the admin panel alone) and `python run.py admin create|password EMAIL`."""
from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any, Optional

from integrations.app.assembly import make_roster_backend
from integrations.app.cli.common import settings_or_exit
from integrations.app.cli.operations import database
from integrations.app.panel import wait_for_signal, web_context
from integrations.foundation import crypto
from integrations.foundation.errors import DUPLICATE, RosterError
from integrations.foundation.logs import configure_logging
from integrations.presence.faces import make_verifier
from integrations.roster import records
from integrations.roster.service import RosterService
from integrations.settings import Settings
from integrations.web.forms import EMAIL, MIN_PASSWORD
from integrations.web.server import Panel


async def _serve_web(settings: Settings, host: str, port: int) -> int:
    roster = RosterService(make_roster_backend(settings))
    verifier = make_verifier(settings)
    try:
        panel = await Panel(web_context(settings, roster, verifier), host, port).start()
    except OSError as exc:
        print(f"cannot serve the panel on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"web panel: http://{host}:{panel.port}/  (Ctrl-C stops; the bots are not running in this process)")
    try:
        await wait_for_signal()
    finally:
        await panel.stop()
        roster.close()
        verifier.close()
    return 0


def cmd_web(args: argparse.Namespace) -> int:
    settings = settings_or_exit()
    configure_logging(settings.log_level, json=settings.log_json)
    try:
        crypto.init_secret_box(settings)
    except crypto.SecretKeyError as exc:
        print(exc, file=sys.stderr)
        return 1
    with database(settings) as db:
        assert db is not None
        print(f"database: {db.description}")
        return asyncio.run(_serve_web(settings, args.host or settings.web_host,
                                      settings.web_port if args.port is None else args.port))


def read_new_password(prompt: Any = getpass.getpass) -> Optional[str]:
    """Read a password twice without echo; None (after a message) if it is short or they differ."""
    first = prompt("Password (not shown): ")
    if len(first) < MIN_PASSWORD:
        print(f"a password needs at least {MIN_PASSWORD} characters", file=sys.stderr)
        return None
    if prompt("Again: ") != first:
        print("the two passwords differ", file=sys.stderr)
        return None
    return first


def admin_command(settings: Settings, action: str, email: str, *, prompt: Any = getpass.getpass,
                  connect: bool = True) -> int:
    """Create an admin account, or set a new password (which signs them out everywhere)."""
    email = email.strip().lower()
    if not EMAIL.match(email):
        print(f"not an email address: {email!r}", file=sys.stderr)
        return 2
    password = read_new_password(prompt)
    if password is None:
        return 2
    digest = crypto.hash_password(password)
    with database(settings, connect):
        if action == "create":
            try:
                records.create_admin(email, digest)
            except RosterError as exc:
                if exc.message_key != DUPLICATE:
                    raise
                print(f"an admin {email} exists; use `python run.py admin password {email}`", file=sys.stderr)
                return 1
            print(f"admin {email} created; sign in at http://{settings.web_host}:{settings.web_port}/login")
            return 0
        if not records.set_admin_password(email, digest):
            print(f"no admin {email}", file=sys.stderr)
            return 1
        print(f"password of {email} changed; their open logins were ended")
        return 0


def register(sub: Any) -> None:
    p = sub.add_parser("web", help="serve the web admin panel alone (`run` serves it beside the bots)")
    p.add_argument("--host", help="address to listen on (default WEB_HOST)")
    p.add_argument("--port", type=int, help="port (default WEB_PORT)")
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("admin", help="web panel administrators")
    admin = p.add_subparsers(dest="admin_command", required=True)
    for action, text in (("create", "create an admin account (the password is read without echo)"),
                         ("password", "set a new password for an admin")):
        q = admin.add_parser(action, help=text)
        q.add_argument("email")
        q.set_defaults(func=lambda a: admin_command(settings_or_exit(), a.admin_command, a.email))
