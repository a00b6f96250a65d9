"""``journeyman``: run the stack, check and deploy journeys, watch the funnel.

journeyman up                 embedded Postgres, Temporal, SMTP sink, worker and API
journeyman worker | api       one part alone, against external services
journeyman validate PATH...   check journey files; non-zero exit on any error
journeyman deploy FILE...     compile and activate journeys through the API
journeyman funnel JOURNEY     the per-stage funnel as a table
journeyman demo               up + deploy + synthetic traffic + the funnel
journeyman simulate FILE      project a journey's funnel on simulated time
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import ConfigError, Settings
from .credentials import load_or_create
from .language import Diagnostic, JourneyError, validate_paths


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="journeyman", description="Customer journeys as code, run on Temporal."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="start the embedded stack and keep it running until Ctrl-C")
    up.add_argument("--no-deploy", action="store_true", help="do not deploy journeys/ at start")
    sub.add_parser("worker", help="run the journey worker and outbox dispatcher")
    sub.add_parser("api", help="run the HTTP API")
    validate = sub.add_parser("validate", help="check journey files")
    validate.add_argument("paths", nargs="+", type=Path)
    deploy = sub.add_parser("deploy", help="compile and activate journey files through the API")
    deploy.add_argument("files", nargs="+", type=Path, help="journey files or directories")
    deploy.add_argument("--api", help="API base URL (default: from JOURNEYMAN_API_HOST/PORT)")
    funnel = sub.add_parser("funnel", help="print a journey's per-stage funnel")
    funnel.add_argument("journey")
    funnel.add_argument("--api", help="API base URL (default: from JOURNEYMAN_API_HOST/PORT)")
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
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Libraries speak only when something is wrong; the engine's own level is the setting's.
    for noisy in ("temporalio", "mail.log", "uvicorn", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.command == "validate":
            return cmd_validate(args.paths)
        if args.command == "simulate":
            from .simulation.command import run as simulate

            return simulate(args)
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


def cmd_validate(paths: Sequence[Path]) -> int:
    """Errors fail the run; warnings are printed and do not."""
    failed = 0
    warnings: list[Diagnostic] = []
    for path, result in validate_paths(paths, warnings=warnings):
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
