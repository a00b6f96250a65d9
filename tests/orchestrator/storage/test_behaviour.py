"""Loading a condition's context from a real Postgres: traits, windows, the cap, the seed,
and the metrics row when a condition reads ``metrics.*``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from journeyman.orchestrator.customers.metrics import apply_event
from journeyman.orchestrator.customers.settings import CustomerDataSettings
from journeyman.orchestrator.ingest import IncomingEvent
from journeyman.orchestrator.storage import connect, migrate
from journeyman.orchestrator.storage.behaviour import MAX_EVENTS_PER_NAME, load_context
from journeyman.workflows.expressions import Needs, evaluate, needs, parse

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DAY = 86400

SEED = """(profile.gender == "female" and profile.age > 60
   and count("Order Completed", within: 6mo, where: category == "anti-aging") > 0)
or (profile.gender == "male" and profile.age between 20 and 29
   and count("Product Viewed", within: 30d, where: category == "anti-aging") > 0)"""


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(database_url)
    await migrate(connection)
    yield connection
    await connection.close()


async def profile(conn: asyncpg.Connection, customer_id: str, **traits: Any) -> None:
    await conn.execute(
        "INSERT INTO profiles (customer_id, traits) VALUES ($1, $2)", customer_id, traits
    )


async def track(
    conn: asyncpg.Connection,
    customer_id: str,
    event: str,
    days_ago: float,
    *,
    kind: str = "track",
    **properties: Any,
) -> None:
    await conn.execute(
        "INSERT INTO events (message_id, type, customer_id, event, properties, occurred_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        str(uuid.uuid4()),
        kind,
        customer_id,
        event,
        properties,
        NOW - timedelta(days=days_ago),
    )


async def test_loads_traits_and_each_events_own_window(conn: asyncpg.Connection) -> None:
    await profile(conn, "ann", age=61, address={"city": "Paris"})
    await track(conn, "ann", "Order Completed", 5, total=20)
    await track(conn, "ann", "Order Completed", 50, total=30)
    await track(conn, "ann", "Product Viewed", 1, sku="a")
    await track(conn, "ann", "Product Viewed", 3, sku="b")
    await track(conn, "ann", "Signed Up", 400)
    await track(conn, "ann", "Newsletter Opened", 1)  # not needed: never loaded
    await track(conn, "bob", "Order Completed", 1, total=99)  # another customer
    await track(conn, "ann", "Order Completed", 2, kind="page")  # not a track event
    needed = Needs(
        traits=frozenset({"age"}),
        events={"Order Completed": 10 * DAY, "Product Viewed": 2 * DAY, "Signed Up": None},
    )

    ctx = await load_context(
        conn, customer_id="ann", needs=needed, event={"cart_id": "c1"}, now=NOW
    )

    assert ctx.traits == {"age": 61, "address": {"city": "Paris"}}
    assert ctx.event == {"cart_id": "c1"}
    assert ctx.now == NOW
    assert set(ctx.history) == {"Order Completed", "Product Viewed", "Signed Up"}
    orders = ctx.history["Order Completed"]
    assert [(e.name, dict(e.properties), e.occurred_at) for e in orders] == [
        ("Order Completed", {"total": 20}, NOW - timedelta(days=5))
    ]
    assert [e.properties["sku"] for e in ctx.history["Product Viewed"]] == ["a"]
    assert [e.occurred_at for e in ctx.history["Signed Up"]] == [NOW - timedelta(days=400)]


async def test_a_customer_without_profile_or_events(conn: asyncpg.Connection) -> None:
    ctx = await load_context(
        conn,
        customer_id="nobody",
        needs=Needs(traits=frozenset(), events={"Order Completed": None}),
        event={},
        now=NOW,
    )
    assert ctx.traits == {}
    assert ctx.history == {"Order Completed": []}


async def test_no_behaviour_needed_reads_no_events(conn: asyncpg.Connection) -> None:
    await profile(conn, "ann", plan="pro")
    await track(conn, "ann", "Order Completed", 1)
    ctx = await load_context(
        conn, customer_id="ann", needs=needs(parse('profile.plan == "pro"')), event={}, now=NOW
    )
    assert ctx.traits == {"plan": "pro"}
    assert ctx.history == {}


async def test_only_the_most_recent_events_per_name_are_read(conn: asyncpg.Connection) -> None:
    # The newest MAX_EVENTS_PER_NAME visits are 1..N minutes old; five more are older still.
    await conn.execute(
        "INSERT INTO events (message_id, type, customer_id, event, properties, occurred_at)"
        " SELECT 'm' || i, 'track', 'ann', 'Visit', jsonb_build_object('i', i),"
        "        $1::timestamptz - make_interval(mins => i)"
        " FROM generate_series(1, $2::int) AS i",
        NOW,
        MAX_EVENTS_PER_NAME + 5,
    )
    await track(conn, "ann", "Order Completed", 1)
    needed = Needs(traits=frozenset(), events={"Visit": None, "Order Completed": None})

    ctx = await load_context(conn, customer_id="ann", needs=needed, event={}, now=NOW)

    visits = ctx.history["Visit"]
    assert len(visits) == MAX_EVENTS_PER_NAME
    assert {e.properties["i"] for e in visits} == set(range(1, MAX_EVENTS_PER_NAME + 1))
    assert len(ctx.history["Order Completed"]) == 1  # the cap is per name


@pytest.mark.parametrize(
    ("traits", "event", "days_ago", "expected"),
    [
        ({"gender": "female", "age": 61}, "Order Completed", 150, True),
        ({"gender": "female", "age": 61}, "Order Completed", 210, False),  # seven months ago
        ({"gender": "male", "age": 25}, "Product Viewed", 10, True),
        ({"gender": "male", "age": 25}, "Product Viewed", 45, False),
        ({"gender": "male", "age": 31}, "Product Viewed", 10, False),
    ],
)
async def test_seed_example_from_the_database(
    conn: asyncpg.Connection, traits: dict[str, Any], event: str, days_ago: int, expected: bool
) -> None:
    await profile(conn, "c1", **traits)
    await track(conn, "c1", event, days_ago, category="anti-aging")
    await track(conn, "c1", event, 1, category="skincare")
    expr = parse(SEED)

    ctx = await load_context(conn, customer_id="c1", needs=needs(expr), event={}, now=NOW)

    assert evaluate(expr, ctx) is expected


async def apply(
    conn: asyncpg.Connection, customer_id: str, event: str, days_ago: float, **properties: Any
) -> None:
    """Record activity in the customer's metrics, as ingest does."""
    incoming = IncomingEvent(
        message_id=str(uuid.uuid4()),
        type="track",
        customer_id=customer_id,
        event=event,
        properties=properties,
        traits={},
        context={"channel": "live chat"},
        occurred_at=NOW - timedelta(days=days_ago),
    )
    await apply_event(
        conn, customer_id=customer_id, event=incoming, settings=CustomerDataSettings(), now=NOW
    )


