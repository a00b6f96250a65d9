"""A customer's events applied to their metrics at once (``apply_events``) leave the row and the
recency changes that applying them one at a time leaves.

"One at a time" is the reference below: how ingest moved metrics on before batches, one
event after the other, the row read under lock and one upsert that adds the event. Random
histories: late and out-of-order events, orders with whole, fractional and textual
quantities, channels and devices, satisfaction answers, engine events, customers new, active,
inactive or lost when the batch comes.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from journeyman.orchestrator.customers.classes import frequency_class, recency_class
from journeyman.orchestrator.customers.events import ENGINE_SOURCE
from journeyman.orchestrator.customers.metrics import (
    CustomerMetrics,
    RecencyChange,
    apply_event,
    apply_events,
    load,
    observe,
)
from journeyman.orchestrator.customers.settings import CustomerDataSettings
from journeyman.orchestrator.embedded import EmbeddedPostgres
from journeyman.orchestrator.ingest import IncomingEvent
from journeyman.orchestrator.storage import connect, migrate

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SETTINGS = CustomerDataSettings()


@pytest.fixture
async def conns(
    pg_server: EmbeddedPostgres,
) -> AsyncIterator[tuple[asyncpg.Connection, asyncpg.Connection]]:
    made = []
    for _ in range(2):
        conn = await connect(await pg_server.create_database(f"test_{uuid.uuid4().hex}"))
        await migrate(conn)
        made.append(conn)
    yield made[0], made[1]
    for conn in made:
        await conn.close()


def random_event(rng: random.Random, customer: str) -> IncomingEvent:
    at = NOW - timedelta(days=rng.choice([0, 0, 2, 20, 45, 200]), hours=rng.randrange(24))
    if rng.random() < 0.1:
        at = NOW + timedelta(hours=1)  # a client clock running fast
    context: dict[str, Any] = rng.choice(
        [{}, {"channel": "web"}, {"channel": "sms"}, {"device": {"type": "mobile"}}]
    )
    if rng.random() < 0.1:
        context = {"source": ENGINE_SOURCE}
    kind = "track"
    name: str | None = "Product Viewed"
    properties: dict[str, Any] = {}
    roll = rng.random()
    if roll < 0.35:
        name = "Order Completed"
        properties = {
            "revenue": rng.choice([10, 0.1, 0.2, "49.90", -5, None]),
            "products": [
                {
                    "product_id": rng.choice(["p1", "p2"]),
                    "category": rng.choice(["face", "body", None]),
                    "quantity": rng.choice([1, 2, 0.1, 0.2, "1.5", None, 0]),
                }
                for _ in range(rng.randrange(3))
            ],
        }
    elif roll < 0.5:
        name = "Survey Answered"
        properties = {"score": rng.choice([1, 7.5, 10, "9", "x", None])}
    elif roll < 0.6:
        kind, name = "identify", None
    return IncomingEvent(
        message_id=str(uuid.uuid4()),
        type=kind,
        customer_id=customer,
        event=name,
        properties=properties,
        traits={},
        context=context,
        occurred_at=at,
    )


async def prepare(conn: asyncpg.Connection, customer: str, start: str, seen: datetime) -> None:
    """The customer before the batch: unknown, or seen at ``seen`` and in class ``start``."""
    if start == "new":
        return
    first = IncomingEvent(
        message_id=str(uuid.uuid4()),
        type="track",
        customer_id=customer,
        event="Order Completed",
        properties={"revenue": 5, "products": [{"product_id": "p1", "category": "face"}]},
        traits={},
        context={"channel": "email", "device": {"type": "desktop"}},
        occurred_at=seen,
    )
    async with conn.transaction():
        await apply_event(conn, customer_id=customer, event=first, settings=SETTINGS, now=NOW)
    await conn.execute(
        "UPDATE customer_metrics SET recency_class = $2 WHERE customer_id = $1", customer, start
    )


# Each event's contribution added to the stored row in SQL: counts summed, first and latest
# times kept, the latest channel, device and satisfaction taken from an event at least as
# recent as what is stored.
_ADD = (
    "CASE WHEN excluded.{c} = '{{}}'::jsonb THEN m.{c} ELSE (SELECT coalesce("
    "jsonb_object_agg(key, total), '{{}}'::jsonb) FROM (SELECT key, sum(value::numeric) AS"
    " total FROM (SELECT key, value FROM jsonb_each_text(m.{c}) UNION ALL SELECT key, value"
    " FROM jsonb_each_text(excluded.{c})) AS counted GROUP BY key) AS summed) END"
)
_LATEST_SEEN = (
    "CASE WHEN excluded.{c} IS NOT NULL AND (m.last_seen_at IS NULL"
    " OR excluded.last_seen_at >= m.last_seen_at) THEN excluded.{c} ELSE m.{c} END"
)
_LATEST_ANSWER = (
    "CASE WHEN excluded.last_satisfaction IS NOT NULL AND (m.last_satisfaction_at IS NULL"
    " OR excluded.last_satisfaction_at >= m.last_satisfaction_at)"
    " THEN excluded.{c} ELSE m.{c} END"
)
REFERENCE_UPSERT = f"""
INSERT INTO customer_metrics AS m (customer_id, order_count, revenue_total, first_order_at,
    last_order_at, categories, products, last_seen_at, channels, devices, last_channel,
    last_device, last_satisfaction, last_satisfaction_at, frequency_class, recency_class)
VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
ON CONFLICT (customer_id) DO UPDATE SET
    order_count = m.order_count + excluded.order_count,
    revenue_total = m.revenue_total + excluded.revenue_total,
    first_order_at = least(m.first_order_at, excluded.first_order_at),
    last_order_at = greatest(m.last_order_at, excluded.last_order_at),
    categories = {_ADD.format(c="categories")},
    products = {_ADD.format(c="products")},
    last_seen_at = greatest(m.last_seen_at, excluded.last_seen_at),
    channels = {_ADD.format(c="channels")},
    devices = {_ADD.format(c="devices")},
    last_channel = {_LATEST_SEEN.format(c="last_channel")},
    last_device = {_LATEST_SEEN.format(c="last_device")},
    last_satisfaction = {_LATEST_ANSWER.format(c="last_satisfaction")},
    last_satisfaction_at = {_LATEST_ANSWER.format(c="last_satisfaction_at")},
    frequency_class = excluded.frequency_class,
    recency_class = excluded.recency_class
"""


def _least(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _greatest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


async def reference_apply(
    conn: asyncpg.Connection, customer_id: str, event: IncomingEvent
) -> RecencyChange | None:
    """One event, the way ingest applied each before it applied batches."""
    seen = observe(event, settings=SETTINGS, now=NOW)
    if seen is None:
        return None
    row = await conn.fetchrow(
        "SELECT order_count, revenue_total, first_order_at, last_order_at, last_seen_at,"
        " recency_class FROM customer_metrics WHERE customer_id = $1 FOR UPDATE",
        customer_id,
    )
    order_at = seen.at if seen.order else None
    order_count = (row["order_count"] if row else 0) + int(seen.order)
    revenue_total = (row["revenue_total"] if row else Decimal(0)) + seen.revenue
    first_order = _least(row["first_order_at"] if row else None, order_at)
    last_order = _greatest(row["last_order_at"] if row else None, order_at)
    last_seen = _greatest(row["last_seen_at"] if row else None, seen.at)
    assert last_seen is not None
    frequency = frequency_class(
        order_count=order_count,
        revenue_total=revenue_total,
        first_order_at=first_order,
        last_order_at=last_order,
        now=NOW,
        settings=SETTINGS,
    )
    recent = recency_class(last_seen, NOW, SETTINGS)
    previous = row["recency_class"] if row else None
    recency = recent if previous is None or recent == "active" else previous
    await conn.execute(
        REFERENCE_UPSERT,
        customer_id,
        int(seen.order),
        seen.revenue,
        order_at,
        dict(seen.categories),
        dict(seen.products),
        seen.at,
        {seen.channel: 1} if seen.channel else {},
        {seen.device: 1} if seen.device else {},
        seen.channel,
        seen.device,
        seen.satisfaction,
        seen.at if seen.satisfaction is not None else None,
        frequency,
        recency,
    )
    if previous is None or previous == recency:
        return None
    return RecencyChange(
        customer_id=customer_id, from_class=previous, to_class=recency, last_seen_at=last_seen
    )


def comparable(metrics: CustomerMetrics | None) -> dict[str, Any] | None:
    return None if metrics is None else metrics.model_dump(exclude={"updated_at"})


async def test_a_batch_of_events_leaves_the_metrics_one_at_a_time_would(
    conns: tuple[asyncpg.Connection, asyncpg.Connection],
) -> None:
    batched, single = conns
    rng = random.Random(7)
    changed = 0
    for number in range(60):
        customer = f"m{number}"
        start = rng.choice(["new", "active", "inactive", "lost"])
        seen = NOW - timedelta(days=rng.choice([1, 40, 120]))
        events = [random_event(rng, customer) for _ in range(rng.randrange(1, 9))]
        for conn in conns:
            await prepare(conn, customer, start, seen)
        async with batched.transaction():
            together = await apply_events(
                batched, [(customer, e) for e in events], settings=SETTINGS, now=NOW
            )
        alone: list[tuple[int, RecencyChange]] = []
        for position, event in enumerate(events):
            async with single.transaction():
                change = await reference_apply(single, customer, event)
            if change is not None:
                alone.append((position, change))
        assert together == alone, (start, events)
        assert comparable(await load(batched, customer)) == comparable(
            await load(single, customer)
        ), (start, events)
        changed += len(alone)
    assert changed > 5  # the histories did bring customers back


async def test_several_customers_in_one_batch_each_get_their_own(
    conns: tuple[asyncpg.Connection, asyncpg.Connection],
) -> None:
    batched, single = conns
    rng = random.Random(11)
    events = [random_event(rng, f"s{rng.randrange(6)}") for _ in range(40)]
    async with batched.transaction():
        await apply_events(
            batched, [(e.customer_id, e) for e in events], settings=SETTINGS, now=NOW
        )
    for event in events:
        async with single.transaction():
            await reference_apply(single, event.customer_id, event)
    for n in range(6):
        assert comparable(await load(batched, f"s{n}")) == comparable(await load(single, f"s{n}"))
