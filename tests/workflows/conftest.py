"""A journey worker on the time-skipping server, with real Postgres and a real SMTP server."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from journeyman.channels import SmtpProvider, SmtpSink
from journeyman.orchestrator.embedded.temporal import ensure_search_attributes
from journeyman.orchestrator.language import compile_source
from journeyman.orchestrator.storage import connect, create_pool, deploy_plan, migrate
from journeyman.workflows.activities import SEND_GIVE_UP, JourneyActivities
from journeyman.workflows.inputs import EVENT_SIGNAL, JourneyEvent, JourneyInput
from journeyman.workflows.journey import JourneyWorkflow
from journeyman.workflows.plan import EventMatch, Plan
from journeyman.workflows.providers import ChannelProviders
from journeyman.workflows.search_attributes import ALL
from journeyman.workflows.worker import build_worker


def event(name: str, **properties: object) -> JourneyEvent:
    return JourneyEvent(
        message_id=str(uuid.uuid4()),
        name=name,
        properties=properties,
        occurred_at=datetime.now(UTC),
    )


def entry_of(plan: Plan) -> EventMatch:
    assert plan.entry.match is not None, "the journey enters on an event"
    return plan.entry.match


@dataclass
class Harness:
    env: WorkflowEnvironment
    pool: asyncpg.Pool
    sink: SmtpSink
    task_queue: str
    activities: JourneyActivities
    started: list[str] = field(default_factory=list)

    async def deploy(self, source: str) -> Plan:
        plan = compile_source(source)
        async with self.pool.acquire() as conn:
            await deploy_plan(conn, plan=plan, source=source)
        return plan

    async def profile(self, customer_id: str, **traits: object) -> None:
        await self.pool.execute(
            "INSERT INTO profiles (customer_id, traits) VALUES ($1, $2)", customer_id, traits
        )

    async def enter(
        self, plan: Plan, customer_id: str, entry: JourneyEvent | None = None
    ) -> WorkflowHandle[JourneyWorkflow, str]:
        self.started.append(f"journey/{plan.journey_id}/{customer_id}")
        return await self.env.client.start_workflow(
            JourneyWorkflow.run,
            JourneyInput(journey_id=plan.journey_id, version=plan.version, customer_id=customer_id),
            id=f"journey/{plan.journey_id}/{customer_id}",
            task_queue=self.task_queue,
            start_signal=EVENT_SIGNAL,
            start_signal_args=[entry or event(entry_of(plan).event)],
        )

    async def kpis(self, journey_id: str) -> dict[str, dict[str, int]]:
        rows = await self.pool.fetch(
            "SELECT stage, entered, converted, moved_on, exited FROM stage_kpis"
            " WHERE journey_id = $1",
            journey_id,
        )
        return {
            r["stage"]: {k: r[k] for k in ("entered", "converted", "moved_on", "exited")}
            for r in rows
        }


async def _terminate(harness: Harness) -> None:
    """End the test's runs that are still open: their timers would make the shared test
    server skip years ahead while later tests' activities run."""
    for workflow_id in harness.started:
        with contextlib.suppress(Exception):
            await harness.env.client.get_workflow_handle(workflow_id).terminate("test over")


@contextlib.asynccontextmanager
async def running_harness(
    env: WorkflowEnvironment,
    database_url: str,
    providers: Callable[[asyncpg.Pool], ChannelProviders] | None = None,
    *,
    give_up_after: timedelta = SEND_GIVE_UP,
) -> AsyncIterator[Harness]:
    """A migrated database, an SMTP sink and a worker on its own task queue; ``providers``
    builds the other channels' providers over the harness's pool. Sends a provider keeps
    refusing fail after ``give_up_after``."""
    conn = await connect(database_url)
    await migrate(conn)
    await conn.close()
    await ensure_search_attributes(env.client, "default", ALL)
    pool = await create_pool(database_url)
    sink = SmtpSink()
    port = sink.start()
    activities = JourneyActivities(
        pool,
        email=SmtpProvider("127.0.0.1", port, local_hostname="localhost"),
        from_address="Journeys <journeys@shop.example>",
        providers=providers(pool) if providers is not None else None,
        give_up_after=give_up_after,
    )
    task_queue = f"tq-{uuid.uuid4()}"
    # In the sandbox, as production does not: a non-deterministic call fails the test.
    worker = build_worker(env.client, task_queue=task_queue, activities=activities, sandboxed=True)
    try:
        async with worker:
            harness = Harness(env, pool, sink, task_queue, activities)
            yield harness
            await _terminate(harness)
    finally:
        sink.stop()
        await pool.close()


@pytest.fixture
async def harness(
    time_skipping_env: WorkflowEnvironment, database_url: str
) -> AsyncIterator[Harness]:
    async with running_harness(time_skipping_env, database_url) as running:
        yield running
