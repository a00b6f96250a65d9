"""``journeyman simulate``: the command line around ``simulate``.

``orchestrator/cli.py`` declares the arguments and imports this module only when the command
runs, so the other commands never load the Temporal test machinery.

The simulation itself runs in a child process that leaves with ``os._exit``: the Temporal
SDK's Rust threads can outlive the event loop and abort the interpreter while it shuts down
(temporalio/sdk-python#300, about one run in ten here), which would turn a printed report into
exit code 134. The child has nothing left to clean up once it has sent the report back.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import signal
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from journeyman.orchestrator.customers.settings import (
    CustomerDataSettings,
    CustomerSettingsError,
    load_customer_settings,
)
from journeyman.orchestrator.language import (
    DurationError,
    JourneyError,
    compile_file,
    parse_duration,
)
from journeyman.workflows.plan import Plan

from .errors import ScenarioError, SimulationError
from .report import Report, format_report
from .scenario import NOBODY_REACTS, Scenario, load_scenario

SCENARIOS_DIR = "scenarios"  # journeys/scenarios/<journey file name>: the convention


@dataclass(frozen=True)
class _Request:
    plan: Plan
    scenario: Scenario
    customers: int
    seed: int
    horizon_seconds: int
    progress: bool
    settings: CustomerDataSettings


def run(args: argparse.Namespace) -> int:
    """The ``simulate`` command: 0 done, 1 bad journey or scenario, 2 cannot simulate."""
    if args.customers < 1:
        print("journeyman simulate: --customers must be at least 1", file=sys.stderr)
        return 1
    try:
        horizon = parse_duration(args.horizon)
    except DurationError as exc:
        print(f"journeyman simulate: --horizon: {exc}", file=sys.stderr)
        return 1
    if horizon < 1:
        print("journeyman simulate: --horizon must be longer than zero", file=sys.stderr)
        return 1
    try:
        plan = compile_file(args.journey)
        scenario = (
            load_scenario(args.scenario, plan) if args.scenario is not None else NOBODY_REACTS
        )
        # Conditions reading metrics.* see them as the worker beside these journeys would.
        settings = load_customer_settings(args.journey.parent)
    except (JourneyError, ScenarioError, CustomerSettingsError) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if args.scenario is None and not args.json:
        _hint(args.journey)
    started = time.monotonic()
    request = _Request(plan, scenario, args.customers, args.seed, horizon, not args.json, settings)
    kind, payload = _in_child(request)
    if kind == "interrupted":
        print("journeyman simulate: interrupted", file=sys.stderr)
        return 130
    if kind != "report":
        print(f"journeyman simulate: {payload}", file=sys.stderr)
        return 2
    report = Report.model_validate_json(payload)
    if args.json:
        print(report.model_dump_json(indent=2))
        return 0
    print(format_report(report))
    print(
        f"simulated {args.customers} customers in {time.monotonic() - started:.1f}s",
        file=sys.stderr,
    )
    return 0


def _in_child(request: _Request) -> tuple[str, str]:
    """Run the simulation in a fresh process; ``(kind, payload)`` as ``_child`` sends it."""
    context = multiprocessing.get_context("spawn")  # fork would copy Temporal's threads' state
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(sender, request), name="journeyman-simulate")
    child.start()
    sender.close()
    try:
        return _receive(receiver, child)
    except KeyboardInterrupt:
        # Ctrl-C reached only this process (the child has a process group of its own, so that
        # the test servers do not die mid-request and fill the terminal with Java traces): the
        # child stops its servers and reports back.
        if child.pid is not None:
            os.kill(child.pid, signal.SIGINT)
        try:
            _receive(receiver, child)
        except KeyboardInterrupt:
            child.terminate()
        return "interrupted", ""


def _receive(receiver: Connection, child: BaseProcess) -> tuple[str, str]:
    try:
        kind, payload = receiver.recv()
    except EOFError:
        child.join()
        return "error", f"the simulation process died (exit code {child.exitcode})"
    child.join()
    return str(kind), str(payload)


def _child(sender: Connection, request: _Request) -> None:
    """The child process: simulate, send ``(kind, payload)`` back, leave without teardown."""
    # Cancelling the time-skipping environment mid-run logs the failed re-lock of its clock,
    # a server that is being thrown away: not worth a traceback on the user's terminal.
    logging.getLogger("temporalio.testing").setLevel(logging.CRITICAL)
    # Likewise the worker, stopped mid-run, about activities that had already finished.
    warnings.filterwarnings("ignore", "Cannot find activity to cancel", UserWarning)
    os.setpgrp()
    asyncio.run(_simulate_and_exit(sender, request))


async def _simulate_and_exit(sender: Connection, request: _Request) -> None:
    from journeyman.orchestrator.progress import Progress

    from .runner import simulate

    label = f"simulating {request.plan.journey_id}"
    progress = Progress(request.customers, label) if request.progress else None
    running = asyncio.ensure_future(
        simulate(
            request.plan,
            request.scenario,
            customers=request.customers,
            seed=request.seed,
            horizon_seconds=request.horizon_seconds,
            progress=progress,
            settings=request.settings,
        )
    )
    # Ctrl-C cancels the simulation, which stops its servers; asyncio.run's own handling would
    # then wait on tasks of the SDK that never finish.
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, running.cancel)
    message: tuple[str, str]
    try:
        message = ("report", (await running).model_dump_json())
    except asyncio.CancelledError:
        message = ("interrupted", "")
    except SimulationError as exc:
        message = ("error", str(exc))
    except Exception:  # a bug: the parent shows the traceback rather than a dead pipe
        message = ("error", traceback.format_exc())
    try:
        sender.send(message)
        sender.close()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(0)


def _hint(journey: Path) -> None:
    conventional = journey.parent / SCENARIOS_DIR / journey.name
    if conventional.is_file():
        print(
            f"note: no --scenario, so nobody reacts; {conventional} describes this journey's"
            f" customers: add --scenario {conventional}",
            file=sys.stderr,
        )
