"""Profile updates made by journeys: set, increment, tags, nested paths, one row lock."""

from __future__ import annotations

import asyncio

from journeyman.orchestrator.storage import connect, create_pool, migrate
from journeyman.orchestrator.storage.profiles import update_traits


async def test_updates_set_increment_tag_and_nest(database_url: str) -> None:
    conn = await connect(database_url)
    await migrate(conn)
    await conn.execute(
        "INSERT INTO profiles (customer_id, traits) VALUES"
        ' (\'c1\', \'{"points": "lots", "tags": ["vip"], "loyalty": {"tier": "bronze"}}\')'
    )
    traits = await update_traits(
        conn,
        customer_id="c1",
        set_traits={"loyalty.tier": "gold", "coupon": "SAVE10"},
        increment={"points": 5, "loyalty.points": 2.5},
        tags=["vip", "new"],
    )
    assert traits == {
        "points": 5,  # not a number before: counted from zero
        "tags": ["vip", "new"],
        "loyalty": {"tier": "gold", "points": 2.5},
        "coupon": "SAVE10",
    }
    # A customer the journey never saw gets a profile.
    assert await update_traits(
        conn, customer_id="c2", set_traits={}, increment={"points": 1}, tags=[]
    ) == {"points": 1}
    await conn.close()


async def test_concurrent_increments_are_not_lost(database_url: str) -> None:
    conn = await connect(database_url)
    await migrate(conn)
    await conn.close()
    pool = await create_pool(database_url)

    async def bump() -> None:
        async with pool.acquire() as held:
            await update_traits(held, customer_id="c", set_traits={}, increment={"n": 1}, tags=[])

    await asyncio.gather(*(bump() for _ in range(20)))
    assert (
        await pool.fetchval("SELECT (traits->>'n')::int FROM profiles WHERE customer_id = 'c'")
        == 20
    )
    await pool.close()
