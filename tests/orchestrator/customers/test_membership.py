"""Live segment membership: kept current by ingest, and entering or leaving drives journeys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from journeyman.orchestrator.customers.definitions import SegmentDefinition
from journeyman.orchestrator.customers.events import SEGMENT_ENTERED, SEGMENT_EXITED
from journeyman.orchestrator.ingest import IncomingEvent, TriggerIndex, ingest
from journeyman.orchestrator.language import compile_source
from journeyman.orchestrator.storage import active_plans, create_pool, deploy_plan, migrate

# Entered on joining `buyers`, left on leaving `in_lyon`: the hooks' compiled form.
WELCOME = """
id: buyer-welcome
name: Buyer welcome
entry: {event: Segment Entered, where: {segment: buyers}}
exit: [{event: Segment Exited, where: {segment: in_lyon}}]
stages:
  - name: only
    touchpoints:
      - send: {id: hi, subject: "Hi", body: "Hello"}
      - wait: 30d
"""

SEGMENTS = [
    SegmentDefinition(
        segment_id="buyers",
        version="v1",
        name="Buyers",
        condition='count("Order Completed") >= 1',
    ),
    SegmentDefinition(
        segment_id="in_lyon",
        version="v1",
        name="In Lyon",
        kind="persona",
        condition='profile.city == "Lyon"',
    ),
    SegmentDefinition(
        segment_id="browsers",
        version="v1",
        name="Browsers",
        condition='count("Product Viewed", within: 30d) >= 1',
    ),
]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url)
    async with pool.acquire() as conn:
        await migrate(conn)
        await deploy_plan(conn, plan=compile_source(WELCOME), source=WELCOME)
    yield pool
    await pool.close()


def message(kind: str, customer: str, **fields: Any) -> IncomingEvent:
    anonymous = fields.pop("anon", None)
    return IncomingEvent(
        message_id=str(uuid.uuid4()),
        type=kind,
        customer_id=customer,
        user_id=None if customer == anonymous else customer,
        anonymous_id=anonymous,
        event=fields.pop("event", None),
        properties=fields.pop("properties", {}),
        traits=fields.pop("traits", {}),
        context={},
        occurred_at=datetime.now(UTC),
    )


async def send(pool: asyncpg.Pool, *events: IncomingEvent) -> None:
    index = TriggerIndex.build(*await active_plans(pool), segments=SEGMENTS)
    await ingest(pool, events=list(events), index=index)


async def members(pool: asyncpg.Pool) -> set[tuple[str, str]]:
    rows = await pool.fetch("SELECT segment_id, customer_id FROM segment_memberships")
    return {(row["segment_id"], row["customer_id"]) for row in rows}


async def changes(pool: asyncpg.Pool) -> list[tuple[str, str, str]]:
    rows = await pool.fetch(
        "SELECT event, customer_id, properties->>'segment' AS segment FROM events"
        " WHERE event = ANY($1::text[]) ORDER BY id",
        [SEGMENT_ENTERED, SEGMENT_EXITED],
    )
    return [(row["event"], row["customer_id"], row["segment"]) for row in rows]


async def test_an_event_that_makes_a_customer_match_enters_them_and_starts_a_journey(
    pool: asyncpg.Pool,
) -> None:
    await send(pool, message("track", "u1", event="Product Added"))
    assert await members(pool) == set()
    await send(pool, message("track", "u1", event="Order Completed", properties={"revenue": 30}))
    assert await members(pool) == {("buyers", "u1")}
    assert await changes(pool) == [(SEGMENT_ENTERED, "u1", "buyers")]
    # In the same transaction the entry was routed: the run exists and its entry is queued.
    entry = await pool.fetchrow(
        "SELECT workflow_id, payload FROM outbox WHERE (payload->>'entry')::boolean"
    )
    assert entry is not None and entry["workflow_id"] == "journey/buyer-welcome/u1"
    assert entry["payload"]["event"]["name"] == SEGMENT_ENTERED
    # A second order changes nothing: already a member, no second entry.
    await send(pool, message("track", "u1", event="Order Completed"))
    assert await changes(pool) == [(SEGMENT_ENTERED, "u1", "buyers")]
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 1


async def test_leaving_a_segment_is_an_event_that_reaches_the_running_journey(
    pool: asyncpg.Pool,
) -> None:
    await send(
        pool,
        message("identify", "u1", traits={"city": "Lyon"}),
        message("track", "u1", event="Order Completed"),
    )
    assert await members(pool) == {("buyers", "u1"), ("in_lyon", "u1")}
    await send(pool, message("identify", "u1", traits={"city": "Paris"}))
    assert await members(pool) == {("buyers", "u1")}
    assert (SEGMENT_EXITED, "u1", "in_lyon") in await changes(pool)
    last = await pool.fetchrow("SELECT workflow_id, payload FROM outbox ORDER BY id DESC LIMIT 1")
    assert last is not None and last["workflow_id"] == "journey/buyer-welcome/u1"
    assert last["payload"]["event"]["name"] == SEGMENT_EXITED
    assert last["payload"]["event"]["properties"]["segment"] == "in_lyon"


async def test_only_segments_the_event_can_change_are_evaluated(pool: asyncpg.Pool) -> None:
    # A trait-only segment is not re-read on a track event; were it, this customer, whose
    # profile was changed behind ingest's back, would leave it here.
    await send(pool, message("identify", "u1", traits={"city": "Lyon"}))
    await pool.execute("UPDATE profiles SET traits = '{}'::jsonb")
    await send(pool, message("track", "u1", event="Order Completed"))
    assert await members(pool) == {("in_lyon", "u1"), ("buyers", "u1")}


async def test_a_merge_carries_memberships_over_and_re_evaluates(pool: asyncpg.Pool) -> None:
    await send(pool, message("track", "anon-1", anon="anon-1", event="Product Viewed"))
    assert await members(pool) == {("browsers", "anon-1")}
    await send(pool, message("identify", "u1", anon="anon-1", traits={"city": "Lyon"}))
    assert await members(pool) == {("browsers", "u1"), ("in_lyon", "u1")}
    # The anonymous side's entry moved with its events; the person did not enter twice.
    assert await changes(pool) == [
        (SEGMENT_ENTERED, "u1", "browsers"),
        (SEGMENT_ENTERED, "u1", "in_lyon"),
    ]
