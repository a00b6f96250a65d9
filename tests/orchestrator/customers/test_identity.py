"""One identity per person: anonymous then identified, two known profiles, runs handed over."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from journeyman.orchestrator.customers import identity
from journeyman.orchestrator.customers.events import RUN_ENDED
from journeyman.orchestrator.ingest import IncomingEvent, TriggerIndex, ingest
from journeyman.orchestrator.language import compile_source
from journeyman.orchestrator.storage import active_plans, create_pool, deploy_plan, migrate

CART = """
id: cart
name: Cart
entry: {event: Checkout Started}
stages:
  - name: only
    goal: {event: Order Completed}
    touchpoints:
      - send: {id: hi, subject: "Hi", body: "Hello"}
"""


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url)
    async with pool.acquire() as conn:
        await migrate(conn)
        await deploy_plan(conn, plan=compile_source(CART), source=CART)
    yield pool
    await pool.close()


async def index(pool: asyncpg.Pool) -> TriggerIndex:
    return TriggerIndex.build(*await active_plans(pool))


def message(
    kind: str, *, user: str | None = None, anon: str | None = None, **fields: Any
) -> IncomingEvent:
    return IncomingEvent(
        message_id=str(uuid.uuid4()),
        type=kind,
        customer_id=user or anon or "",
        user_id=user,
        anonymous_id=anon,
        event=fields.pop("event", None),
        properties=fields.pop("properties", {}),
        traits=fields.pop("traits", {}),
        context={},
        occurred_at=fields.pop("at", datetime.now(UTC)),
        **fields,
    )


async def send(pool: asyncpg.Pool, *events: IncomingEvent) -> None:
    await ingest(pool, events=list(events), index=await index(pool))


async def owners(pool: asyncpg.Pool) -> dict[str, str]:
    rows = await pool.fetch("SELECT event, customer_id FROM events WHERE type = 'track'")
    return {row["event"]: row["customer_id"] for row in rows}


async def test_events_before_login_belong_to_the_customer_after_identify(
    pool: asyncpg.Pool,
) -> None:
    earlier = datetime.now(UTC) - timedelta(hours=1)
    await send(
        pool,
        message("track", anon="anon-1", event="Product Viewed", at=earlier),
        message("identify", anon="anon-1", traits={"city": "Lyon", "email": "old@example.com"}),
    )
    await send(
        pool,
        message("identify", user="u-1", anon="anon-1", traits={"email": "ana@example.com"}),
        message("track", anon="anon-1", event="Cart Viewed"),  # later, still anonymous
    )
    assert await owners(pool) == {"Product Viewed": "u-1", "Cart Viewed": "u-1"}
    traits = await pool.fetchval("SELECT traits FROM profiles WHERE customer_id = 'u-1'")
    assert traits == {"city": "Lyon", "email": "ana@example.com"}  # the known side wins
    assert await pool.fetchval("SELECT count(*) FROM profiles WHERE customer_id = 'anon-1'") == 0
    merges = await pool.fetch("SELECT from_id, into_id, reason, moved FROM customer_merges")
    assert [(m["from_id"], m["into_id"], m["reason"]) for m in merges] == [
        ("anon-1", "u-1", "identify")
    ]
    # The view, the anonymous identify, and the batch's later view (stored under the
    # anonymous id first: a batch is stored in customer order).
    assert merges[0]["moved"]["events"] == 3
    assert await identity.canonical(pool, "anon-1") == "u-1"


async def test_an_anonymous_id_already_joined_to_someone_else_stays_with_them(
    pool: asyncpg.Pool,
) -> None:
    # A shared device: the second person to log in does not absorb the first.
    await send(pool, message("identify", user="u-1", anon="device-1"))
    await send(pool, message("identify", user="u-2", anon="device-1"))
    assert await identity.canonical(pool, "device-1") == "u-1"
    assert await pool.fetchval("SELECT count(*) FROM customer_merges") == 1


async def test_alias_merges_two_known_customers_and_chains_resolve(pool: asyncpg.Pool) -> None:
    await send(
        pool,
        message("identify", user="old-id", traits={"tier": "gold", "city": "Porto"}),
        message("identify", user="new-id", traits={"city": "Lisbon"}),
        message("identify", user="older", anon="anon-9"),
    )
    await send(pool, message("alias", user="old-id", previous_id="older"))
    await send(pool, message("alias", user="new-id", previous_id="old-id"))
    for alias in ("older", "anon-9", "old-id"):
        assert await identity.canonical(pool, alias) == "new-id"
    traits = await pool.fetchval("SELECT traits FROM profiles WHERE customer_id = 'new-id'")
    assert traits == {"tier": "gold", "city": "Lisbon"}
    reasons = await pool.fetch("SELECT reason FROM customer_merges ORDER BY id")
    assert [r["reason"] for r in reasons] == ["identify", "alias", "alias"]


async def test_a_running_journey_is_handed_over_to_the_merged_customer(pool: asyncpg.Pool) -> None:
    await send(pool, message("track", anon="anon-1", event="Checkout Started"))
    await send(pool, message("identify", user="u-1", anon="anon-1"))
    runs = await pool.fetch("SELECT workflow_id, customer_id, status FROM journey_runs")
    assert [(r["workflow_id"], r["customer_id"], r["status"]) for r in runs] == [
        ("journey/cart/anon-1", "u-1", "entering")
    ]
    # The customer's next event reaches the run they are in, under either id.
    await send(pool, message("track", user="u-1", event="Order Completed"))
    targets = await pool.fetch("SELECT workflow_id FROM outbox ORDER BY id")
    assert [t["workflow_id"] for t in targets] == ["journey/cart/anon-1", "journey/cart/anon-1"]


async def test_when_both_sides_are_on_a_journey_one_run_is_ended(pool: asyncpg.Pool) -> None:
    await send(
        pool,
        message("track", anon="anon-1", event="Checkout Started"),
        message("track", user="u-1", event="Checkout Started"),
    )
    await send(pool, message("identify", user="u-1", anon="anon-1"))
    runs = await pool.fetch("SELECT workflow_id, status FROM journey_runs ORDER BY workflow_id")
    assert [(r["workflow_id"], r["status"]) for r in runs] == [
        ("journey/cart/anon-1", "exited"),
        ("journey/cart/u-1", "entering"),
    ]
    ended = await pool.fetch(
        "SELECT o.workflow_id, o.payload FROM outbox o WHERE o.payload->'event'->>'name' = $1",
        RUN_ENDED,
    )
    assert [e["workflow_id"] for e in ended] == ["journey/cart/anon-1"]
    assert ended[0]["payload"]["event"]["properties"] == {"reason": "merged"}
    # Later events reach only the run that goes on: no message twice.
    await send(pool, message("track", anon="anon-1", event="Order Completed"))
    last = await pool.fetchval("SELECT workflow_id FROM outbox ORDER BY id DESC LIMIT 1")
    assert last == "journey/cart/u-1"


async def test_a_merge_moves_sent_messages_so_caps_count_both_sides(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "INSERT INTO deliveries (send_key, journey_id, version, customer_id, step_id, channel,"
        " status) VALUES ('k1', 'cart', 'v', 'anon-1', 'hi', 'email', 'sent')"
    )
    await send(pool, message("identify", user="u-1", anon="anon-1"))
    assert await pool.fetchval("SELECT customer_id FROM deliveries") == "u-1"


async def test_consent_is_kept_apart_from_traits(pool: asyncpg.Pool) -> None:
    await send(
        pool,
        message("identify", user="u-1", traits={"name": "Ana", "consent": {"email": True}}),
        message("identify", user="u-1", traits={"consent": {"sms": False}}),
    )
    row = await pool.fetchrow("SELECT traits, consent FROM profiles WHERE customer_id = 'u-1'")
    assert row["traits"] == {"name": "Ana"}
    assert row["consent"] == {"email": True, "sms": False}


async def test_group_traits_describe_the_account_not_the_customer(pool: asyncpg.Pool) -> None:
    await send(pool, message("group", user="u-1", group_id="acme", traits={"name": "Acme Inc"}))
    assert await pool.fetchval("SELECT traits FROM profiles WHERE customer_id = 'u-1'") == {}
    assert await pool.fetchval("SELECT group_id FROM events WHERE type = 'group'") == "acme"


async def test_an_alias_keeps_the_id_it_joined(pool: asyncpg.Pool) -> None:
    await send(pool, message("alias", user="u-1", previous_id="anon-7"))
    row = await pool.fetchrow("SELECT customer_id, previous_id FROM events WHERE type = 'alias'")
    assert row is not None and (row["customer_id"], row["previous_id"]) == ("u-1", "anon-7")
