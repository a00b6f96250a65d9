"""A journey worker on the Temporal dev server (a real clock, so waits and retries take the time
they say), real Postgres, and the providers a test points at its misbehaving twins.

Each customer enters a one-send journey as its own run; the run ends once the send has ended
(sent, failed or unknown), after however many attempts Temporal made.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from temporalio.client import Client, WorkflowHandle

from journeyman.channels import EmailProvider
from journeyman.channels.base import PushProvider, SmsProvider, WebhookProvider
from journeyman.orchestrator.language import compile_source
from journeyman.orchestrator.storage import connect, create_pool, deploy_plan, migrate
from journeyman.orchestrator.temporal_client import connect_temporal
from journeyman.workflows.activities import JourneyActivities
from journeyman.workflows.inputs import EVENT_SIGNAL, JourneyEvent, JourneyInput
from journeyman.workflows.journey import JourneyWorkflow
from journeyman.workflows.plan import Plan
from journeyman.workflows.providers import ChannelProviders
from journeyman.workflows.worker import build_worker

FROM = "Journeys <journeys@shop.example>"


def one_send_journey(journey_id: str, send: str) -> str:
    """A journey whose only touchpoint is ``send`` (the YAML of one send step)."""
    return f"""
id: {journey_id}
name: One send
entry: {{event: Signed Up}}
stages:
  - name: only
    touchpoints:
      - send: {send}
"""


@dataclass
class FaultWorker:
    """A running worker and what a test does with it."""

    client: Client
    pool: asyncpg.Pool
    task_queue: str
    # A suffix for this test's customer ids: the dev server outlives the test's database.
    run_tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    started: list[str] = field(default_factory=list)

    def customer(self, name: str) -> str:
        return f"{name}-{self.run_tag}"

    async def deploy(self, source: str) -> Plan:
        plan = compile_source(source)
        async with self.pool.acquire() as conn:
            await deploy_plan(conn, plan=plan, source=source)
        return plan

    async def profile(self, customer_id: str, **traits: object) -> None:
        await self.pool.execute(
            "INSERT INTO profiles (customer_id, traits) VALUES ($1, $2)", customer_id, traits
        )

    async def enter(self, plan: Plan, customer_id: str) -> WorkflowHandle[JourneyWorkflow, str]:
        workflow_id = f"journey/{plan.journey_id}/{customer_id}"
        self.started.append(workflow_id)
        return await self.client.start_workflow(
            JourneyWorkflow.run,
            JourneyInput(journey_id=plan.journey_id, version=plan.version, customer_id=customer_id),
            id=workflow_id,
            task_queue=self.task_queue,
            start_signal=EVENT_SIGNAL,
            start_signal_args=[
                JourneyEvent(
                    message_id=str(uuid.uuid4()), name="Signed Up", occurred_at=datetime.now(UTC)
                )
            ],
        )

    async def ledger(self, customer_id: str) -> tuple[str, str | None] | None:
        """The customer's one send in the delivery ledger: (status, reason), None if no row."""
        row = await self.pool.fetchrow(
            "SELECT status, reason FROM deliveries WHERE customer_id = $1", customer_id
        )
        return (row["status"], row["reason"]) if row else None

    async def ledgers(self, customers: list[str]) -> dict[str, tuple[str, str | None] | None]:
        return {customer: await self.ledger(customer) for customer in customers}


async def finished(
    handles: list[WorkflowHandle[JourneyWorkflow, str]], *, within: float
) -> list[str]:
    """Every run's result, failing the test if one is still going after ``within`` seconds."""
    async with asyncio.timeout(within):
        return list(await asyncio.gather(*(handle.result() for handle in handles)))


@contextlib.asynccontextmanager
async def fault_worker(
    temporal_address: str,
    database_url: str,
    *,
    email: EmailProvider | None = None,
    sms: SmsProvider | None = None,
    push: PushProvider | None = None,
    webhook: WebhookProvider | None = None,
) -> AsyncIterator[FaultWorker]:
    """A migrated database and a worker on its own task queue, sending with these providers."""
    conn = await connect(database_url)
    await migrate(conn)
    await conn.close()
    client = await connect_temporal(temporal_address)
    pool = await create_pool(database_url)
    activities = JourneyActivities(
        pool,
        email=email,
        from_address=FROM,
        providers=ChannelProviders(sms=sms, push=push, webhook=webhook),
    )
    task_queue = f"faults-{uuid.uuid4()}"
    try:
        async with build_worker(client, task_queue=task_queue, activities=activities):
            running = FaultWorker(client, pool, task_queue)
            try:
                yield running
            finally:
                # Runs a failed test left open would retry their sends against stopped twins.
                for workflow_id in running.started:
                    with contextlib.suppress(Exception):
                        await client.get_workflow_handle(workflow_id).terminate("test over")
    finally:
        await pool.close()
