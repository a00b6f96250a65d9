"""The recency sweep on a real Postgres as time passes, and its workflow and Schedule on the
time-skipping server and the dev server, running the real activity."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.client import ScheduleIntervalSpec, ScheduleOverlapPolicy
from temporalio.testing import WorkflowEnvironment

from journeyman.channels import SmtpProvider
from journeyman.orchestrator.customers.events import (
    BECAME_ACTIVE,
    BECAME_INACTIVE,
    BECAME_LOST,
    ENGINE_SOURCE,
    SEGMENT_ENTERED,
)
from journeyman.orchestrator.customers.metrics import (
    RecencyChange,
    _record,
    apply_event,
    sweep_recency,
)
from journeyman.orchestrator.customers.settings import CustomerDataSettings
from journeyman.orchestrator.customers.sweep_segments import load_segments
from journeyman.orchestrator.embedded import TemporalDevServer
from journeyman.orchestrator.ingest import IncomingEvent, TriggerIndex, ingest
from journeyman.orchestrator.language import compile_source
from journeyman.orchestrator.storage import active_plans, create_pool, deploy_plan, migrate
from journeyman.orchestrator.temporal_client import connect_temporal
from journeyman.workflows.activities import JourneyActivities
from journeyman.workflows.sweep import (
    CustomerSweepInput,
    CustomerSweepWorkflow,
    RecencySweepResult,
    SweepActivities,
    ensure_sweep_schedule,
    schedule_id,
)
from journeyman.workflows.worker import build_worker

T0 = datetime(2025, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
SETTINGS = CustomerDataSettings()  # active within 30 days, inactive up to 90, lost beyond
RECENCY = (BECAME_ACTIVE, BECAME_INACTIVE, BECAME_LOST)

WIN_BACK = """
id: win-back
name: Win back
entry: {event: Became Inactive}
exit: [{event: Became Active}]
stages:
  - name: only
    touchpoints:
      - send: {id: miss-you, subject: "We miss you", body: "Come back"}
      - wait: 60d
