"""Versions in flight on the real dev server: who waits where, migration preview, apply, report."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter

from journeyman.channels import SmtpProvider, SmtpSink
from journeyman.orchestrator import versions
from journeyman.orchestrator.embedded import TemporalDevServer
from journeyman.orchestrator.language import compile_source
from journeyman.orchestrator.storage import connect, create_pool, deploy_plan, migrate
from journeyman.workflows.activities import JourneyActivities
from journeyman.workflows.inputs import EVENT_SIGNAL, JourneyEvent, JourneyInput
from journeyman.workflows.journey import JourneyWorkflow
from journeyman.workflows.plan import Plan
from journeyman.workflows.search_attributes import CUSTOMER_ID, JOURNEY_ID
from journeyman.workflows.worker import build_worker

V1 = """
id: {jid}
name: Versions
entry: {{event: Signed Up}}
stages:
  - name: nurture
    touchpoints:
      - id: long-wait
        wait: 30d
      - send: {{id: old-mail, subject: "Old", body: "Hi"}}
"""

V2 = """
id: {jid}
name: Versions
entry: {{event: Signed Up}}
stages:
  - name: nurture
    touchpoints:
      - id: short-wait
        wait: 1s
      - send: {{id: new-mail, subject: "New", body: "Hi"}}
"""


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    conn = await connect(database_url)
    await migrate(conn)
    await conn.close()
    created = await create_pool(database_url)
    yield created
    await created.close()


async def _deploy(pool: asyncpg.Pool, source: str) -> Plan:
    plan = compile_source(source)
    async with pool.acquire() as conn:
        await deploy_plan(conn, plan=plan, source=source)
    return plan


async def _start(client: Client, plan: Plan, customer: str, queue: str) -> str:
    workflow_id = f"journey/{plan.journey_id}/{customer}"
    await client.start_workflow(
        JourneyWorkflow.run,
        JourneyInput(journey_id=plan.journey_id, version=plan.version, customer_id=customer),
        id=workflow_id,
        task_queue=queue,
        start_signal=EVENT_SIGNAL,
        start_signal_args=[
            JourneyEvent(
                message_id=str(uuid.uuid4()), name="Signed Up", occurred_at=datetime.now(UTC)
            )
        ],
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(JOURNEY_ID, plan.journey_id),
                SearchAttributePair(CUSTOMER_ID, customer),
            ]
        ),
    )
    return workflow_id


async def _eventually(check: object, seconds: float = 15.0) -> None:
    for _ in range(int(seconds / 0.1)):
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not reached in time")


async def test_preview_apply_and_report_a_migration(
    pool: asyncpg.Pool, temporal_dev_server: TemporalDevServer
) -> None:
    client = await Client.connect(
        temporal_dev_server.address, data_converter=pydantic_data_converter
    )
    jid = f"v{uuid.uuid4().hex[:8]}"
    sink = SmtpSink()
    port = sink.start()
    activities = JourneyActivities(
        pool,
        email=SmtpProvider("127.0.0.1", port, local_hostname="localhost"),
        from_address="journeys@shop.example",
    )
    queue = f"versions-{jid}"
    await pool.execute(
        "INSERT INTO profiles (customer_id, traits)"
        " SELECT c, jsonb_build_object('email', c || '@x.example') FROM unnest($1::text[]) AS c",
        ["a", "b", "c"],
    )
    v1 = await _deploy(pool, V1.format(jid=jid))
    try:
        async with build_worker(client, task_queue=queue, activities=activities):
            ids = [await _start(client, v1, customer, queue) for customer in ("a", "b", "c")]

            async def all_waiting() -> bool:
                runs = await versions.waiting_runs(pool, client, jid)
                return versions.customers_per_step(runs, v1.version) == {"long-wait": 3}

            await _eventually(all_waiting)
            v2 = await _deploy(pool, V2.format(jid=jid))

            with pytest.raises(versions.MigrationError, match="not steps of version"):
                await versions.preview(pool, client, jid, v2.version, {"long-wait": "nope"})
            unmapped = await versions.preview(pool, client, jid, v2.version, {})
            assert unmapped.workflow_ids == []
            assert list(unmapped.stays.values()) == [3]

            planned = await versions.preview(
                pool, client, jid, v2.version, {"long-wait": "short-wait"}
            )
            assert planned.moves == {"long-wait -> short-wait": 3}
            assert sorted(planned.workflow_ids) == sorted(ids)
            migration_id = await versions.apply(pool, client, planned)

            for workflow_id in ids:
                assert await client.get_workflow_handle(workflow_id).result() == "completed"
            report = await versions.report(pool, jid, migration_id)
            assert (report["signalled"], report["moved"], report["not_moved"]) == (3, 3, 0)
            assert sorted(m["Subject"] for m in sink.messages) == ["New", "New", "New"]
    finally:
        sink.stop()
