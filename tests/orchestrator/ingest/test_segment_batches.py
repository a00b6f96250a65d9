"""Segments re-evaluated for a whole batch: what conditions read is loaded for all customers at
once, as ``load_context`` loads it for one, and a segment is skipped only when nothing it reads
can have moved."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from journeyman.orchestrator.customers import membership
from journeyman.orchestrator.customers.definitions import SegmentDefinition
from journeyman.orchestrator.customers.membership import SegmentIndex
from journeyman.orchestrator.ingest import IncomingEvent, TriggerIndex, ingest
from journeyman.orchestrator.storage import create_pool, migrate
from journeyman.orchestrator.storage.behaviour import load_context
from journeyman.workflows import expressions

NOW = datetime.now(UTC)

CONDITIONS = {
    "lyon": 'profile.city == "Lyon"',
    "adult_lyon": 'profile.city == "Lyon" and profile.age >= 18',
    "browsing": 'count("Product Viewed", within: 7d) >= 2',
    "faces": 'count("Order Completed", where: category == "face") >= 1',
    "repeat": "metrics.order_count >= 2",
    "vip": 'metrics.frequency == "vip"',
    "recent_buyer": "metrics.days_since_last_order <= 3",
    "quiet": "metrics.days_since_last_seen > 20",
    "mobile": 'metrics.preferred_device == "mobile"',
    "unknown": "metrics.recency is null",
}
MOBILE = {"type": "mobile"}
SEGMENTS = [
    SegmentDefinition(segment_id=key, version="v1", name=key, condition=condition)
    for key, condition in CONDITIONS.items()
]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url)
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


def message(kind: str, customer: str, *, days: float = 0, **fields: Any) -> IncomingEvent:
    return IncomingEvent(
        message_id=str(uuid.uuid4()),
        type=kind,
        customer_id=customer,
        user_id=customer,
        event=fields.pop("event", None),
        properties=fields.pop("properties", {}),
        traits=fields.pop("traits", {}),
        context=fields.pop("context", {}),
        occurred_at=NOW - timedelta(days=days),
    )


async def history(pool: asyncpg.Pool) -> None:
    """Customers with a bit of everything the conditions read (no segments live yet)."""
    events = [
        message("identify", "ann", traits={"city": "Lyon", "age": 61}),
        message("track", "ann", event="Product Viewed", days=1),
        message("track", "ann", event="Product Viewed", days=10),
        message(
            "track", "ann", event="Product Viewed", days=2, context={"device": {"type": "mobile"}}
        ),
        message(
            "track",
            "ann",
            event="Order Completed",
            days=2,
            properties={"revenue": 900, "products": [{"product_id": "c1", "category": "face"}]},
        ),
        message("identify", "bob", traits={"city": "Paris"}),
        message("track", "bob", event="Order Completed", days=30, properties={"revenue": 10}),
        message("track", "bob", event="Order Completed", days=25, properties={"revenue": 10}),
        message("track", "cat", event="Product Viewed", days=40),
    ]
    await ingest(pool, events=events, index=TriggerIndex())


async def test_contexts_for_many_customers_are_load_context_for_each(pool: asyncpg.Pool) -> None:
    await history(pool)
    customers = ["ann", "bob", "cat", "nobody"]
    trees = [expressions.parse(condition) for condition in CONDITIONS.values()]
    wanted = {
        "ann": expressions.merge_needs(expressions.needs(tree) for tree in trees),
        "bob": expressions.needs(trees[4]),  # metrics only
        "cat": expressions.needs(trees[2]),  # events only
        "nobody": expressions.merge_needs(expressions.needs(tree) for tree in trees[:5]),
    }
    async with pool.acquire() as conn:
        together = await membership.load_contexts(conn, wanted, now=NOW)
        for customer in customers:
            alone = await load_context(
                conn, customer_id=customer, needs=wanted[customer], event={}, now=NOW
            )
            mine = together[customer]
            assert mine.traits == alone.traits, customer
            assert {k: sorted(v, key=repr) for k, v in mine.history.items()} == {
                k: sorted(v, key=repr) for k, v in alone.history.items()
            }, customer
            # Only the metrics a condition reads are worked out, each as load_context has it.
            assert all(alone.metrics[name] == value for name, value in mine.metrics.items())
            for tree in trees:
                if expressions.needs(tree).metrics <= wanted[customer].metrics:
                    assert expressions.evaluate(tree, mine) == expressions.evaluate(tree, alone)


async def test_a_batch_reevaluation_records_what_one_by_one_would(pool: asyncpg.Pool) -> None:
    await history(pool)
    index = SegmentIndex.build(SEGMENTS)
    everyone = {customer: list(index.segments) for customer in ("ann", "bob", "cat", "nobody")}
    async with pool.acquire() as conn, conn.transaction():
        changes = await membership.reevaluate_many(conn, everyone, now=NOW)
    members = {
        (row["customer_id"], row["segment_id"])
        for row in await pool.fetch("SELECT customer_id, segment_id FROM segment_memberships")
    }
    expected = set()
    async with pool.acquire() as conn:
        for customer, segments in everyone.items():
            needs = expressions.merge_needs(s.needs for s in segments)
            context = await load_context(conn, customer_id=customer, needs=needs, event={}, now=NOW)
            expected |= {
                (customer, s.segment_id) for s in segments if expressions.evaluate(s.tree, context)
            }
    assert members == expected
    assert {(c.customer_id, c.segment.segment_id) for c in changes} == expected
    assert ("ann", "recent_buyer") in expected and ("nobody", "unknown") in expected


async def test_activity_reevaluates_only_the_segments_whose_metrics_it_can_move(
    pool: asyncpg.Pool,
) -> None:
    # Reading the order count or the frequency: an order can change them, a page view cannot.
    # Reading days since the last visit: any activity, as before.
    definitions = [s for s in SEGMENTS if s.segment_id in ("repeat", "vip", "quiet", "mobile")]
    index = TriggerIndex.build([], segments=definitions)
    await ingest(pool, events=[message("track", "ann", event="Order Completed")], index=index)
    await ingest(pool, events=[message("track", "ann", event="Order Completed")], index=index)
    assert await pool.fetchval("SELECT count(*) FROM segment_memberships") == 1  # repeat
    # Changed behind ingest's back: re-evaluated, the customer would be in it again.
    await pool.execute("DELETE FROM segment_memberships")
    await ingest(pool, events=[message("track", "ann", event="Product Viewed")], index=index)
    assert await pool.fetchval("SELECT count(*) FROM segment_memberships") == 0
    await ingest(
        pool,
        events=[
            message("track", "ann", event="Product Viewed", context={"device": {"type": "mobile"}})
        ],
        index=index,
    )
    rows = await pool.fetch("SELECT segment_id FROM segment_memberships")
    assert [r["segment_id"] for r in rows] == ["mobile"]  # a device moves the preferred one
    await ingest(pool, events=[message("track", "ann", event="Order Completed")], index=index)
    rows = await pool.fetch("SELECT segment_id FROM segment_memberships ORDER BY 1")
    assert [r["segment_id"] for r in rows] == ["mobile", "repeat"]
