"""The bench's flags, its presets (``--quick``, ``--full-scale``) and their checks."""

from __future__ import annotations

import argparse
from pathlib import Path

PHASES = ("ingest", "bare", "engine", "reaction", "scale", "pg")
DEFAULT_SCALE_SIZES = (250, 500, 1_000)
DEFAULT_PG_SIZES = (10_000, 30_000, 100_000)
QUICK_SCALE_SIZES = (50, 100, 200)
QUICK_PG_SIZES = (1_000, 2_000, 4_000)
FULL_SCALE_SIZES = (1_000, 10_000, 100_000)
FULL_PG_SIZES = (10_000, 100_000, 1_000_000)
DEFAULT_TIME_LIMIT = 900.0
FULL_TIME_LIMIT = 4 * 3600.0  # parking 100,000 customers takes hours at today's rates


def sizes(text: str) -> list[int]:
    """``"1000,10000,100000"`` (underscores allowed) -> ascending distinct positive sizes."""
    try:
        found = sorted({int(part.strip().replace("_", "")) for part in text.split(",") if part})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"sizes are whole numbers separated by commas, e.g. 1000,10000,100000; got {text!r}"
        ) from None
    if not found or found[0] <= 0:
        raise argparse.ArgumentTypeError(f"sizes must be positive; got {text!r}")
    return found


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Journeyman's benchmark: every figure next to its ceiling, in one run.",
    )
    add = parser.add_argument
    add("--events", type=int, default=20_000, help="ingest: track events")
    add("--customers", type=int, default=300, help="engine, bare and reaction: customers")
    add("--clients", type=int, default=4, help="concurrent HTTP clients (and DB connections)")
    add("--batch-size", type=int, default=100, help="ingest: events per request")
    add("--reaction-rate", type=float, default=10.0, help="reaction: events posted per second")
    add(
        "--scale-sizes",
        type=sizes,
        default=None,
        help="scale: customers parked in a wait_for, e.g. 1000,10000,100000"
        f" (default {','.join(map(str, DEFAULT_SCALE_SIZES))})",
    )
    add(
        "--scale-budget",
        type=float,
        default=None,
        metavar="S",
        help="scale: park for at most S seconds across all sizes, then measure where parking"
        " stopped (default: only --time-limit per size)",
    )
    add(
        "--pg-sizes",
        type=sizes,
        default=None,
        help="scale: generated customers in Postgres, e.g. 10000,100000,1000000"
        f" (default {','.join(map(str, DEFAULT_PG_SIZES))})",
    )
    add(
        "--full-scale",
        action="store_true",
        help="the scale sizes of the targets: 1k/10k/100k parked, 10k/100k/1M in Postgres"
        " (hours, mostly parking)",
    )
    add("--quick", action="store_true", help="smoke run: small sizes everywhere, about 2 min")
    add("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    add(
        "--no-fsync",
        action="store_true",
        help="Postgres with fsync and synchronous_commit off (as the tests run it)",
    )
    add(
        "--shared-customers",
        action="store_true",
        help="ingest: concurrent requests may share customers (shows lock conflicts)",
    )
    add(
        "--think-time",
        type=float,
        default=1.0,
        help="journeys: seconds between a customer's first email and their reply",
    )
    add(
        "--time-limit",
        type=float,
        default=None,
        help=f"seconds per phase or scale step (default {DEFAULT_TIME_LIMIT:.0f};"
        f" {FULL_TIME_LIMIT:.0f} with --full-scale)",
    )
    add(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="before each phase, wait up to S seconds for other work on the machine to stop"
        " (under 0.3 busy cores for 5 s); what each phase found is in the report",
    )
    add("--results-dir", type=Path, default=None, help="where the JSON goes (bench/results)")
    add("--seed", type=int, default=7)
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.quick and args.full_scale:
        parser.error("--quick and --full-scale contradict each other: pick one")
    if args.quick:
        args.events, args.customers = 2_000, 40
    preset_scale, preset_pg = DEFAULT_SCALE_SIZES, DEFAULT_PG_SIZES
    if args.quick:
        preset_scale, preset_pg = QUICK_SCALE_SIZES, QUICK_PG_SIZES
    elif args.full_scale:
        preset_scale, preset_pg = FULL_SCALE_SIZES, FULL_PG_SIZES
    # Sizes given explicitly win over the preset.
    args.scale_sizes = args.scale_sizes or list(preset_scale)
    args.pg_sizes = args.pg_sizes or list(preset_pg)
    if args.time_limit is None:
        args.time_limit = FULL_TIME_LIMIT if args.full_scale else DEFAULT_TIME_LIMIT
    for name in ("events", "customers", "clients", "batch_size"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.wait_quiet < 0:
        parser.error("--wait-quiet must be zero (do not wait) or a number of seconds")
    if args.scale_budget is not None and args.scale_budget <= 0:
        parser.error("--scale-budget must be a positive number of seconds")
    if args.reaction_rate <= 0:
        parser.error("--reaction-rate must be positive (events per second)")
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}; known: {', '.join(PHASES)}")
    return args
