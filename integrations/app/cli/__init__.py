"""The command line behind ``python run.py``: one module per command group, one parser here."""
from __future__ import annotations

import argparse
from typing import Optional

from integrations.app.cli import flows, operations, serve, web

DESCRIPTION = ("Attendance Flows command line: run the bots (and the web panel), check/simulate/draw flows, "
               "run the demo.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command")
    serve.register(sub)
    flows.register(sub)
    operations.register(sub)
    web.register(sub)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):  # no command: run the bots
        args = parser.parse_args(["run", *(argv or [])])
    return int(args.func(args) or 0)
