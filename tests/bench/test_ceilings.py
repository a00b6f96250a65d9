"""The ingest ceilings write exactly the rows ingest stored, by COPY and by batched upsert."""

from __future__ import annotations

import json

import asyncpg
import pytest

from bench.ceilings import batches, copy_batch, event_columns, read_rows, upsert_batch, upsert_sql
from journeyman.orchestrator.embedded import EmbeddedPostgres
from journeyman.orchestrator.roles import prepare_database

ROWS = 250


async def _stored(url: str) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(url)
    try:
        names = ", ".join(name for name, _ in await event_columns(conn))
        return [
            tuple(r) for r in await conn.fetch(f"SELECT {names} FROM events ORDER BY message_id")
        ]
    finally:
        await conn.close()


@pytest.fixture
async def source(database_url: str) -> str:
    """A migrated database holding events of every shape ingest stores."""
    await prepare_database(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO events (message_id, type, customer_id, event, properties, traits,"
            " context, occurred_at, user_id, anonymous_id, sent_at, source_id)"
            " SELECT 'm-' || n, CASE WHEN n % 10 = 0 THEN 'identify' ELSE 'track' END,"
            " 'ing-' || (n % 40), CASE WHEN n % 10 = 0 THEN NULL ELSE 'Page Viewed' END,"
            " jsonb_build_object('n', n, 'tab', E'a\\tb', 'quote', 'say \"hi\"'),"
            " CASE WHEN n % 10 = 0 THEN '{\"email\": \"x@example.com\"}'::jsonb ELSE '{}' END,"
            " $1::jsonb, now() - n * interval '1 minute', 'ing-' || (n % 40),"
            " CASE WHEN n % 7 = 0 THEN 'anon-' || n END, NULL, NULL"
            " FROM generate_series(1, $2) AS n",
            json.dumps({"library": {"name": "analytics-python"}, "ip": "203.0.113.7"}),
            ROWS,
        )
        # Rows the ceilings must leave out (the warm-up's customers).
        await conn.execute(
            "INSERT INTO events (message_id, type, customer_id, occurred_at)"
            " VALUES ('w-1', 'track', 'warm-1', now())"
        )
    finally:
        await conn.close()
    return database_url


async def _target(pg_server: EmbeddedPostgres, name: str) -> str:
    url = await pg_server.create_database(name)
    await prepare_database(url)
    return url


async def test_copy_and_upsert_store_the_same_rows(
    source: str, pg_server: EmbeddedPostgres, database_url: str
) -> None:
    columns, rows = await read_rows(source, "customer_id LIKE 'ing-%'")
    names = [name for name, _ in columns]
    assert "id" not in names and "message_id" in names and "received_at" in names
    assert len(rows) == ROWS
    expected = await _stored(source)
    expected = [row for row in expected if row[names.index("customer_id")] != "warm-1"]

    copied = await _target(pg_server, f"{database_url.rsplit('/', 1)[1]}_copy")
    conn = await asyncpg.connect(copied)
    try:
        for batch in batches(rows, 100):
            await copy_batch(conn, names, batch)
    finally:
        await conn.close()
    assert await _stored(copied) == expected

    upserted = await _target(pg_server, f"{database_url.rsplit('/', 1)[1]}_upsert")
    statement = upsert_sql(columns)
    conn = await asyncpg.connect(upserted)
    try:
        for batch in batches(rows, 100):
            await upsert_batch(conn, statement, batch)
        # The same messages again (an SDK retrying): deduped on message_id, nothing added.
        await upsert_batch(conn, statement, rows[:100])
    finally:
        await conn.close()
    assert await _stored(upserted) == expected


def test_the_upsert_is_one_statement_over_column_arrays() -> None:
    sql = upsert_sql(
        [("message_id", "text"), ("properties", "jsonb"), ("at", "timestamp with time zone")]
    )
    assert sql == (
        "INSERT INTO events (message_id, properties, at) SELECT * FROM unnest($1::text[],"
        " $2::jsonb[], $3::timestamp with time zone[]) ON CONFLICT (message_id) DO NOTHING"
    )
    assert [len(b) for b in batches([(n,) for n in range(250)], 100)] == [100, 100, 50]
