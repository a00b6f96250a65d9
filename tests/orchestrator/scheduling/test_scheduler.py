"""The scheduler against real Postgres: audiences admitted once per firing, through the rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from journeyman.orchestrator.language import compile_source
from journeyman.orchestrator.scheduling import Scheduler
from journeyman.orchestrator.storage import connect, create_pool, deploy_plan, migrate

NEWSLETTER = """
id: weekly
name: Weekly picks for the over-forties
entry:
  schedule:
    cron: "0 9 * * *"
    audience: profile.age >= 40
  reentry: {after: 1d}
stages:
  - name: only
    touchpoints:
      - send: {id: picks, subject: "This week's picks", body: "Hi"}
"""


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    conn = await connect(database_url)
    await migrate(conn)
    await conn.close()
    created = await create_pool(database_url)
    yield created
    await created.close()


async def test_a_firing_admits_the_audience_once(pool: asyncpg.Pool) -> None:
    plan = compile_source(NEWSLETTER)
    async with pool.acquire() as conn:
        await deploy_plan(conn, plan=plan, source=NEWSLETTER)
        await conn.execute("UPDATE journey_versions SET deployed_at = now() - interval '2 days'")
        for customer, age in (("a", 45), ("b", 30), ("c", 61)):
            await conn.execute(
                "INSERT INTO profiles (customer_id, traits) VALUES ($1, $2)",
                customer,
                {"age": age},
            )
    scheduler = Scheduler(pool)
    now = datetime.now(UTC)
    assert await scheduler.tick(now) == 2
    entered = await pool.fetch("SELECT customer_id FROM journey_runs ORDER BY customer_id")
    assert [r["customer_id"] for r in entered] == ["a", "c"]
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 2
    # The same firing is never run twice, by this scheduler or another.
    assert await scheduler.tick(now) == 0
    assert await Scheduler(pool).tick(now + timedelta(minutes=1)) == 0
    firing = await pool.fetchrow("SELECT admitted, finished_at FROM schedule_firings")
    assert firing is not None and firing["admitted"] == 2 and firing["finished_at"] is not None


async def test_paused_journeys_are_not_fired(pool: asyncpg.Pool) -> None:
    plan = compile_source(NEWSLETTER)
    async with pool.acquire() as conn:
        await deploy_plan(conn, plan=plan, source=NEWSLETTER)
        await conn.execute("UPDATE journey_versions SET deployed_at = now() - interval '2 days'")
        await conn.execute("UPDATE journeys SET status = 'paused'")
        await conn.execute(
            "INSERT INTO profiles (customer_id, traits) VALUES ('a', '{\"age\": 50}')"
        )
    assert await Scheduler(pool).tick() == 0
    assert await pool.fetchval("SELECT count(*) FROM schedule_firings") == 0
