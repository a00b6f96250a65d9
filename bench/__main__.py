"""``python -m bench``: ingest events/s, engine journeys/s and the bare Temporal ceiling.

Starts embedded Postgres, an in-memory Temporal dev server and an SMTP sink, runs the phases,
prints a Markdown table on stdout (progress goes to stderr), writes bench/results/<time>.json
and stops everything it started, also on Ctrl-C, SIGTERM or failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from typing import Any

from . import bare_phase, ingest_phase, journey_phase, report
from .cpu import CpuMeter, machine_busy
from .progress import say
from .stack import Stack

PHASES = ("ingest", "bare", "engine")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="ingest: track events")
    parser.add_argument("--customers", type=int, default=300, help="journeys: customers")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument("--batch-size", type=int, default=100, help="ingest: events per request")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2,000 events and 40 customers"
    )
    parser.add_argument(
        "--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}"
    )
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="Postgres with fsync and synchronous_commit off (as the tests run it)",
    )
    parser.add_argument(
        "--shared-customers",
        action="store_true",
        help="ingest: concurrent requests may share customers (shows lock conflicts)",
    )
    parser.add_argument(
        "--think-time",
        type=float,
        default=1.0,
        help="journeys: seconds between a customer's first email and their reply",
    )
    parser.add_argument("--time-limit", type=float, default=900, help="seconds per phase")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.customers = 2_000, 40
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    return args


async def run(args: argparse.Namespace, result: dict[str, Any]) -> None:
    busy = await background_load()
    result["machine"]["busy_cores_before_start"] = busy
    if busy > 0.2:
        say(f"warning: other processes keep {busy:.1f} cores busy; the numbers will show it")
    say("starting embedded Postgres, Temporal dev server (in memory), SMTP sink ...")
    started = time.monotonic()
    async with Stack(durable=not args.no_fsync) as stack:
        say(f"servers up in {time.monotonic() - started:.1f}s")
        assert stack.temporal is not None
        temporal = stack.temporal
        meter = CpuMeter(
            {
                "postgres": stack.postmaster_pid,
                "temporal server": lambda: temporal.pid,
                "smtp sink": lambda: stack.sink.pid,
            }
        )
        if "ingest" in args.phases:
            ingested = await ingest_phase.run(
                stack,
                meter,
                events=args.events,
                batch_size=args.batch_size,
                clients=args.clients,
                seed=args.seed,
                shared_customers=args.shared_customers,
            )
            result["ingest"] = ingested.as_dict()
        if "bare" in args.phases:
            bare = await bare_phase.run(
                stack,
                meter,
                customers=args.customers,
                time_limit=args.time_limit,
                think_time=args.think_time,
            )
            result["bare"] = bare.as_dict()
        if "engine" in args.phases:
            engine = await journey_phase.run(
                stack,
                meter,
                customers=args.customers,
                clients=args.clients,
                time_limit=args.time_limit,
                think_time=args.think_time,
            )
            result["engine"] = engine.as_dict()
        say("stopping the servers ...")


async def background_load(seconds: float = 1.0) -> float:
    """How many cores other processes keep busy right now (we run nothing yet)."""
    before, started = machine_busy(), time.monotonic()
    await asyncio.sleep(seconds)
    return round((machine_busy() - before) / (time.monotonic() - started), 2)


async def _main(args: argparse.Namespace, result: dict[str, Any]) -> None:
    # SIGTERM is treated like Ctrl-C: cancel the run so every server is stopped on the way out.
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, main.cancel)
    try:
        await run(args, result)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": report.machine(),
        "config": {
            "events": args.events,
            "customers": args.customers,
            "clients": args.clients,
            "batch_size": args.batch_size,
            "durable": not args.no_fsync,
            "shared_customers": args.shared_customers,
            "think_time": args.think_time,
            "phases": args.phases,
            "quick": args.quick,
        },
    }
    code = 0
    try:
        asyncio.run(_main(args, result))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted; every server was stopped")
        result["error"] = "interrupted"
        code = 130
    except Exception as exc:
        say(f"bench failed: {type(exc).__name__}: {exc}")
        result["error"] = f"{type(exc).__name__}: {exc}"
        code = 1
    if any(key in result for key in PHASES):
        print(report.markdown(result))
    with contextlib.suppress(OSError):
        say(f"results written to {report.write_json(result)}")
    return code


if __name__ == "__main__":
    sys.exit(main())
