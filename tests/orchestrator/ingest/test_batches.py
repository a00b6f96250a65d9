"""A batch leaves Postgres as its messages stored one at a time would (in the batch's order).

Ingest stores a batch with a few set-based statements per chunk; the same messages sent one
per request go through chunks of one. Two databases get the same mixed traffic (many
customers, identify and track interleaved, merges and aliases, duplicates, orders, channels
and devices, late events, customers coming back from inactivity, entries under every
re-entry policy and a cap, segments of every kind), one as batches and one message at a
time, and must end up the same, but for segment changes within a transaction (evaluated once,
at its end, in both; so no journey here is entered on one, whose runs would differ with it).
Also: a concurrent entry is retried, never doubled, entry caps count the batch's own
entries, and the number of statements does not grow with the batch.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest

from journeyman.orchestrator.customers.definitions import SegmentDefinition
from journeyman.orchestrator.customers.events import ENGINE_SOURCE
from journeyman.orchestrator.embedded import EmbeddedPostgres
from journeyman.orchestrator.ingest import IncomingEvent, TriggerIndex, ingest, writes
from journeyman.orchestrator.ingest.journey_routing import signal_of
from journeyman.orchestrator.ingest.writes import ConcurrentEntry
from journeyman.orchestrator.language import compile_source
from journeyman.orchestrator.storage import active_plans, create_pool, deploy_plan, migrate
from journeyman.workflows.inputs import JourneyEvent

NOW = datetime.now(UTC)

JOURNEYS = [
    """
id: lifecycle
name: Lifecycle
entry: {event: Signed Up, where: {source: web}}
stages:
  - name: awareness
    goal: {event: Product Viewed}
    touchpoints:
      - send: {id: welcome, subject: "Welcome", body: "Hello"}
""",
    """
id: cart
name: Cart
entry: {event: Checkout Started, reentry: {concurrent: cart_id}}
stages:
  - name: only
    goal: {event: Order Completed}
    touchpoints:
      - send: {id: hi, subject: "Hi", body: "Hello"}
""",
    """
id: capped
name: Capped
entry: {event: Signed Up, cap: {total: 5}}
stages:
  - name: only
    touchpoints:
      - send: {id: hi, subject: "Hi", body: "Hello"}
""",
    """
id: welcome-back
name: Welcome back
entry: {event: Became Active}
stages:
  - name: only
    touchpoints:
      - send: {id: back, subject: "Back", body: "Hello again"}
