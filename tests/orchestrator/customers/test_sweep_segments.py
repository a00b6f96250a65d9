"""The segment sweep: new segments filled silently and resumably; time-driven changes routed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from journeyman.orchestrator.customers.events import SEGMENT_ENTERED, SEGMENT_EXITED
from journeyman.orchestrator.customers.sweep_segments import load_segments, sweep_segments
from journeyman.orchestrator.ingest import IncomingEvent, TriggerIndex, ingest
from journeyman.orchestrator.language import compile_source
from journeyman.orchestrator.storage import active_plans, create_pool, deploy_plan, migrate

BROWSED = 'count("Product Viewed", within: 30d) >= 1'
BOUGHT = 'count("Order Completed") >= 1'

# Leaves at once when the customer stops counting as a recent browser.
NUDGE = """
id: browse-nudge
name: Browse nudge
entry: {event: Segment Entered, where: {segment: browsers}}
exit: [{event: Segment Exited, where: {segment: browsers}}]
stages:
  - name: only
    touchpoints:
      - send: {id: hi, subject: "Hi", body: "Hello"}
      - wait: 60d
"""


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url)
    async with pool.acquire() as conn:
        await migrate(conn)
        await deploy_plan(conn, plan=compile_source(NUDGE), source=NUDGE)
    yield pool
    await pool.close()


async def deploy_segment(pool: asyncpg.Pool, segment_id: str, condition: str, version: str) -> None:
    await pool.execute(
        "INSERT INTO segments (segment_id, version, name, kind, definition, source)"
        " VALUES ($1, $2, $1, 'segment', $3, '') ON CONFLICT (segment_id) DO UPDATE"
        " SET version = excluded.version, definition = excluded.definition",
        segment_id,
        version,
        {"condition": condition, "description": ""},
    )


async def index(pool: asyncpg.Pool) -> TriggerIndex:
    live, _ = await load_segments(pool)
    return TriggerIndex.build(*await active_plans(pool), segments=live)


async def track(pool: asyncpg.Pool, customer: str, name: str, at: datetime) -> None:
    event = IncomingEvent(
        message_id=str(uuid.uuid4()),
        type="track",
        customer_id=customer,
        user_id=customer,
        event=name,
        properties={},
        traits={},
        context={},
        occurred_at=at,
    )
    await ingest(pool, events=[event], index=await index(pool))


async def members(pool: asyncpg.Pool, segment_id: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT customer_id FROM segment_memberships WHERE segment_id = $1 ORDER BY 1", segment_id
    )
    return [row["customer_id"] for row in rows]


async def engine_events(pool: asyncpg.Pool) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT event, customer_id FROM events WHERE event = ANY($1::text[]) ORDER BY id",
        [SEGMENT_ENTERED, SEGMENT_EXITED],
    )
    return [(row["event"], row["customer_id"]) for row in rows]


async def test_a_new_segment_is_filled_silently_then_kept_live(pool: asyncpg.Pool) -> None:
    now = datetime.now(UTC)
    for customer in ("c1", "c2", "c3"):
        await track(pool, customer, "Order Completed" if customer != "c2" else "Page Read", now)
    await deploy_segment(pool, "buyers", BOUGHT, "v1")
    assert (await load_segments(pool))[0] == []  # not live until filled
    seen: list[tuple[str, int]] = []
    report = await sweep_segments(
        pool,
        index=await index(pool),
        now=now,
        batch_size=2,
        progress=lambda s, n: seen.append((s, n)),
    )
    assert report.filled == ["buyers"]
    assert seen == [("buyers", 2), ("buyers", 3)]
    assert await members(pool, "buyers") == ["c1", "c3"]
    assert await engine_events(pool) == []  # matching before the deploy is not entering
    # From now on ingest keeps it live, and a new buyer is a real entry.
    await track(pool, "c2", "Order Completed", now)
    assert await members(pool, "buyers") == ["c1", "c2", "c3"]
    assert await engine_events(pool) == [(SEGMENT_ENTERED, "c2")]


async def test_a_fill_resumes_after_its_last_full_page(pool: asyncpg.Pool) -> None:
    now = datetime.now(UTC)
    for customer in ("c1", "c2", "c3"):
        await track(pool, customer, "Order Completed", now)
    await deploy_segment(pool, "buyers", BOUGHT, "v1")
    # As left by a sweep that stopped after its page ending at c2.
    await pool.execute("UPDATE segments SET fill_cursor = 'c2'")
    await sweep_segments(pool, index=await index(pool), now=now)
    assert await members(pool, "buyers") == ["c3"]


async def test_a_changed_segment_is_refilled_and_members_who_no_longer_match_leave_quietly(
    pool: asyncpg.Pool,
) -> None:
    now = datetime.now(UTC)
    await track(pool, "c1", "Order Completed", now)
    await track(pool, "c2", "Product Viewed", now)
    await deploy_segment(pool, "active", BOUGHT, "v1")
    await sweep_segments(pool, index=await index(pool), now=now)
    assert await members(pool, "active") == ["c1"]
    await deploy_segment(pool, "active", BROWSED, "v2")
    await sweep_segments(pool, index=await index(pool), now=now)
    assert await members(pool, "active") == ["c2"]
    assert await engine_events(pool) == []


async def test_time_passing_moves_customers_out_and_their_journeys_react(
    pool: asyncpg.Pool,
) -> None:
    start = datetime.now(UTC)
    await deploy_segment(pool, "browsers", BROWSED, "v1")
    await sweep_segments(pool, index=await index(pool), now=start)  # fills an empty segment
    await track(pool, "c1", "Product Viewed", start - timedelta(days=29))
    await track(pool, "c2", "Product Viewed", start - timedelta(days=5))
    assert await members(pool, "browsers") == ["c1", "c2"]
    assert await engine_events(pool) == [(SEGMENT_ENTERED, "c1"), (SEGMENT_ENTERED, "c2")]

    report = await sweep_segments(pool, index=await index(pool), now=start + timedelta(days=2))
    assert report.customers == 2
    assert await members(pool, "browsers") == ["c2"]
    assert (await engine_events(pool))[-1] == (SEGMENT_EXITED, "c1")
    # The leaving reached c1's run of the nudge journey, which exits on it.
    last = await pool.fetchrow("SELECT workflow_id, payload FROM outbox ORDER BY id DESC LIMIT 1")
    assert last is not None and last["workflow_id"] == "journey/browse-nudge/c1"
    assert last["payload"]["event"]["name"] == SEGMENT_EXITED
    # A second sweep at the same time finds nothing more to change.
    again = await sweep_segments(pool, index=await index(pool), now=start + timedelta(days=2))
    assert again.routed == 0
