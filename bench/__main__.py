"""``python -m bench``: every figure next to its ceiling, measured in one run.

Starts embedded Postgres, an in-memory Temporal dev server and an SMTP sink, runs the phases
(ingest and its Postgres ceilings; bare Temporal and the engine's journeys; reaction time;
scale with parked customers and with Postgres alone), prints a Markdown report on stdout
(progress goes to stderr), writes bench/results/<time>.json and stops everything it started,
also on Ctrl-C, SIGTERM or failure. ``--help`` lists the flags; see bench/README.md.
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

from . import (
    bare_phase,
    ceilings,
    ingest_phase,
    journey_phase,
    pg_scale_phase,
    reaction_phase,
    report,
    scale_phase,
)
from .cpu import CpuMeter, machine_busy, wait_for_quiet
from .machine import machine, postgres_version
from .options import PHASES, parse_args
from .progress import say
from .stack import Stack


async def run(args: argparse.Namespace, result: dict[str, Any]) -> None:
    busy = await background_load()
    result["machine"]["busy_cores_before_start"] = busy
    if busy > 0.2:
        say(f"warning: other processes keep {busy:.1f} cores busy; the numbers will show it")
    say("starting embedded Postgres, Temporal dev server (in memory), SMTP sink ...")
    started = time.monotonic()
    async with Stack(durable=not args.no_fsync) as stack:
        say(f"servers up in {time.monotonic() - started:.1f}s")
        assert stack.temporal is not None and stack.pg is not None
        temporal = stack.temporal
        result["machine"]["postgres"] = await postgres_version(stack.pg.url)
        meter = CpuMeter(
            {
                "postgres": stack.postmaster_pid,
                "temporal server": lambda: temporal.pid,
                "worker process": stack.worker_child_pid,
                "smtp sink": lambda: stack.sink.pid,
            }
        )
        await _phases(args, result, stack, meter)
        say("stopping the servers ...")


async def _phases(
    args: argparse.Namespace, result: dict[str, Any], stack: Stack, meter: CpuMeter
) -> None:
    """Each phase in turn; its figures land in ``result`` as soon as it is done."""
    assert stack.pg is not None
    quiet: dict[str, dict[str, float]] = result.setdefault("quiet_before", {})

    async def ready(phase: str) -> bool:
        """Whether to run ``phase``; first, with --wait-quiet, let the machine calm down."""
        if phase not in args.phases:
            return False
        if args.wait_quiet > 0:
            waited, busy = await wait_for_quiet(args.wait_quiet)
            quiet[phase] = {"waited_s": waited, "busy_cores": busy}
            if busy >= 0.3:
                say(f"{phase}: still {busy:.1f} cores busy after waiting {waited:.0f}s; going on")
        return True

    if await ready("ingest"):
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
        ceiling = await ceilings.run(
            stack,
            meter,
            source_url=stack.pg.url_for(ingest_phase.DATABASE),
            where=ingest_phase.TIMED_EVENTS,
            clients=args.clients,
            batch_size=args.batch_size,
        )
        result["ceilings"] = ceiling.as_dict()
    if await ready("bare"):
        bare = await bare_phase.run(
            stack,
            meter,
            customers=args.customers,
            time_limit=args.time_limit,
            think_time=args.think_time,
        )
        result["bare"] = bare.as_dict()
    if await ready("engine"):
        engine = await journey_phase.run(
            stack,
            meter,
            customers=args.customers,
            clients=args.clients,
            time_limit=args.time_limit,
            think_time=args.think_time,
        )
        result["engine"] = engine.as_dict()
    if await ready("reaction"):
        reaction = await reaction_phase.run(
            stack,
            meter,
            customers=args.customers,
            rate=args.reaction_rate,
            clients=args.clients,
            time_limit=args.time_limit,
        )
        result["reaction"] = reaction.as_dict()
    if await ready("scale"):
        scale = await scale_phase.run(
            stack,
            meter,
            sizes=args.scale_sizes,
            clients=args.clients,
            time_limit=args.time_limit,
            budget=args.scale_budget,
            seed=args.seed,
        )
        result["scale"] = scale.as_dict()
    if await ready("pg"):
        pg = await pg_scale_phase.run(stack, meter, sizes=args.pg_sizes, seed=args.seed)
        result["pg"] = pg.as_dict()


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


def config(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "events": args.events,
        "customers": args.customers,
        "clients": args.clients,
        "batch_size": args.batch_size,
        "reaction_rate": args.reaction_rate,
        "scale_sizes": args.scale_sizes,
        "scale_budget": args.scale_budget,
        "pg_sizes": args.pg_sizes,
        "durable": not args.no_fsync,
        "shared_customers": args.shared_customers,
        "think_time": args.think_time,
        "time_limit": args.time_limit,
        "phases": args.phases,
        "quick": args.quick,
        "full_scale": args.full_scale,
        "wait_quiet": args.wait_quiet,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "python -m bench " + " ".join(argv),
        "machine": machine(),
        "config": config(args),
    }
    code = 0
    started = time.monotonic()
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
    result["seconds"] = round(time.monotonic() - started, 1)
    report.add_targets(result)
    if any(key in result for key in PHASES):
        print(report.markdown(result))
    with contextlib.suppress(OSError):
        directory = args.results_dir or report.RESULTS_DIR
        say(f"results written to {report.write_json(result, directory)}")
    return code


if __name__ == "__main__":
    sys.exit(main())