""",
]

SEGMENTS = [
    SegmentDefinition(
        segment_id="in_lyon", version="v1", name="In Lyon", condition='profile.city == "Lyon"'
    ),
    SegmentDefinition(
        segment_id="repeat", version="v1", name="Repeat", condition="metrics.order_count >= 2"
    ),
    SegmentDefinition(
        segment_id="browsing",
        version="v1",
        name="Browsing",
        condition='count("Product Viewed", within: 30d) >= 2',
    ),
    SegmentDefinition(
        segment_id="recent",
        version="v1",
        name="Recent buyers",
        condition="metrics.days_since_last_order <= 10",
    ),
    SegmentDefinition(
        segment_id="mobile",
        version="v1",
        name="Mobile",
        condition='metrics.preferred_device == "mobile" and metrics.recency == "active"',
    ),
]


@pytest.fixture
async def pools(pg_server: EmbeddedPostgres) -> AsyncIterator[tuple[asyncpg.Pool, asyncpg.Pool]]:
    made = []
    for _ in range(2):
        pool = await create_pool(await pg_server.create_database(f"test_{uuid.uuid4().hex}"))
        async with pool.acquire() as conn:
            await migrate(conn)
            for source in JOURNEYS:
                await deploy_plan(conn, plan=compile_source(source), source=source)
        made.append(pool)
    yield made[0], made[1]
    for pool in made:
        await pool.close()


async def index(pool: asyncpg.Pool) -> TriggerIndex:
    return TriggerIndex.build(*await active_plans(pool), segments=SEGMENTS)


def message(kind: str, customer: str, *, anon: str | None = None, **fields: Any) -> IncomingEvent:
    return IncomingEvent(
        message_id=fields.pop("message_id", None) or str(uuid.uuid4()),
        type=kind,
        customer_id=customer,
        user_id=None if customer == anon else customer,
        anonymous_id=anon,
        previous_id=fields.pop("previous_id", None),
        event=fields.pop("event", None),
        properties=fields.pop("properties", {}),
        traits=fields.pop("traits", {}),
        context=fields.pop("context", {}),
        occurred_at=fields.pop("at", NOW),
    )


def traffic(seed: int, size: int) -> list[IncomingEvent]:
    """Mixed traffic of a shop: anonymous visitors who sign in, customers who browse, buy,
    come back after a while, answer surveys; some messages sent twice."""
    rng = random.Random(seed)
    out: list[IncomingEvent] = []
    for _ in range(size):
        customer = f"c{rng.randrange(25):02d}"
        at = NOW - timedelta(days=rng.choice([0, 0, 0, 1, 3, 12, 40]), minutes=rng.randrange(60))
        context = rng.choice(
            [{}, {"channel": "web"}, {"device": {"type": "mobile"}}, {"channel": "email"}]
        )
        roll = rng.random()
        if roll < 0.08:
            anon = f"a{rng.randrange(8)}"
            out.append(message("track", anon, anon=anon, event="Product Viewed", at=at))
        elif roll < 0.14:
            anon = f"a{rng.randrange(8)}"
            traits: dict[str, Any] = {
                "city": rng.choice(["Lyon", "Paris"]),
                "consent": {"email": True},
            }
            out.append(message("identify", customer, anon=anon, traits=traits, at=at))
        elif roll < 0.17:
            out.append(message("alias", customer, previous_id=f"c{rng.randrange(25):02d}", at=at))
        elif roll < 0.27:
            traits = {"city": rng.choice(["Lyon", "Paris", "Taipei"]), "plan": rng.random()}
            out.append(message("identify", customer, traits=traits, context=context, at=at))
        elif roll < 0.4:
            properties: dict[str, Any] = {"source": rng.choice(["web", "partner"])}
            out.append(message("track", customer, event="Signed Up", properties=properties))
        elif roll < 0.5:
            properties = {"cart_id": rng.choice(["k1", "k2", None])}
            out.append(message("track", customer, event="Checkout Started", properties=properties))
        elif roll < 0.62:
            products = [
                {"product_id": f"p{rng.randrange(4)}", "category": rng.choice(["face", "body"])},
                {"sku": "s1", "quantity": rng.choice([1, 2, 0.5, "1.5"])},
            ]
            properties = {"revenue": rng.choice([10, 25.5, "7.25"]), "products": products}
            out.append(
                message(
                    "track",
                    customer,
                    event="Order Completed",
                    properties=properties,
                    context=context,
                    at=at,
                )
            )
        elif roll < 0.67:
            properties = {"score": rng.choice([3, 9, 11, "8"]), "csat": rng.choice([None, 4])}
            out.append(message("track", customer, event="Survey Answered", properties=properties))
        else:
            out.append(
                message(
                    "track",
                    customer,
                    event="Product Viewed",
                    properties={"category": "face"},
                    context=context,
                    at=at,
                )
            )
        if rng.random() < 0.05:
            out.append(out[rng.randrange(len(out))])  # a retried message
    return out


SEEN_LONG_AGO = [
    message("track", f"c{n:02d}", event="Product Viewed", at=NOW - timedelta(days=90))
    for n in range(0, 25, 3)
]


async def seed(pool: asyncpg.Pool) -> None:
    """Customers seen long ago, now inactive or lost: their next activity brings them back."""
    await ingest(pool, events=SEEN_LONG_AGO, index=await index(pool))
    await pool.execute(
        "UPDATE customer_metrics SET recency_class ="
        " CASE WHEN customer_id < 'c10' THEN 'inactive' ELSE 'lost' END"
    )


async def state(pool: asyncpg.Pool) -> dict[str, Any]:
    """What the traffic left, without what differs by nature (ids, clocks, random engine ids)."""
    events = Counter(
        (
            r["message_id"] if r["engine"] is None else r["engine"],
            r["type"],
            r["customer_id"],
            r["event"],
            str(r["properties"]),
            str(r["traits"]),
            str(r["context"]),
            r["occurred_at"] if r["engine"] is None else None,
        )
        for r in await pool.fetch(
            "SELECT *, CASE WHEN context->>'source' = $1 AND message_id !~ '^recency:'"
            " THEN 'engine' END AS engine FROM events WHERE NOT (context->>'source' = $1"
            " AND event LIKE 'Segment %')",
            ENGINE_SOURCE,
        )
    )
    metrics = [
        {k: v for k, v in dict(r).items() if k != "updated_at"}
        for r in await pool.fetch("SELECT * FROM customer_metrics ORDER BY customer_id")
    ]
    # Each run's events in the order the dispatcher delivers them, but segment changes: those
    # are evaluated once per transaction (a batch's customer who joins and leaves a segment
    # within it never changed membership), and what they left is compared as ``members``.
    outbox: dict[str, list[tuple[Any, ...]]] = {}
    for r in await pool.fetch("SELECT * FROM outbox ORDER BY id"):
        event = r["payload"]["event"]
        if not event["name"].startswith("Segment "):
            row = (r["customer_id"], r["journey_id"], r["payload"]["entry"], event["name"])
            key = event["message_id"] if not event["message_id"].startswith("run-ended") else ""
            outbox.setdefault(r["workflow_id"], []).append((*row, key))
    return {
        "events": events,
        "profiles": [
            tuple(r)
            for r in await pool.fetch(
                "SELECT customer_id, traits::text, consent::text FROM profiles ORDER BY 1"
            )
        ],
        "metrics": metrics,
        "runs": [
            tuple(r)
            for r in await pool.fetch(
                "SELECT workflow_id, journey_id, customer_id, version, status, entry_key"
                " FROM journey_runs ORDER BY workflow_id"
            )
        ],
        "outbox": outbox,
        "aliases": [
            tuple(r)
            for r in await pool.fetch("SELECT alias, customer_id FROM customer_aliases ORDER BY 1")
        ],
        "merges": [
            tuple(r)
            for r in await pool.fetch(
                # What moved but the event count, which counts segment changes too.
                "SELECT from_id, into_id, reason, message_id, (moved - 'events')::text"
                " FROM customer_merges ORDER BY id"
            )
        ],
        "members": [
            tuple(r)
            for r in await pool.fetch(
                "SELECT segment_id, customer_id FROM segment_memberships ORDER BY 1, 2"
            )
        ],
    }


@pytest.mark.parametrize("seed_number", [1, 2, 3])
async def test_a_batch_ends_as_its_messages_one_at_a_time(
    pools: tuple[asyncpg.Pool, asyncpg.Pool], seed_number: int
) -> None:
    batched, single = pools
    for pool in pools:
        await seed(pool)
    messages = traffic(seed_number, 400)
    counts = {"batched": Counter[str](), "single": Counter[str]()}
    for start in range(0, len(messages), 100):
        batch = messages[start : start + 100]
        done = await ingest(batched, events=batch, index=await index(batched))
        counts["batched"].update(accepted=done.accepted, duplicates=done.duplicates)
        # One at a time, in the order a batch is taken: by customer, each one's in order.
        for one in sorted(batch, key=lambda e: e.customer_id):
            done = await ingest(single, events=[one], index=await index(single))
            counts["single"].update(accepted=done.accepted, duplicates=done.duplicates)
    assert counts["batched"] == counts["single"]
    assert counts["batched"]["duplicates"] > 0
    first, second = await state(batched), await state(single)
    assert first["events"] == second["events"]
    for part in ("profiles", "metrics", "runs", "aliases", "merges", "members"):
        assert first[part] == second[part], part
    assert first["outbox"] == second["outbox"]
    # The traffic did exercise what it is meant to.
    assert len(first["merges"]) >= 2 and len(first["runs"]) >= 10 and first["members"]
    assert any(name == "Became Active" for (_, _, _, name, *_) in first["events"])


async def test_an_entry_made_meanwhile_by_another_transaction_is_joined_not_doubled(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    pool, _ = pools
    version = await pool.fetchval("SELECT active_version FROM journeys WHERE journey_id = 'cart'")
    checkout = message("track", "u1", event="Checkout Started", properties={"cart_id": "k1"})
    async with pool.acquire() as other:
        entered = other.transaction()
        await entered.start()
        # Another request enters u1 for cart k1 and has not committed yet.
        await other.execute(
            "INSERT INTO journey_runs (journey_id, customer_id, version, workflow_id, entry_key)"
            " VALUES ('cart', 'u1', $1, 'journey/cart/u1', 'k1')",
            version,
        )
        storing = asyncio.create_task(ingest(pool, events=[checkout], index=await index(pool)))
        # Until ingest, having routed the event as an entry, waits on that run's row.
        for _ in range(1500):
            if await pool.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("ingest never waited for the run entered meanwhile")
        await entered.commit()
    result = await storing
    # Retried, it found the run and sent the event there, as an event of that run.
    assert (result.accepted, result.routed) == (1, 1)
    runs = await pool.fetch("SELECT workflow_id FROM journey_runs")
    assert [r["workflow_id"] for r in runs] == ["journey/cart/u1"]
    row = await pool.fetchrow("SELECT workflow_id, payload FROM outbox")
    assert row is not None and row["workflow_id"] == "journey/cart/u1"
    assert row["payload"]["entry"] is False
    assert row["payload"]["event"]["message_id"] == checkout.message_id


async def test_on_the_last_attempt_an_entry_that_lost_the_race_is_dropped(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    pool, _ = pools
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO journey_runs (journey_id, customer_id, version, workflow_id)"
            " VALUES ('cart', 'u1', 'v0', 'journey/cart/u1')"
        )
        stored = await writes.insert_events(conn, [message("track", "u1", event="A")])
        event_id = stored[0][1]
        lost = writes.NewRun("cart", "u1", "v1", "journey/cart/u1", None)
        won = writes.NewRun("cart", "u2", "v1", "journey/cart/u2", None)

        def rows() -> list[writes.OutboxRow]:
            return [
                writes.OutboxRow(event_id, "cart", "v1", customer, f"journey/cart/{customer}", {})
                for customer in ("u1", "u2")
            ]

        with pytest.raises(ConcurrentEntry, match="journey/cart/u1"):
            async with conn.transaction():
                await writes.write(
                    conn, writes.Writes(runs=[lost, won], outbox=rows()), conflicts="raise"
                )
        async with conn.transaction():
            written = await writes.write(
                conn, writes.Writes(runs=[lost, won], outbox=rows()), conflicts="skip"
            )
    assert written == 1
    outbox = await pool.fetch("SELECT workflow_id FROM outbox")
    assert [r["workflow_id"] for r in outbox] == ["journey/cart/u2"]
    versions = await pool.fetch("SELECT workflow_id, version FROM journey_runs ORDER BY 1")
    assert [tuple(r) for r in versions] == [("journey/cart/u1", "v0"), ("journey/cart/u2", "v1")]


async def test_caps_count_the_entries_of_the_batch_itself(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    pool, _ = pools
    signups = [message("track", f"u{n:02d}", event="Signed Up") for n in range(12)]
    await ingest(pool, events=signups, index=await index(pool))
    runs = await pool.fetch("SELECT customer_id FROM journey_runs WHERE journey_id = 'capped'")
    assert sorted(r["customer_id"] for r in runs) == ["u00", "u01", "u02", "u03", "u04"]


async def test_the_statements_of_a_batch_do_not_grow_with_it(pg_server: EmbeddedPostgres) -> None:
    url = await pg_server.create_database(f"test_{uuid.uuid4().hex}")
    pool = await create_pool(url, max_size=1)  # one connection: every statement is logged
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            for source in JOURNEYS:
                await deploy_plan(conn, plan=compile_source(source), source=source)
            statements: list[str] = []
            conn.add_query_logger(lambda record: statements.append(record.query))
        found = await index(pool)

        def batch(size: int, prefix: str) -> list[IncomingEvent]:
            # New or known customers, entries, events for their runs, orders, segments.
            names = ("Signed Up", "Order Completed", "Product Viewed")
            return [
                message("track", f"{prefix}{n}", event=names[n % 3], properties={"source": "web"})
                for n in range(size)
            ]

        counted = []
        # Both sizes do every kind of work: the second batch finds the cap reached, customers
        # entering a segment, runs to route to.
        for size, prefix in ((30, "small"), (300, "large")):
            await ingest(pool, events=batch(size, prefix), index=found)  # new customers
            statements.clear()
            await ingest(pool, events=batch(size, prefix), index=found)  # known ones
            counted.append(len(statements))
        assert counted[0] == counted[1], counted
        # BEGIN, events, metrics, runs, entry cap (2), the writes, segments (traits, history,
        # metrics, memberships, changes), their events and writes, COMMIT, the pool's reset.
        assert counted[0] <= 16, statements
    finally:
        await pool.close()


def test_a_routed_event_is_sent_as_the_run_reads_it() -> None:
    # The outbox payload is written without building the signal's model: the same JSON.
    for at in (NOW, datetime(2025, 1, 1, 10, 0, 0, 123, tzinfo=timezone(timedelta(hours=8)))):
        event = message(
            "track", "u1", event="Order Completed", properties={"total": 1.5, "items": [{}]}, at=at
        )
        assert signal_of(event) == JourneyEvent(
            message_id=event.message_id,
            name="Order Completed",
            properties=event.properties,
            occurred_at=at,
        ).model_dump(mode="json")
