"""A customer's merges are found by index from either side, however many merges there are."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from journeyman.orchestrator.customers.view import MERGES_OF
from journeyman.orchestrator.storage import connect, create_pool, migrate


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    conn = await connect(database_url)
    await migrate(conn)
    await conn.close()
    pool = await create_pool(database_url)
    yield pool
    await pool.close()


async def test_the_customer_view_finds_merges_from_either_side_by_index(
    pool: asyncpg.Pool,
) -> None:
    await pool.executemany(
        "INSERT INTO customer_merges (from_id, into_id, reason) VALUES ($1, $2, 'identify')",
        [(f"anon-{n}", f"user-{n}") for n in range(200)],
    )
    async with pool.acquire() as conn:
        found = await conn.fetch(MERGES_OF, ["anon-7", "user-9"])
        assert [(r["from_id"], r["into_id"]) for r in found] == [
            ("anon-7", "user-7"),
            ("anon-9", "user-9"),
        ]
        async with conn.transaction():
            # With sequential scans off, a side without an index would still be scanned.
            await conn.execute("SET LOCAL enable_seqscan = off")
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {MERGES_OF}", ["anon-7"]))
    assert "Seq Scan" not in plan
    assert "customer_merges_from" in plan and "customer_merges_into" in plan