"""


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url)
    async with pool.acquire() as conn:
        await migrate(conn)
        await deploy_plan(conn, plan=compile_source(WIN_BACK), source=WIN_BACK)
    yield pool
    await pool.close()


async def seen(pool: asyncpg.Pool, customer_id: str, at: datetime) -> None:
    """Activity of ``customer_id`` at ``at``, applied when it happened."""
    event = IncomingEvent(
        message_id=str(uuid.uuid4()),
        type="track",
        customer_id=customer_id,
        event="Product Viewed",
        properties={},
        traits={},
        context={},
        occurred_at=at,
    )
    async with pool.acquire() as conn, conn.transaction():
        await apply_event(conn, customer_id=customer_id, event=event, settings=SETTINGS, now=at)


async def classes(pool: asyncpg.Pool) -> dict[str, str]:
    rows = await pool.fetch("SELECT customer_id, recency_class FROM customer_metrics")
    return {row["customer_id"]: row["recency_class"] for row in rows}


async def recorded(pool: asyncpg.Pool) -> list[tuple[str, str, str, str, datetime]]:
    """(event, customer, from, to, occurred_at) of every stored recency event, in order."""
    rows = await pool.fetch(
        "SELECT event, customer_id, properties, context, occurred_at FROM events"
        " WHERE event = ANY($1::text[]) ORDER BY id",
        list(RECENCY),
    )
    assert all(row["context"] == {"source": ENGINE_SOURCE} for row in rows)
    return [
        (
            row["event"],
            row["customer_id"],
            row["properties"]["from"],
            row["properties"]["to"],
            row["occurred_at"],
        )
        for row in rows
    ]


async def sweep(pool: asyncpg.Pool, now: datetime, **kwargs: Any) -> list[tuple[str, str]]:
    events = await sweep_recency(pool, now=now, settings=SETTINGS, **kwargs)
    return [(event.event or "", event.customer_id) for event in events]


async def test_time_moves_customers_from_active_to_inactive_to_lost(pool: asyncpg.Pool) -> None:
    await seen(pool, "amy", T0)
    await seen(pool, "ben", T0 - 20 * DAY)
    await seen(pool, "cat", T0 - 60 * DAY)
    await seen(pool, "dov", T0 - 120 * DAY)  # beyond both thresholds at the first sweep

    assert await sweep(pool, T0) == [(BECAME_LOST, "dov"), (BECAME_INACTIVE, "cat")]
    assert await classes(pool) == {
        "amy": "active",
        "ben": "active",
        "cat": "inactive",
        "dov": "lost",
    }
    assert await sweep(pool, T0) == []  # nothing aged since

    assert await sweep(pool, T0 + 10 * DAY + timedelta(seconds=1)) == [(BECAME_INACTIVE, "ben")]
    assert await sweep(pool, T0 + 31 * DAY) == [(BECAME_LOST, "cat"), (BECAME_INACTIVE, "amy")]
    assert await sweep(pool, T0 + 31 * DAY) == []
    assert await sweep(pool, T0 + 365 * DAY) == [(BECAME_LOST, "ben"), (BECAME_LOST, "amy")]
    assert set((await classes(pool)).values()) == {"lost"}

    # Each change once, dated when its threshold passed, whatever the sweep's own time.
    assert await recorded(pool) == [
        (BECAME_LOST, "dov", "active", "lost", T0 - 30 * DAY),
        (BECAME_INACTIVE, "cat", "active", "inactive", T0 - 30 * DAY),
        (BECAME_INACTIVE, "ben", "active", "inactive", T0 + 10 * DAY),
        (BECAME_LOST, "cat", "inactive", "lost", T0 + 30 * DAY),
        (BECAME_INACTIVE, "amy", "active", "inactive", T0 + 30 * DAY),
        # One batch is stored in customer order.
        (BECAME_LOST, "amy", "inactive", "lost", T0 + 90 * DAY),
        (BECAME_LOST, "ben", "inactive", "lost", T0 + 70 * DAY),
    ]


async def test_boundaries_belong_to_the_younger_class(pool: asyncpg.Pool) -> None:
    await seen(pool, "eve", T0)
    assert await sweep(pool, T0 + 30 * DAY) == []
    assert await sweep(pool, T0 + 30 * DAY + timedelta(microseconds=1)) == [
        (BECAME_INACTIVE, "eve")
    ]
    assert await sweep(pool, T0 + 90 * DAY) == []
    assert await sweep(pool, T0 + 90 * DAY + timedelta(microseconds=1)) == [(BECAME_LOST, "eve")]


async def test_the_events_reach_the_journeys(pool: asyncpg.Pool) -> None:
    await seen(pool, "fin", T0 - 45 * DAY)
    await seen(pool, "gil", T0 - 45 * DAY)
    await sweep(pool, T0)
    rows = await pool.fetch(
        "SELECT customer_id, payload FROM outbox WHERE journey_id = 'win-back' ORDER BY 1"
    )
    assert [row["customer_id"] for row in rows] == ["fin", "gil"]
    assert all(row["payload"]["entry"] for row in rows)
    assert rows[0]["payload"]["event"]["name"] == BECAME_INACTIVE
    assert rows[0]["payload"]["event"]["properties"]["from"] == "active"


async def test_a_rerun_after_a_crash_records_each_change_once(pool: asyncpg.Pool) -> None:
    await seen(pool, "hal", T0 - 45 * DAY)
    await seen(pool, "ian", T0 - 45 * DAY)
    index = TriggerIndex.build(*await active_plans(pool))
    # A sweep that ingested hal's event and died before updating the class.
    change = RecencyChange(
        customer_id="hal", from_class="active", to_class="inactive", last_seen_at=T0 - 45 * DAY
    )
    await ingest(pool, events=[change.event(occurred_at=T0 - 15 * DAY)], index=index)
    assert (await classes(pool))["hal"] == "active"

    assert await sweep(pool, T0) == [(BECAME_INACTIVE, "hal"), (BECAME_INACTIVE, "ian")]
    assert await classes(pool) == {"hal": "inactive", "ian": "inactive"}
    assert [r[1] for r in await recorded(pool)] == ["hal", "ian"]
    outbox = await pool.fetch("SELECT customer_id FROM outbox ORDER BY 1")
    assert [row["customer_id"] for row in outbox] == ["hal", "ian"]  # routed once each
    # And the same sweep run twice (a retried activity) adds nothing.
    assert await sweep(pool, T0) == []
    assert len(await recorded(pool)) == 2


async def test_activity_during_the_sweep_wins_and_is_recorded(pool: asyncpg.Pool) -> None:
    await seen(pool, "jan", T0 - 45 * DAY)
    index = TriggerIndex.build(*await active_plans(pool))
    read = RecencyChange(
        customer_id="jan", from_class="active", to_class="inactive", last_seen_at=T0 - 45 * DAY
    )
    # The sweep read jan as aged; jan comes back before the class is updated.
    await seen(pool, "jan", T0)
    events = await _record(pool, [read], T0 - 30 * DAY, T0, SETTINGS, index)
    assert [(e.event, e.properties["from"], e.properties["to"]) for e in events] == [
        (BECAME_INACTIVE, "active", "inactive"),
        (BECAME_ACTIVE, "inactive", "active"),
    ]
    assert await classes(pool) == {"jan": "active"}
    assert [r[0] for r in await recorded(pool)] == [BECAME_INACTIVE, BECAME_ACTIVE]
    # The win-back run that started is told to exit.
    rows = await pool.fetch("SELECT payload FROM outbox WHERE customer_id = 'jan' ORDER BY id")
    assert [(r["payload"]["entry"], r["payload"]["event"]["name"]) for r in rows] == [
        (True, BECAME_INACTIVE),
        (False, BECAME_ACTIVE),
    ]


async def test_batches_report_progress(pool: asyncpg.Pool) -> None:
    for n in range(5):
        await seen(pool, f"k{n}", T0 - (40 + n) * DAY)
    progress: list[int] = []
    moved = await sweep(pool, T0, batch_size=2, progress=progress.append)
    assert sorted(customer for _, customer in moved) == ["k0", "k1", "k2", "k3", "k4"]
    assert progress == [2, 4, 5]
    with pytest.raises(ValueError, match="batch_size"):
        await sweep(pool, T0, batch_size=0)


async def test_segments_reading_recency_follow_in_the_same_sweep(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "INSERT INTO segments (segment_id, version, name, kind, definition, source,"
        " filled_version) VALUES ('drifting', 'v1', 'Drifting', 'segment', $1, '', 'v1')",
        {"condition": 'metrics.recency == "inactive"', "description": ""},
    )
    live, _ = await load_segments(pool)
    assert [s.segment_id for s in live] == ["drifting"]
    await seen(pool, "lea", T0 - 45 * DAY)
    await seen(pool, "mo", T0)
    await sweep(pool, T0)  # the default index: deployed journeys and live segments
    members = await pool.fetch("SELECT customer_id FROM segment_memberships")
    assert [row["customer_id"] for row in members] == ["lea"]
    entered = await pool.fetch("SELECT customer_id FROM events WHERE event = $1", SEGMENT_ENTERED)
    assert [row["customer_id"] for row in entered] == ["lea"]


# The workflow and its Schedule.


async def test_sweep_workflow_runs_the_real_activity(
    own_time_skipping_env: WorkflowEnvironment, pool: asyncpg.Pool
) -> None:
    client = own_time_skipping_env.client
    # Judged at the test server's time, whatever it is: long ago is lost, the future active.
    await seen(pool, "old", datetime(2000, 1, 1, tzinfo=UTC))
    await seen(pool, "new", datetime(2100, 1, 1, tzinfo=UTC))
    # A segment deployed but not filled yet: the segment sweep fills it after recency moved.
    await pool.execute(
        "INSERT INTO segments (segment_id, version, name, kind, definition, source)"
        " VALUES ('gone', 'v1', 'Gone', 'segment', $1, '')",
        {"condition": 'metrics.recency == "lost"', "description": ""},
    )
    queue = f"tq-{uuid.uuid4()}"
    worker = build_worker(
        client,
        task_queue=queue,
        activities=JourneyActivities(
            pool, email=SmtpProvider("127.0.0.1", 9), from_address="x@shop.example"
        ),
        sweep=SweepActivities(pool, settings=SETTINGS),
    )
    async with worker:
        first = await client.execute_workflow(
            CustomerSweepWorkflow.run,
            CustomerSweepInput(),
            id=f"sweep-{uuid.uuid4()}",
            task_queue=queue,
        )
        again = await client.execute_workflow(
            CustomerSweepWorkflow.run,
            CustomerSweepInput(),
            id=f"sweep-{uuid.uuid4()}",
            task_queue=queue,
        )
    assert first.recency == RecencySweepResult(became_lost=1)
    assert first.segments.filled == ["gone"]
    assert again.recency == RecencySweepResult()
    assert again.segments.filled == []
    members = await pool.fetch("SELECT customer_id FROM segment_memberships")
    assert [row["customer_id"] for row in members] == ["old"]
    assert await classes(pool) == {"old": "lost", "new": "active"}
    assert [(r[0], r[1]) for r in await recorded(pool)] == [(BECAME_LOST, "old")]


async def test_the_schedule_is_created_updated_and_starts_the_sweep(
    temporal_dev_server: TemporalDevServer, pool: asyncpg.Pool
) -> None:
    client = await connect_temporal(temporal_dev_server.address)
    queue = f"tq-{uuid.uuid4()}"
    handle = client.get_schedule_handle(schedule_id(queue))
    try:
        await ensure_sweep_schedule(client, task_queue=queue, interval=timedelta(hours=1))
        # A worker start with another interval updates it; an operator's pause is kept.
        await handle.pause(note="maintenance")
        await ensure_sweep_schedule(client, task_queue=queue, interval=timedelta(minutes=20))
        described = await handle.describe()
        assert described.schedule.spec.intervals == [
            ScheduleIntervalSpec(every=timedelta(minutes=20))
        ]
        assert described.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        assert described.schedule.state.paused
        await handle.unpause()

        await seen(pool, "pia", datetime(2000, 1, 1, tzinfo=UTC))
        worker = build_worker(
            client,
            task_queue=queue,
            activities=JourneyActivities(
                pool, email=SmtpProvider("127.0.0.1", 9), from_address="x@shop.example"
            ),
            sweep=SweepActivities(pool, settings=SETTINGS),
        )
        async with worker:
            await handle.trigger()
            for _ in range(200):
                if await recorded(pool):
                    break
                await asyncio.sleep(0.1)
        assert [(r[0], r[1]) for r in await recorded(pool)] == [(BECAME_LOST, "pia")]
        assert await classes(pool) == {"pia": "lost"}
    finally:
        await handle.delete()
