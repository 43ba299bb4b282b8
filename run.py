#!/usr/bin/env python3
"""Attendance Flows command line: run the bots, check/simulate/draw flows, run the demo."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent


def cmd_check(args: argparse.Namespace) -> int:
    from engine.loader import check_paths, flow_files
    from integrations.app_hooks import build_registry

    errors = check_paths(args.paths, build_registry())
    for error in errors:
        print(error)
    files = [f for p in args.paths for f in flow_files(p)]
    if errors:
        print(f"{len(errors)} problem(s) in {len(files)} flow file(s)", file=sys.stderr)
        return 1
    print(f"ok: {len(files)} flow file(s) checked")
    return 0


def cmd_draw(args: argparse.Namespace) -> int:
    from engine.diagram import draw, markdown
    from engine.loader import load_flow
    from integrations.app_hooks import build_registry

    flow = load_flow(args.flow, build_registry())
    text = markdown(flow.spec) if args.format == "markdown" else draw(flow.spec, args.format)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


async def _simulate(args: argparse.Namespace) -> int:
    from engine.script import run_script
    from engine.simulator import InputError, SimUser, Simulator
    from integrations.app import build_app

    script = yaml.safe_load(Path(args.script).read_text(encoding="utf-8")) if args.script else None
    flows = args.flow or (script or {}).get("flows") or (script or {}).get("flow")
    if not flows:
        print("name a flow file (or give a script with `flows:`)", file=sys.stderr)
        return 2
    from integrations.settings import get_settings
    from integrations.simulation import apply_env, prepare

    setup = (script or {}).get("setup") or {}
    apply_env(setup)
    app = build_app(flows)
    engine = app.engine
    variables = prepare(setup, get_settings().faces_dir)
    await app.start()
    sim = Simulator(engine, echo=print if (not args.script or args.verbose) else None)
    try:
        if script:
            default_bot = next(iter(engine.flows))
            result = await run_script(sim, script, default_bot, variables=variables)
            for failure in result.failures:
                print("FAIL", failure)
            print(f"{'passed' if result.ok else 'FAILED'}: {result.steps} step(s) of {args.script}")
            return 0 if result.ok else 1
        bot = next(iter(engine.flows))
        user = SimUser("you", args.user_id, bot, args.first_name)
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


def _quiet_logging() -> None:
    """Simulations and the demo print conversations; logs show only warnings, with request ids."""
    from integrations.logging_setup import configure_logging

    configure_logging("WARNING")


def cmd_simulate(args: argparse.Namespace) -> int:
    _quiet_logging()
    return asyncio.run(_simulate(args))


def cmd_demo(args: argparse.Namespace) -> int:
    if args.example:
        args.flow = None
        args.script = str(ROOT / "flows" / "scripts" / "example_happy.yaml")
        args.verbose = True
        return cmd_simulate(args)
    from integrations.demo import main as demo_main

    _quiet_logging()
    return demo_main()


def _settings_or_exit():  # type: ignore[no-untyped-def]
    from integrations.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


async def _serve(settings, config) -> None:  # type: ignore[no-untyped-def]
    """Both bots on one engine until SIGTERM/SIGINT; then finish in-flight work and exit 0."""
    from integrations.app import build_app
    from integrations.ops import STATS_FILE, write_stats
    from integrations.telegram import serve_engine

    app = build_app(settings.flows_dir, settings)
    warm = getattr(app.services.verify_queue.process, "start", None)
    if callable(warm):  # note workers load their models now, not on the first student's note
        warm()

    async def snapshot_stats() -> None:
        while True:
            await asyncio.sleep(30)
            write_stats(settings.data_dir / STATS_FILE, app.services, app.engine)
            logging.getLogger("stats").info("verify queue %s", app.services.verify_queue.stats())

    task = asyncio.create_task(snapshot_stats())
    try:
        await serve_engine(config, app)
    finally:
        task.cancel()
        write_stats(settings.data_dir / STATS_FILE, app.services, app.engine)


def cmd_run(args: argparse.Namespace) -> int:
    from integrations.crypto import SecretKeyError
    from integrations.logging_setup import configure_logging
    from integrations.settings import SettingsError
    from integrations.telegram import TelegramStartError, require_telegram_settings

    settings = _settings_or_exit()
    configure_logging(settings.log_level, json=settings.log_json)
    missing = settings.missing_for_telegram()
    if missing:
        print("Cannot start the Telegram bots; these settings are missing: " + ", ".join(missing)
              + ".\nSet them in .env (see .env.example and docs/deployment.md), or try the offline "
              "demo: python run.py demo", file=sys.stderr)
        return 2
    try:
        config = require_telegram_settings(settings)
        asyncio.run(_serve(settings, config))
    except (SettingsError, SecretKeyError, TelegramStartError) as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    from integrations import ops
    from integrations.telegram import health_command

    settings = _settings_or_exit()
    if args.live:
        return health_command(settings.telegram_session_dir)
    return ops.health(settings)


def cmd_stats(args: argparse.Namespace) -> int:
    from integrations import ops

    return ops.stats(_settings_or_exit())


def cmd_roster(args: argparse.Namespace) -> int:
    from integrations import ops

    return ops.roster_import(_settings_or_exit(), args.file)


def cmd_export(args: argparse.Namespace) -> int:
    from integrations import ops

    return ops.export(_settings_or_exit(), args.session_id, args.format, args.output)


def cmd_outbox(args: argparse.Namespace) -> int:
    from integrations.outbox import outbox_command

    return outbox_command(_settings_or_exit(), args.retry)


def cmd_verify_video(args: argparse.Namespace) -> int:
    """One JSON object: face, match against the photo, liveness, timings (docs/presence.md)."""
    import json

    from integrations.presence.inspect import inspect_note

    settings = _settings_or_exit()
    try:
        note, photo = Path(args.note).read_bytes(), Path(args.reference).read_bytes()
    except OSError as exc:
        print(f"cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    report = inspect_note(note, photo, liveness_mode=args.liveness or settings.liveness,
                          tolerance=settings.local_face_tolerance, max_seconds=settings.video_max_seconds)
    print(json.dumps(report))
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from integrations import ops

    return ops.keygen()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description=__doc__)
    sub = parser.add_subparsers(dest="command")

    sub.add_parser("run", help="run both Telegram bots (the default)").set_defaults(func=cmd_run)

    p = sub.add_parser("check", help="check flow files; exit 1 on any problem")
    p.add_argument("paths", nargs="*", default=["flows"])
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("simulate", help="talk to a flow offline, or replay a --script")
    p.add_argument("flow", nargs="?")
    p.add_argument("--script", help="YAML script of inputs and expected replies")
    p.add_argument("--user-id", type=int, default=1001)
    p.add_argument("--first-name", default="Tester")
    p.add_argument("-v", "--verbose", action="store_true", help="print the transcript of a script")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("draw", help="diagram of a flow")
    p.add_argument("flow")
    p.add_argument("--format", choices=["mermaid", "dot", "markdown"], default="mermaid")
    p.add_argument("--output", "-o")
    p.set_defaults(func=cmd_draw)

    p = sub.add_parser("demo", help="offline demo on embedded defaults: a class of 30 checks in")
    p.add_argument("--example", action="store_true", help="run the example flow's script instead")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("health", help="store, settings, face verifier, scheduler and bots; exit 1 if unhealthy")
    p.add_argument("--live", action="store_true", help="only the running bots' heartbeat (container healthcheck)")
    p.set_defaults(func=cmd_health)

    sub.add_parser("stats", help="database counts and the running app's queue figures").set_defaults(func=cmd_stats)

    p = sub.add_parser("roster", help="manage the local roster")
    roster = p.add_subparsers(dest="roster_command", required=True)
    p = roster.add_parser("import", help="import teachers and students from a CSV file (docs/roster-csv.md)")
    p.add_argument("file")
    p.set_defaults(func=cmd_roster)

    p = sub.add_parser("export", help="a session's attendance as CSV or JSON (backup)")
    p.add_argument("session_id")
    p.add_argument("--format", choices=["csv", "json"], default="csv")
    p.add_argument("--output", "-o")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("outbox", help="attendance and face checks waiting out an outage; --retry delivers now")
    p.add_argument("--retry", action="store_true")
    p.set_defaults(func=cmd_outbox)

    p = sub.add_parser("verify-video", help="check one video note against a photo: face, match, liveness (JSON)")
    p.add_argument("note", help="the video note (MP4)")
    p.add_argument("--reference", required=True, help="the reference photo (JPEG)")
    p.add_argument("--liveness", choices=["off", "flag", "enforce"], help="default: the LIVENESS setting")
    p.set_defaults(func=cmd_verify_video)

    sub.add_parser("keygen", help="print a new SECRET_KEY").set_defaults(func=cmd_keygen)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        args = parser.parse_args(["run", *(argv or [])])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
