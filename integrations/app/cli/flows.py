"""Flow authors' commands: check, draw, simulate, and the demo."""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import yaml

from engine import (
    EngineError,
    InputError,
    Simulator,
    SimUser,
    check_paths,
    draw,
    flow_files,
    load_flow,
    markdown,
    run_script,
)
from integrations.app import catalogue
from integrations.app.assembly import build_app
from integrations.app.cli.common import quiet_logging
from integrations.app.demo import run_demo
from integrations.app.simulation import REPO, apply_env, prepare
from integrations.hooks.registry import build_registry
from integrations.hooks.student import record_answers_problems
from integrations.presence.media_reader import read_video_note
from integrations.settings import get_settings


def cmd_check(args: argparse.Namespace) -> int:
    """Print every problem; exit 1 on an error. Warnings (texts not translated yet) are printed
    but do not fail the check: those texts fall back to the flow's default language."""
    registry = build_registry()
    problems = check_paths(args.paths, registry)
    files = [f for p in args.paths for f in flow_files(p)]
    errors = [str(p) for p in problems if not p.warning]
    warnings = len(problems) - len(errors)
    for problem in problems:
        print(problem)
    if not errors:  # the attendance app's own rules, on flows the engine accepts
        for path in files:
            for problem in record_answers_problems(load_flow(path, registry).spec):
                print(problem)
                errors.append(problem)
    also = f" and {warnings} warning(s)" if warnings else ""
    if errors:
        print(f"{len(errors)} problem(s){also} in {len(files)} flow file(s)", file=sys.stderr)
        return 1
    print(f"ok: {len(files)} flow file(s) checked" + (f", {warnings} warning(s)" if warnings else ""))
    return 0


def cmd_hooks(args: argparse.Namespace) -> int:
    """Every registered hook: outcomes, what it provides and reads, where the flows call it."""
    registry = build_registry()
    if args.write:
        path = Path(args.write)
        document = path.read_text(encoding="utf-8")
        updated = catalogue.splice(document, catalogue.markdown(registry))
        if updated != document:
            path.write_text(updated, encoding="utf-8")
            print(f"updated the hook reference in {path}")
        else:
            print(f"the hook reference in {path} is up to date")
        return 0
    print(catalogue.markdown(registry) if args.markdown else catalogue.text(registry), end="")
    return 0


def _flow_failure(exc: Exception) -> int:
    """A flow that does not load: its problems as `file:line: state 'x': message`, exit 1."""
    problems = getattr(exc, "problems", None) or [exc]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1


def cmd_draw(args: argparse.Namespace) -> int:
    try:
        flow = load_flow(args.flow, build_registry())
    except EngineError as exc:
        return _flow_failure(exc)
    text = markdown(flow.spec) if args.format == "markdown" else draw(flow.spec, args.format)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


async def _simulate(args: argparse.Namespace) -> int:
    try:
        script: Any = yaml.safe_load(Path(args.script).read_text(encoding="utf-8")) if args.script else None
    except (OSError, yaml.YAMLError) as exc:
        print(f"{args.script}: cannot read the script: {exc}", file=sys.stderr)
        return 1
    flows = args.flow or (script or {}).get("flows") or (script or {}).get("flow")
    if not flows:
        print("name a flow file (or give a script with `flows:`)", file=sys.stderr)
        return 2
    setup = (script or {}).get("setup") or {}
    apply_env(setup)
    settings = get_settings()
    try:
        app = build_app(settings, flows=flows, ephemeral_db=True)
    except EngineError as exc:
        return _flow_failure(exc)
    app.open_storage()
    variables = prepare(setup, settings.faces_dir)
    await app.start()
    sim = Simulator(app.engine, echo=print if (not args.script or args.verbose) else None,
                    media_reader=read_video_note)
    try:
        if script:
            default_bot = next(iter(app.engine.flows))
            try:
                result = await run_script(sim, script, default_bot, variables=variables,
                                          language=getattr(args, "lang", None))
            except InputError as exc:
                print(f"{args.script}: {exc}", file=sys.stderr)
                return 1
            for failure in result.failures:
                print("FAIL", failure)
            print(f"{'passed' if result.ok else 'FAILED'}: {result.steps} step(s) of {args.script}")
            return 0 if result.ok else 1
        bot = next(iter(app.engine.flows))
        user = SimUser("you", args.user_id, bot, args.first_name, language=getattr(args, "lang", None))
        print(f"Simulating bot '{bot}'. Type messages; /location LAT LON [ACC], /contact PHONE, "
              "/video FILE.mp4, /tap BUTTON, /forward ..., /timeout, /event NAME {json}; Ctrl-D quits.")
        await sim.send(user, "/start")
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return 0
            line = line.strip()
            if not line:
                continue
            try:
                await sim.send(user, line)
            except InputError as exc:
                print(f"  (simulator) {exc}")
    finally:
        await app.stop()


def cmd_simulate(args: argparse.Namespace) -> int:
    quiet_logging()
    return asyncio.run(_simulate(args))


def cmd_demo(args: argparse.Namespace) -> int:
    if args.example:
        args.flow = None
        args.script = str(REPO / "flows" / "scripts" / "example_happy.yaml")
        args.verbose = True
        return cmd_simulate(args)
    quiet_logging()
    web = (args.host or get_settings().web_host, get_settings().web_port if args.port is None else args.port) \
        if args.web else None
    return asyncio.run(run_demo(web=web))


def register(sub: Any) -> None:
    p = sub.add_parser("check", help="check flow files; exit 1 on any problem")
    p.add_argument("paths", nargs="*", default=["flows"])
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("simulate", help="talk to a flow offline, or replay a --script")
    p.add_argument("flow", nargs="?")
    p.add_argument("--script", help="YAML script of inputs and expected replies")
    p.add_argument("--user-id", type=int, default=1001)
    p.add_argument("--first-name", default="Tester")
    p.add_argument("--lang", help="the user's app language (e.g. hi, te), as Telegram's language_code;"
                                  " for a script, of the users it gives none")
    p.add_argument("-v", "--verbose", action="store_true", help="print the transcript of a script")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("hooks", help="every hook flows can call: outcomes, data provided and read, where used")
    p.add_argument("--markdown", action="store_true", help="the Markdown reference (as in docs/flows.md)")
    p.add_argument("--write", metavar="FILE", help="replace the generated reference in FILE (docs/flows.md)")
    p.set_defaults(func=cmd_hooks)

    p = sub.add_parser("draw", help="diagram of a flow")
    p.add_argument("flow")
    p.add_argument("--format", choices=["mermaid", "dot", "markdown"], default="mermaid")
    p.add_argument("--output", "-o")
    p.set_defaults(func=cmd_draw)

    p = sub.add_parser("demo", help="offline demo on embedded defaults: a class of 30 checks in")
    p.add_argument("--example", action="store_true", help="run the example flow's script instead")
    p.add_argument("--web", action="store_true", help="then keep the web admin panel open on the demo's data")
    p.add_argument("--host", help="the panel's address with --web (default WEB_HOST)")
    p.add_argument("--port", type=int, help="the panel's port with --web (default WEB_PORT)")
    p.set_defaults(func=cmd_demo)