async def test_metrics_are_read_only_when_a_condition_reads_them(conn: asyncpg.Connection) -> None:
    await profile(conn, "ann", age=61)
    await apply(conn, "ann", "Order Completed", 3, revenue=60)
    plain = await load_context(
        conn, customer_id="ann", needs=needs(parse("profile.age > 60")), event={}, now=NOW
    )
    assert plain.metrics == {}
    reading = needs(parse('metrics.frequency == "sporadic"'))
    ctx = await load_context(conn, customer_id="ann", needs=reading, event={}, now=NOW)
    assert ctx.metrics["frequency"] == "sporadic"
    assert ctx.metrics["order_count"] == 1
    assert ctx.metrics["preferred_channel"] == "live chat"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ('metrics.frequency == "regular" and metrics.preferred_channel == "live chat"', True),
        ("metrics.order_count >= 3 and metrics.revenue_total == 180", True),
        ("metrics.average_order_value == 60", True),
        ('metrics.top_categories contains "anti-aging"', True),
        ("metrics.days_since_last_order == 10", True),
        ('metrics.recency == "active"', True),
        ("metrics.last_satisfaction >= 8", True),
        ('metrics.frequency == "vip"', False),
    ],
)
async def test_metrics_conditions_from_the_database(
    conn: asyncpg.Connection, condition: str, expected: bool
) -> None:
    for days in (50, 30, 10):
        products = [{"product_id": "cream", "category": "anti-aging"}]
        await apply(conn, "bea", "Order Completed", days, revenue=60, products=products)
    await apply(conn, "bea", "Survey Answered", 9, score=8)
    expr = parse(condition)
    ctx = await load_context(conn, customer_id="bea", needs=needs(expr), event={}, now=NOW)
    assert evaluate(expr, ctx) is expected


async def test_a_customer_without_metrics_reads_no_orders(conn: asyncpg.Connection) -> None:
    expr = parse(
        'metrics.frequency == "none" and metrics.order_count == 0 and metrics.recency is null'
        " and metrics.days_since_last_seen is null"
    )
    ctx = await load_context(conn, customer_id="nobody", needs=needs(expr), event={}, now=NOW)
    assert evaluate(expr, ctx)
