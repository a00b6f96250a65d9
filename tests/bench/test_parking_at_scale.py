"""Parking at scale: entries go out through the real ingest, held to a window, stopped by limits.

No worker runs here: ingest's routing creates a run row per entry at once, so counting run rows
stands in for "parked", and counting the stage's entries (which only a worker records) is a
count that never moves, which is what holds posting at the window and runs into the limits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import httpx
import pytest

from bench import parking, parking_at_scale, scale_phase
from bench.stack import ADMIN_TOKEN, WRITE_KEY
from journeyman.orchestrator.api import Services, create_app
from journeyman.orchestrator.storage import connect, create_pool, migrate

JOURNEY_ID = "bench_parked"


@pytest.fixture
async def ingest(database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, asyncpg.Pool]]:
    """The real API over a fresh database with the parked journey deployed, called through ASGI."""
    conn = await connect(database_url)
    await migrate(conn)
    await conn.close()
    pool = await create_pool(database_url)
    services = Services(
        pool=pool,
        database_url=database_url,
        write_key=WRITE_KEY,
        admin_token=ADMIN_TOKEN,
        max_body_bytes=512 * 1024,
    )
    await services.refresh_index()
    app = create_app(services, follow_deploys=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://journeyman.test") as client:
        deployed = await client.post(
            "/api/journeys",
            content=parking.JOURNEY_SOURCE,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert deployed.status_code == 201, deployed.text
        client.auth = (WRITE_KEY, "")  # what the bench posts entries with
        yield client, pool
    await pool.close()


def counter(pool: asyncpg.Pool, sql: str) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        return int(await pool.fetchval(sql, JOURNEY_ID))

    return count


RUNS = "SELECT count(*) FROM journey_runs WHERE journey_id = $1"
ENTERED = "SELECT coalesce(sum(entered), 0) FROM stage_kpis WHERE journey_id = $1"


def names(first: int, last: int) -> list[str]:
    return [parking.customer_name("t", i) for i in range(first, last)]


def no_failure() -> None:
    pass


async def test_every_customer_is_entered_once_and_counted(
    ingest: tuple[httpx.AsyncClient, asyncpg.Pool],
) -> None:
    client, pool = ingest
    first = await parking_at_scale.park(
        client,
        customers=names(0, 120),
        already=0,
        count=counter(pool, RUNS),
        clients=3,
        window=60,
        time_limit=60,
        min_free_mib=0,
        check=no_failure,
        label="test",
    )
    assert (first.reached, first.posted, first.stopped) == (120, 120, "")
    # A second size adds to the first: the customers already parked are not posted again.
    second = await parking_at_scale.park(
        client,
        customers=names(120, 175),
        already=120,
        count=counter(pool, RUNS),
        clients=2,
        window=60,
        time_limit=60,
        min_free_mib=0,
        check=no_failure,
        label="test",
    )
    assert (second.reached, second.posted, second.stopped) == (175, 175, "")
    assert await pool.fetchval(RUNS, JOURNEY_ID) == 175
    assert await pool.fetchval("SELECT count(DISTINCT customer_id) FROM journey_runs") == 175


async def test_posting_waits_at_the_window_and_stops_at_the_time_limit(
    ingest: tuple[httpx.AsyncClient, asyncpg.Pool],
) -> None:
    client, pool = ingest
    outcome = await parking_at_scale.park(
        client,
        customers=names(0, 500),
        already=0,
        count=counter(pool, ENTERED),  # nothing records entries without a worker
        clients=4,
        window=100,
        time_limit=2,
        min_free_mib=0,
        check=no_failure,
        label="test",
        drain_seconds=0.5,
    )
    assert outcome.stopped == "its 2 s of parking time were up"
    assert (outcome.reached, outcome.posted) == (0, 100)  # two requests of 50, then the wait
    assert await pool.fetchval(RUNS, JOURNEY_ID) == 100
    assert outcome.seconds >= 2


async def test_parking_stops_when_the_machine_runs_short_of_memory(
    ingest: tuple[httpx.AsyncClient, asyncpg.Pool],
) -> None:
    client, pool = ingest
    outcome = await parking_at_scale.park(
        client,
        customers=names(0, 50),
        already=0,
        count=counter(pool, ENTERED),
        clients=1,
        window=50,
        time_limit=60,
        min_free_mib=float("inf"),
        check=no_failure,
        label="test",
        drain_seconds=0.5,
    )
    assert outcome.stopped.startswith("the machine had ")
    assert outcome.stopped.endswith(" MiB of memory left")
    assert outcome.seconds < 10


async def test_a_failed_role_stops_parking_with_its_error(
    ingest: tuple[httpx.AsyncClient, asyncpg.Pool],
) -> None:
    client, pool = ingest

    def worker_gone() -> None:
        raise RuntimeError("the worker process has stopped")

    with pytest.raises(RuntimeError, match="worker process has stopped"):
        await parking_at_scale.park(
            client,
            customers=names(0, 50),
            already=0,
            count=counter(pool, ENTERED),
            clients=1,
            window=50,
            time_limit=60,
            min_free_mib=0,
            check=worker_gone,
            label="test",
        )


def test_each_size_parks_within_its_limit_and_what_is_left_of_the_budget() -> None:
    assert scale_phase.seconds_for_size(900, None, 5_000) == 900
    assert scale_phase.seconds_for_size(900, 3_600, 1_000) == 900
    assert scale_phase.seconds_for_size(900, 3_600, 3_000) == 600
    assert scale_phase.seconds_for_size(900, 3_600, 4_000) == 0
