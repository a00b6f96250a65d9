"""What ingest leaves alone, so that a batch costs Postgres as little as it can.

A ``track`` sets nothing on its customer's profile: a profile that exists is not rewritten
(its row version stays the same), while an ``identify`` still merges its traits. The metrics
row moves with every event, so no index of ``customer_metrics`` may hold a column ingest moves
each time (``last_seen_at``): such an index makes every update write index entries instead of
an in-place (HOT) update.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from journeyman.orchestrator.embedded import EmbeddedPostgres
from journeyman.orchestrator.ingest import IncomingEvent, TriggerIndex, ingest
from journeyman.orchestrator.storage import connect, create_pool, migrate


@pytest.fixture
async def pool(pg_server: EmbeddedPostgres) -> AsyncIterator[asyncpg.Pool]:
    url = await pg_server.create_database(f"test_{uuid.uuid4().hex}")
    conn = await connect(url)
    await migrate(conn)
    await conn.close()
    made = await create_pool(url, max_size=2)
    yield made
    await made.close()


def _event(kind: str, customer: str, **fields: object) -> IncomingEvent:
    values: dict[str, object] = {
        "message_id": uuid.uuid4().hex,
        "type": kind,
        "customer_id": customer,
        "event": None,
        "properties": {},
        "traits": {},
        "context": {"channel": "web"},
        "occurred_at": datetime.now(UTC),
        "user_id": customer,
    }
    values.update(fields)
    return IncomingEvent.model_validate(values)


async def _profile(pool: asyncpg.Pool, customer: str) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT xmin::text AS version, traits, updated_at FROM profiles WHERE customer_id = $1",
        customer,
    )
    assert row is not None
    return row


async def test_a_track_leaves_an_existing_profile_row_alone(pool: asyncpg.Pool) -> None:
    index = TriggerIndex()
    await ingest(pool, events=[_event("identify", "ann", traits={"plan": "pro"})], index=index)
    before = await _profile(pool, "ann")

    tracks = [_event("track", "ann", event="Page Viewed") for _ in range(3)]
    result = await ingest(pool, events=tracks, index=index)
    assert result.accepted == 3
    assert await _profile(pool, "ann") == before

    await ingest(pool, events=[_event("identify", "ann", traits={"city": "Taipei"})], index=index)
    after = await _profile(pool, "ann")
    assert after["version"] != before["version"]
    assert after["traits"] == {"plan": "pro", "city": "Taipei"}
    assert after["updated_at"] > before["updated_at"]


async def test_a_track_of_a_new_customer_still_makes_their_profile(pool: asyncpg.Pool) -> None:
    await ingest(pool, events=[_event("track", "bob", event="Page Viewed")], index=TriggerIndex())
    assert (await _profile(pool, "bob"))["traits"] == {}


async def test_no_index_of_the_metrics_holds_what_every_event_moves(pool: asyncpg.Pool) -> None:
    indexed = await pool.fetch(
        "SELECT i.indexrelid::regclass::text AS index, a.attname AS column"
        " FROM pg_index i JOIN pg_attribute a"
        "   ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        " WHERE i.indrelid = 'customer_metrics'::regclass"
    )
    columns = {row["column"] for row in indexed}
    assert "customer_id" in columns  # the reading works: the primary key is there
    assert not columns & {"last_seen_at", "updated_at", "order_count", "channels"}
    # Nor an expression over them (indkey 0 marks an expression column).
    expressions = await pool.fetchval(
        "SELECT count(*) FROM pg_index WHERE indrelid = 'customer_metrics'::regclass"
        " AND indexprs IS NOT NULL"
    )
    assert expressions == 0
