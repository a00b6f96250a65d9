"""Metrics kept as events arrive, on a real Postgres: crafted histories for every class,
late and engine events, derived values, concurrent events and identity merges."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from journeyman.orchestrator.customers.events import ENGINE_SOURCE
from journeyman.orchestrator.customers.metrics import (
    CustomerMetrics,
    RecencyChange,
    apply_event,
    condition_values,
    load,
    merge,
    observe,
)
from journeyman.orchestrator.customers.settings import (
    CustomerDataSettings,
    parse_customer_settings,
)
from journeyman.orchestrator.ingest import IncomingEvent
from journeyman.orchestrator.storage import connect, create_pool, migrate
from journeyman.workflows.expressions import STORED_METRICS

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SETTINGS = CustomerDataSettings()


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(database_url)
    await migrate(connection)
    yield connection
    await connection.close()


def incoming(
    customer_id: str,
    name: str | None = "Product Viewed",
    *,
    at: datetime,
    kind: str = "track",
    context: dict[str, Any] | None = None,
    **properties: Any,
) -> IncomingEvent:
    return IncomingEvent.model_validate(
        {
            "message_id": str(uuid.uuid4()),
            "type": kind,
            "customer_id": customer_id,
            "event": name,
            "properties": properties,
            "traits": {},
            "context": context or {},
            "occurred_at": at,
        }
    )


def order(
    customer_id: str, *, at: datetime, products: list[Any] | None = None, **props: Any
) -> IncomingEvent:
    return incoming(customer_id, "Order Completed", at=at, products=products or [], **props)


async def apply(
    conn: asyncpg.Connection,
    event: IncomingEvent,
    *,
    now: datetime = NOW,
    settings: CustomerDataSettings = SETTINGS,
) -> RecencyChange | None:
    async with conn.transaction():
        return await apply_event(
            conn, customer_id=event.customer_id, event=event, settings=settings, now=now
        )


async def stored(conn: asyncpg.Connection, customer_id: str) -> CustomerMetrics:
    found = await load(conn, customer_id)
    assert found is not None, f"no metrics for {customer_id}"
    return found


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


# Orders and what is derived from them.


async def test_orders_add_up_with_products_and_categories(conn: asyncpg.Connection) -> None:
    await apply(
        conn,
        order(
            "ann",
            at=ago(20),
            revenue=120.5,
            products=[
                {"product_id": "cream-1", "category": "anti-aging", "quantity": 2, "price": 50},
                {"sku": "SERUM-9", "category": "serums", "price": 20.5},  # no quantity: one
            ],
        ),
    )
    await apply(
        conn,
        order(
            "ann",
            at=ago(5),
            total=79.5,  # no revenue: the total stands in
            products=[{"product_id": "cream-1", "category": "anti-aging", "quantity": 1}],
        ),
    )
    metrics = await stored(conn, "ann")
    assert metrics.order_count == 2
    assert metrics.revenue_total == Decimal("200.0")
    assert metrics.first_order_at == ago(20)
    assert metrics.last_order_at == ago(5)
    assert metrics.categories == {"anti-aging": 3, "serums": 1}
    assert metrics.products == {"cream-1": 3, "SERUM-9": 1}
    assert metrics.average_order_value == Decimal(100)
    assert metrics.top_categories == ["anti-aging", "serums"]
    assert metrics.top_products == ["cream-1", "SERUM-9"]
    assert metrics.last_seen_at == ago(5)


async def test_top_lists_keep_five_by_units_ties_in_name_order(conn: asyncpg.Connection) -> None:
    products = [
        {"product_id": f"p{i}", "category": f"c{i}", "quantity": units}
        for i, units in enumerate([1, 7, 3, 3, 9, 2, 3])
    ]
    await apply(conn, order("bo", at=ago(1), revenue=10, products=products))
    metrics = await stored(conn, "bo")
    assert metrics.top_products == ["p4", "p1", "p2", "p3", "p6"]
    assert metrics.top_categories == ["c4", "c1", "c2", "c3", "c6"]


@pytest.mark.parametrize(
    ("properties", "revenue"),
    [
        ({"revenue": 30, "total": 99}, Decimal(30)),  # revenue first
        ({"revenue": "49.90"}, Decimal("49.90")),  # numeric text
        ({"revenue": "a lot", "total": 12}, Decimal(12)),  # junk: the next property
        ({"revenue": -5, "total": 7}, Decimal(7)),  # a negative order is not revenue
        ({"revenue": True}, Decimal(0)),  # a boolean is not a number
        ({"revenue": 1e300}, Decimal(0)),  # absurd
        ({}, Decimal(0)),  # still an order, without revenue
    ],
)
async def test_revenue_property_fallbacks(
    conn: asyncpg.Connection, properties: dict[str, Any], revenue: Decimal
) -> None:
    await apply(conn, order("cy", at=ago(1), **properties))
    metrics = await stored(conn, "cy")
    assert (metrics.order_count, metrics.revenue_total) == (1, revenue)


async def test_odd_products_are_skipped(conn: asyncpg.Connection) -> None:
    await apply(
        conn,
        order(
            "di",
            at=ago(1),
            revenue=10,
            products=[
                "not a product",
                {"product_id": "a", "category": "x", "quantity": 0},  # nothing bought
                {"product_id": "b", "category": "x", "quantity": "two"},  # not a number
                {"product_id": "c", "category": "x", "quantity": 1.5},
                {"product_id": "", "category": 7, "quantity": 2},  # no id; a numeric category
                {"product_id": "d" * 300, "quantity": 1},  # not a name
            ],
        ),
    )
    metrics = await stored(conn, "di")
    assert metrics.products == {"c": 1.5}
    assert metrics.categories == {"x": 1.5, "7": 2}


async def test_order_mapping_is_configurable(conn: asyncpg.Connection) -> None:
    settings = parse_customer_settings(
        "orders: {event: Purchase, revenue: [amount], products: items, product_id: [ref],"
        " category: aisle, quantity: qty}"
    )
    event = incoming(
        "ed", "Purchase", at=ago(1), amount=40, items=[{"ref": "r1", "aisle": "bio", "qty": 4}]
    )
    await apply(conn, event, settings=settings)
    await apply(conn, order("ed", at=ago(1), revenue=999), settings=settings)  # not an order here
    metrics = await stored(conn, "ed")
    assert (metrics.order_count, metrics.revenue_total) == (1, Decimal(40))
    assert (metrics.products, metrics.categories) == ({"r1": 4}, {"bio": 4})


# Interaction mode, satisfaction, late and engine events.


async def test_channels_and_devices_are_counted(conn: asyncpg.Connection) -> None:
    for days, channel, device in [
        (9, "web", "desktop"),
        (8, "web", "mobile"),
        (7, "email", "mobile"),
        (6, "web", None),
        (5, "live chat", "tablet"),
    ]:
        context: dict[str, Any] = {"channel": channel}
        if device is not None:
            context["device"] = {"type": device, "model": "x"}
        await apply(conn, incoming("fay", at=ago(days), context=context))
    await apply(conn, incoming("fay", at=ago(4), context={"channel": {"odd": 1}}))
    metrics = await stored(conn, "fay")
    assert metrics.channels == {"web": 3, "email": 1, "live chat": 1}
    assert metrics.devices == {"desktop": 1, "mobile": 2, "tablet": 1}
    assert (metrics.last_channel, metrics.last_device) == ("live chat", "tablet")
    assert (metrics.preferred_channel, metrics.preferred_device) == ("web", "mobile")
    assert metrics.last_seen_at == ago(4)  # the odd context still counts as activity


async def test_late_events_fill_counts_but_move_nothing_back(conn: asyncpg.Connection) -> None:
    await apply(conn, order("gus", at=ago(2), revenue=10, products=[]))
    await apply(conn, incoming("gus", at=ago(1), context={"channel": "sms"}))
    # Arrives now, happened months ago.
    await apply(conn, order("gus", at=ago(100), revenue=5), now=NOW)
    await apply(conn, incoming("gus", at=ago(50), context={"channel": "web", "device": {}}))
    metrics = await stored(conn, "gus")
    assert metrics.order_count == 2
    assert (metrics.first_order_at, metrics.last_order_at) == (ago(100), ago(2))
    assert metrics.last_seen_at == ago(1)
    assert metrics.last_channel == "sms"
    assert metrics.channels == {"sms": 1, "web": 1}


async def test_an_event_from_the_future_counts_as_now(conn: asyncpg.Connection) -> None:
    await apply(conn, order("hal", at=NOW + timedelta(days=3), revenue=1))
    metrics = await stored(conn, "hal")
    assert metrics.last_seen_at == NOW
    assert metrics.last_order_at == NOW


async def test_the_latest_satisfaction_answer_is_kept(conn: asyncpg.Connection) -> None:
    await apply(conn, incoming("ivy", "Survey Answered", at=ago(10), score=4))
    await apply(conn, incoming("ivy", "Survey Answered", at=ago(3), score=9.5))
    await apply(conn, incoming("ivy", "Survey Answered", at=ago(20), score=1))  # late
    await apply(conn, incoming("ivy", "Survey Answered", at=ago(1), score="n/a"))  # no score
    metrics = await stored(conn, "ivy")
    assert (metrics.last_satisfaction, metrics.last_satisfaction_at) == (9.5, ago(3))
    assert metrics.last_seen_at == ago(1)
    nps = parse_customer_settings("satisfaction: {event: NPS, score: nps}")
    await apply(conn, incoming("ivy", "NPS", at=ago(0), nps=10), settings=nps)
    assert (await stored(conn, "ivy")).last_satisfaction == 10


async def test_engine_events_are_not_activity(conn: asyncpg.Connection) -> None:
    engine = {"source": ENGINE_SOURCE}
    assert await apply(conn, incoming("jo", "Became Inactive", at=ago(0), context=engine)) is None
    assert await load(conn, "jo") is None
    await apply(conn, incoming("jo", at=ago(40)))
    await apply(conn, order("jo", at=ago(0), revenue=5000, context=engine))
    metrics = await stored(conn, "jo")
    assert (metrics.last_seen_at, metrics.order_count) == (ago(40), 0)
    assert observe(incoming("jo", at=NOW, context=engine), settings=SETTINGS, now=NOW) is None


async def test_every_message_type_is_activity(conn: asyncpg.Connection) -> None:
    for days, kind in enumerate(["identify", "page", "screen", "group", "alias"], start=1):
        await apply(conn, incoming(f"k-{kind}", None, at=ago(days), kind=kind))
        assert (await stored(conn, f"k-{kind}")).last_seen_at == ago(days)


# Classes through crafted histories.


async def test_frequency_class_follows_the_history(conn: asyncpg.Connection) -> None:
    classes = []
    # Five orders 45 days apart, 180 days in all, then a big one.
    for n, days in enumerate([180, 135, 90, 45, 0]):
        await apply(conn, order("liv", at=ago(days), revenue=100), now=ago(days))
        classes.append((await stored(conn, "liv")).frequency_class)
        assert (await stored(conn, "liv")).order_count == n + 1
    assert classes == ["sporadic", "sporadic", "regular", "regular", "loyal"]
    await apply(conn, order("liv", at=NOW, revenue=500))
    assert (await stored(conn, "liv")).frequency_class == "vip"  # 1000 in all


async def test_regular_lapses_into_sporadic_when_orders_spread(conn: asyncpg.Connection) -> None:
    for days in (300, 280, 260):
        await apply(conn, order("max", at=ago(days), revenue=10), now=ago(days))
    assert (await stored(conn, "max")).frequency_class == "regular"
    await apply(conn, order("max", at=NOW, revenue=10))  # 100 days on average now
    assert (await stored(conn, "max")).frequency_class == "sporadic"


async def test_loyal_once_tenure_is_reached(conn: asyncpg.Connection) -> None:
    for days in (190, 189, 188, 187):
        await apply(conn, order("ned", at=ago(days), revenue=10), now=ago(days))
    assert (await stored(conn, "ned")).frequency_class == "regular"
    # The fifth order: five orders, the first 190 days ago.
    await apply(conn, order("ned", at=ago(1), revenue=10))
    assert (await stored(conn, "ned")).frequency_class == "loyal"


async def test_browsing_alone_stays_none(conn: asyncpg.Connection) -> None:
    await apply(conn, incoming("oli", at=ago(1)))
    assert (await stored(conn, "oli")).frequency_class == "none"


async def test_recency_changes_only_for_a_known_customer(conn: asyncpg.Connection) -> None:
    # First sight: no change to report, whatever the class.
    assert await apply(conn, incoming("pam", at=ago(1))) is None
    assert (await stored(conn, "pam")).recency_class == "active"
    assert await apply(conn, incoming("quin", at=ago(120))) is None
    assert (await stored(conn, "quin")).recency_class == "lost"
    # Activity now makes a lost customer active: the caller records that.
    change = await apply(conn, incoming("quin", at=ago(0)))
    assert change == RecencyChange(
        customer_id="quin", from_class="lost", to_class="active", last_seen_at=NOW
    )
    assert change.event_name == "Became Active"
    assert change.message_id == "recency:quin:active:2025-06-01T12:00:00+00:00"
    recorded = change.event(occurred_at=NOW)
    assert (recorded.properties["from"], recorded.properties["to"]) == ("lost", "active")
    assert recorded.context == {"source": ENGINE_SOURCE}
    # Already active: nothing to report.
    assert await apply(conn, incoming("quin", at=ago(0))) is None


async def test_a_late_event_does_not_reactivate(conn: asyncpg.Connection) -> None:
    await apply(conn, incoming("ray", at=ago(100)))
    await conn.execute("UPDATE customer_metrics SET recency_class = 'inactive'")
    # 31 days old: counted, but not activity recent enough to be active now.
    assert await apply(conn, incoming("ray", at=ago(31))) is None
    metrics = await stored(conn, "ray")
    assert (metrics.recency_class, metrics.last_seen_at) == ("inactive", ago(31))
    change = await apply(conn, incoming("ray", at=ago(30)))  # exactly 30 days: active
    assert change is not None and (change.from_class, change.to_class) == ("inactive", "active")


async def test_concurrent_events_for_one_customer_all_count(database_url: str) -> None:
    conn = await connect(database_url)
    await migrate(conn)
    await conn.close()
    pool = await create_pool(database_url, max_size=8)
    try:

        async def one(i: int) -> None:
            async with pool.acquire() as c, c.transaction():
                event = order("sam", at=ago(i), revenue=1, products=[{"product_id": "p"}])
                await apply_event(c, customer_id="sam", event=event, settings=SETTINGS, now=NOW)

        await asyncio.gather(*(one(i) for i in range(24)))
        async with pool.acquire() as c:
            metrics = await stored(c, "sam")
        assert (metrics.order_count, metrics.revenue_total) == (24, Decimal(24))
        assert metrics.products == {"p": 24}
        assert (metrics.first_order_at, metrics.last_order_at) == (ago(23), ago(0))
    finally:
        await pool.close()


# Reading.


async def test_condition_values_are_the_metrics_conditions_read(conn: asyncpg.Connection) -> None:
    await apply(
        conn,
        order(
            "tia",
            at=ago(3),
            revenue=90,
            products=[{"product_id": "c1", "category": "anti-aging"}],
            context={"channel": "web", "device": {"type": "mobile"}},
        ),
    )
    await apply(conn, incoming("tia", "Survey Answered", at=ago(2), score=8))
    values = (await stored(conn, "tia")).as_condition_values()
    assert list(values) == list(STORED_METRICS)
    assert values == {
        "frequency": "sporadic",
        "recency": "active",
        "order_count": 1,
        "revenue_total": 90.0,
        "average_order_value": 90.0,
        "first_order_at": "2025-05-29T12:00:00+00:00",
        "last_order_at": "2025-05-29T12:00:00+00:00",
        "top_categories": ["anti-aging"],
        "top_products": ["c1"],
        "last_seen_at": "2025-05-30T12:00:00+00:00",
        "preferred_channel": "web",
        "preferred_device": "mobile",
        "last_channel": "web",
        "last_device": "mobile",
        "last_satisfaction": 8.0,
        "last_satisfaction_at": "2025-05-30T12:00:00+00:00",
    }


async def test_a_customer_never_seen_has_no_metrics(conn: asyncpg.Connection) -> None:
    assert await load(conn, "nobody") is None
    values = condition_values(None)
    assert list(values) == list(STORED_METRICS)
    assert (values["frequency"], values["recency"], values["order_count"]) == ("none", None, 0)
    assert values["average_order_value"] is None
    assert values["top_categories"] == []


# Identity merges.


async def test_merge_adds_both_sides_up(conn: asyncpg.Connection) -> None:
    # The anonymous side: browsing on mobile, one order, recently.
    await apply(
        conn,
        order(
            "anon-1",
            at=ago(10),
            revenue=30,
            products=[{"product_id": "p1", "category": "serums", "quantity": 1}],
            context={"channel": "web", "device": {"type": "mobile"}},
        ),
    )
    await apply(conn, incoming("anon-1", at=ago(2), context={"channel": "web"}))
    # The known side: two orders, then a survey, and not seen for a while.
    for days in (60, 30):
        await apply(
            conn,
            order(
                "uma",
                at=ago(days),
                revenue=100,
                products=[{"product_id": "p1", "category": "anti-aging", "quantity": 2}],
                context={"channel": "email", "device": {"type": "desktop"}},
            ),
            now=ago(days),
        )
    await apply(conn, incoming("uma", "Survey Answered", at=ago(25), score=6), now=ago(25))
    await conn.execute(
        "UPDATE customer_metrics SET recency_class = 'inactive' WHERE customer_id = 'uma'"
    )
    assert {(await stored(conn, c)).frequency_class for c in ("uma", "anon-1")} == {"sporadic"}

    async with conn.transaction():
        change = await merge(conn, from_id="anon-1", into_id="uma", settings=SETTINGS, now=NOW)

    assert await load(conn, "anon-1") is None
    metrics = await stored(conn, "uma")
    assert metrics.order_count == 3
    assert metrics.revenue_total == Decimal(230)
    assert (metrics.first_order_at, metrics.last_order_at) == (ago(60), ago(10))
    assert metrics.products == {"p1": 5}
    assert metrics.categories == {"anti-aging": 4, "serums": 1}
    assert metrics.channels == {"web": 2, "email": 2}
    assert metrics.devices == {"mobile": 1, "desktop": 2}
    assert metrics.last_seen_at == ago(2)
    assert (metrics.last_channel, metrics.last_device) == ("web", "mobile")
    assert (metrics.last_satisfaction, metrics.last_satisfaction_at) == (6, ago(25))
    assert metrics.frequency_class == "regular"  # three orders 25 days apart on average
    assert metrics.recency_class == "active"  # the side seen last
    assert change == RecencyChange(
        customer_id="uma", from_class="inactive", to_class="active", last_seen_at=ago(2)
    )


async def test_merge_into_a_customer_without_metrics(conn: asyncpg.Connection) -> None:
    await apply(conn, order("anon-2", at=ago(1), revenue=12))
    async with conn.transaction():
        assert await merge(conn, from_id="anon-2", into_id="vic", settings=SETTINGS) is None
    assert await load(conn, "anon-2") is None
    metrics = await stored(conn, "vic")
    assert (metrics.order_count, metrics.revenue_total) == (1, Decimal(12))


async def test_merge_without_a_joined_side_changes_nothing(conn: asyncpg.Connection) -> None:
    await apply(conn, order("wes", at=ago(1), revenue=12))
    before = await stored(conn, "wes")
    async with conn.transaction():
        assert await merge(conn, from_id="ghost", into_id="wes", settings=SETTINGS) is None
        assert await merge(conn, from_id="wes", into_id="wes", settings=SETTINGS) is None
    assert await stored(conn, "wes") == before
