"""``journeyman``: run the stack, check and deploy journeys, watch the funnel.

journeyman up                 embedded Postgres, Temporal, SMTP sink, worker and API
journeyman worker | api       one part alone, against external services
journeyman validate PATH...   check journey and segment files; non-zero exit on any error
journeyman deploy FILE...     deploy segments, then compile and activate journeys, by the API
journeyman funnel JOURNEY     the per-stage funnel as a table
journeyman diff FILE          what a deploy would change, and who waits at changed steps
journeyman pause|resume|archive JOURNEY
journeyman migrate JOURNEY --to VERSION [--map OLD=NEW] [--apply]
journeyman enter JOURNEY CUSTOMER [--property NAME=VALUE]
journeyman demo               up + deploy + synthetic traffic + the funnel
journeyman simulate FILE      project a journey's funnel on simulated time
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import ConfigError, Settings
from .credentials import load_or_create
from .customers.segment_files import discover, segment_version, validate_segment_paths
from .language import Diagnostic, JourneyError, validate_paths
from .observability import configure_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="journeyman", description="Customer journeys as code, run on Temporal."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="start the embedded stack and keep it running until Ctrl-C")
    up.add_argument("--no-deploy", action="store_true", help="do not deploy journeys/ at start")
    sub.add_parser("worker", help="run the journey worker and outbox dispatcher")
    sub.add_parser("api", help="run the HTTP API")
    validate = sub.add_parser("validate", help="check journey and segment files")
    validate.add_argument(
        "paths", nargs="+", type=Path, help="files, or folders (with their segments/ folder)"
    )
    deploy = sub.add_parser(
        "deploy", help="deploy segment files, then compile and activate journeys, by the API"
    )
    deploy.add_argument(
        "files", nargs="+", type=Path, help="journey or segment files, or folders of them"
    )
    deploy.add_argument("--api", help="API base URL (default: from JOURNEYMAN_API_HOST/PORT)")
    funnel = sub.add_parser("funnel", help="print a journey's per-stage funnel")
    funnel.add_argument("journey")
    funnel.add_argument("--api", help="API base URL (default: from JOURNEYMAN_API_HOST/PORT)")
    for action, text in (
        ("pause", "admit no one; customers inside hold at their next send"),
        ("resume", "admit customers again and let held ones go on"),
        ("archive", "admit no one, for good; customers inside leave at their next send"),
    ):
        control = sub.add_parser(action, help=text)
        control.add_argument("journey")
        control.add_argument("--api", help="API base URL (default: from JOURNEYMAN_API_HOST/PORT)")
    diff = sub.add_parser("diff", help="what deploying a journey file would change, and for whom")
    diff.add_argument("file", type=Path)
    diff.add_argument("--api", help="API base URL (default: from JOURNEYMAN_API_HOST/PORT)")
    migrate = sub.add_parser("migrate", help="move waiting customers to another version")
    migrate.add_argument("journey")
    migrate.add_argument("--to", required=True, help="the version to move them to")
    migrate.add_argument(
        "--map", action="append", default=[], metavar="OLD=NEW", help="old step id = new step id"
    )
    migrate.add_argument("--apply", action="store_true", help="move them (default: preview)")
    migrate.add_argument("--api", help="API base URL (default: from JOURNEYMAN_API_HOST/PORT)")
    report = sub.add_parser("migration", help="report on a migration applied earlier")
    report.add_argument("journey")
    report.add_argument("id", type=int)
    report.add_argument("--api", help="API base URL (default: from JOURNEYMAN_API_HOST/PORT)")
    enter = sub.add_parser("enter", help="enter one customer into a journey (entry: api)")
    enter.add_argument("journey")
    enter.add_argument("customer")
    enter.add_argument(
        "--property", action="append", default=[], metavar="NAME=VALUE", help="entry property"
    )
    enter.add_argument("--api", help="API base URL (default: from JOURNEYMAN_API_HOST/PORT)")
    demo = sub.add_parser("demo", help="run the stack with synthetic traffic and show the funnel")
    demo.add_argument("--customers", type=int, default=300)
    demo.add_argument("--exit", action="store_true", help="stop after printing the funnel")
    simulate = sub.add_parser(
        "simulate", help="project a journey's funnel for a synthetic population, in seconds"
    )
    simulate.add_argument("journey", type=Path, help="the journey file")
    simulate.add_argument("--customers", type=int, default=1000, help="default: 1000")
    simulate.add_argument(
        "--scenario", type=Path, help="how customers behave (default: nobody reacts)"
    )
    simulate.add_argument("--seed", type=int, default=0, help="default: 0")
    simulate.add_argument("--horizon", default="365d", help="longest simulated time (365d)")
    simulate.add_argument("--json", action="store_true", help="the report as JSON, no progress")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"journeyman: {exc}", file=sys.stderr)
        return 2
    # Text or JSON on stderr, an error that ends the process included; libraries at WARNING;
    # the configured secrets masked wherever they would show.
    configure_logging(
        level=settings.log_level,
        log_format=settings.log_format,
        secrets=settings.secret_values(),
        uncaught=True,
    )
    try:
        if args.command == "validate":
            return cmd_validate(args.paths)
        if args.command == "simulate":
            from .simulation.command import run as simulate

            return simulate(args)
        if args.command in ADMIN_COMMANDS:
            return _admin(args, settings)
        if args.command in ("deploy", "funnel"):
            from .client_commands import deploy_files, show_funnel

            base = args.api or f"http://{settings.api_host}:{settings.api_port}"
            token = load_or_create(settings).admin_token
            if args.command == "deploy":
                return deploy_files(base, token, args.files)
            return show_funnel(base, token, args.journey)
        return _run_forever(args, settings)
    except ConfigError as exc:
        print(f"journeyman: {exc}", file=sys.stderr)
        return 2


ADMIN_COMMANDS = ("pause", "resume", "archive", "diff", "migrate", "migration", "enter")


def _admin(args: argparse.Namespace, settings: Settings) -> int:
    from . import client_commands as commands

    base = args.api or f"http://{settings.api_host}:{settings.api_port}"
    api = commands.ApiClient(base, load_or_create(settings).admin_token)
    if args.command in ("pause", "resume", "archive"):
        return commands.set_status(api, args.journey, args.command)
    if args.command == "diff":
        return commands.show_diff(api, args.file)
    if args.command == "migrate":
        mapping = commands.parse_pairs(args.map, "--map")
        return commands.migrate(api, args.journey, args.to, mapping, args.apply)
    if args.command == "migration":
        return commands.migration_report(api, args.journey, args.id)
    properties = commands.parse_pairs(args.property, "--property")
    return commands.enter(api, args.journey, args.customer, properties)


def cmd_validate(paths: Sequence[Path]) -> int:
    """Segment files first, then journeys; errors fail the run, warnings are printed only."""
    failed = 0
    warnings: list[Diagnostic] = []
    found = discover(paths)
    for path in found.skipped:
        print(f"{path}: skipped (a configuration file, neither a journey nor a segment)")
    for path, segment in validate_segment_paths(found.segments, warnings=warnings):
        if isinstance(segment, JourneyError):
            failed += 1
            print(str(segment), file=sys.stderr)
        else:
            print(f"{path}: ok ({segment.kind} {segment.id} version {segment_version(segment)})")
    for path, result in validate_paths(found.journeys, warnings=warnings):
        if isinstance(result, JourneyError):
            failed += 1
            print(str(result), file=sys.stderr)
        else:
            print(f"{path}: ok ({result.journey_id} version {result.version})")
    for warning in warnings:
        print(str(warning), file=sys.stderr)
    return 1 if failed else 0


def _run_forever(args: argparse.Namespace, settings: Settings) -> int:
    from . import running

    async def runner() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if args.command == "up":
            return await running.up(settings, stop, deploy=not args.no_deploy)
        if args.command == "worker":
            return await running.worker(settings, stop)
        if args.command == "api":
            return await running.api(settings, stop)
        return await running.demo(settings, stop, customers=args.customers, exit_after=args.exit)

    return asyncio.run(runner())


if __name__ == "__main__":
    sys.exit(main())
