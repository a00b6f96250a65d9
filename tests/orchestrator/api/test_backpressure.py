"""Backpressure on ingest: 503 with Retry-After past the in-flight limit or without a database,
and a client that retries loses nothing and stores nothing twice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from journeyman.orchestrator.api import Services, create_app
from journeyman.orchestrator.api.backpressure import InFlightLimiter
from journeyman.orchestrator.api.errors import ApiError
from journeyman.orchestrator.storage import connect, create_pool, migrate

from .conftest import ADMIN_TOKEN, WRITE_KEY

AUTH = (WRITE_KEY, "")


@contextlib.asynccontextmanager
async def ingest_api(
    database_url: str, *, max_in_flight: int, queue_seconds: float, pool_size: int
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    pool = await create_pool(database_url, min_size=0, max_size=pool_size)
    services = Services(
        pool=pool,
        database_url=database_url,
        write_key=WRITE_KEY,
        admin_token=ADMIN_TOKEN,
        max_body_bytes=512 * 1024,
        ingest_max_in_flight=max_in_flight,
        ingest_queue_seconds=queue_seconds,
    )
    app = create_app(services, follow_deploys=False)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://journeyman.test"
        ) as http:
            yield http, services
    finally:
        await pool.close()


@pytest.fixture
async def migrated(database_url: str) -> str:
    conn = await connect(database_url)
    await migrate(conn)
    await conn.close()
    return database_url


@contextlib.asynccontextmanager
async def events_locked(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """Hold a lock that makes every insert into ``events`` wait until the block ends."""
    conn = await connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE events IN SHARE MODE")
            yield conn
    finally:
        await conn.close()


def batch_of(count: int) -> dict[str, Any]:
    return {
        "batch": [
            {
                "type": "track",
                "userId": f"u{i}",
                "event": "Product Viewed",
                "messageId": str(uuid.uuid4()),
            }
            for i in range(count)
        ]
    }


def ids(*batches: dict[str, Any]) -> list[str]:
    return sorted(m["messageId"] for b in batches for m in b["batch"])


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(200):
        if await check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"timed out waiting for {what}")


async def waiting_on_locks(conn: asyncpg.Connection) -> int:
    # Statistics views are a snapshot per transaction, and the lock holder is in one.
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    )


async def stored_ids(database_url: str) -> list[str]:
    conn = await connect(database_url)
    try:
        return sorted(r["message_id"] for r in await conn.fetch("SELECT message_id FROM events"))
    finally:
        await conn.close()


async def test_past_the_in_flight_limit_ingest_is_503_and_a_retry_stores_everything_once(
    migrated: str,
) -> None:
    batches = [batch_of(3) for _ in range(3)]
    async with ingest_api(migrated, max_in_flight=2, queue_seconds=0.2, pool_size=4) as (
        http,
        services,
    ):
        async with events_locked(migrated) as lock:
            held = [
                asyncio.create_task(http.post("/v1/batch", json=b, auth=AUTH)) for b in batches[:2]
            ]

            async def both_blocked() -> bool:
                return await waiting_on_locks(lock) == 2

            await eventually(both_blocked, "two requests blocked on the lock")
            assert services.ingest_limiter.in_flight == 2
            refused = await http.post("/v1/batch", json=batches[2], auth=AUTH)
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error"] == "overloaded"
            assert "limit of 2 requests in flight" in refused.json()["message"]
        answers = await asyncio.gather(*held)
        assert [a.json()["accepted"] for a in answers] == [3, 3]
        assert services.ingest_limiter.in_flight == 0
        # The client retries what was refused, and resends a batch whose answer it missed.
        retried = await http.post("/v1/batch", json=batches[2], auth=AUTH)
        assert (retried.status_code, retried.json()["accepted"]) == (200, 3)
        resent = await http.post("/v1/batch", json=batches[0], auth=AUTH)
        assert (resent.json()["accepted"], resent.json()["duplicates"]) == (0, 3)
    assert await stored_ids(migrated) == ids(*batches)


async def test_a_request_waits_its_turn_when_a_slot_frees_within_the_wait(migrated: str) -> None:
    first, second = batch_of(2), batch_of(2)
    async with ingest_api(migrated, max_in_flight=1, queue_seconds=30, pool_size=2) as (
        http,
        services,
    ):
        async with events_locked(migrated) as lock:
            running = asyncio.create_task(http.post("/v1/batch", json=first, auth=AUTH))

            async def blocked() -> bool:
                return await waiting_on_locks(lock) == 1

            await eventually(blocked, "the first request blocked on the lock")
            queued = asyncio.create_task(http.post("/v1/b", json=second, auth=AUTH))

            async def in_queue() -> bool:
                return services.ingest_limiter.waiting == 1

            await eventually(in_queue, "the second request queued")
        answers = await asyncio.gather(running, queued)
        assert [a.status_code for a in answers] == [200, 200]
    assert await stored_ids(migrated) == ids(first, second)


async def test_no_free_database_connection_within_the_wait_is_503_and_retryable(
    migrated: str,
) -> None:
    first, second = batch_of(2), batch_of(2)
    async with ingest_api(migrated, max_in_flight=8, queue_seconds=0.2, pool_size=1) as (
        http,
        _,
    ):
        async with events_locked(migrated) as lock:
            running = asyncio.create_task(http.post("/v1/batch", json=first, auth=AUTH))

            async def blocked() -> bool:
                return await waiting_on_locks(lock) == 1

            await eventually(blocked, "the first request holding the only connection")
            refused = await http.post("/v1/batch", json=second, auth=AUTH)
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "5"
            assert refused.json()["error"] == "database_unavailable"
        assert (await running).json()["accepted"] == 2
        retried = await http.post("/v1/batch", json=second, auth=AUTH)
        assert retried.json()["accepted"] == 2
    assert await stored_ids(migrated) == ids(first, second)


async def test_an_unreachable_database_is_503_and_its_address_stays_out_of_the_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://journeyman:pw-never-logged@127.0.0.1:{port}/journeyman"
    caplog.set_level(logging.DEBUG, logger="journeyman")
    async with ingest_api(url, max_in_flight=4, queue_seconds=0.5, pool_size=2) as (http, _):
        response = await http.post("/v1/track", json=batch_of(1)["batch"][0], auth=AUTH)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "database cannot be reached" in response.json()["message"]
    assert "database unavailable" in caplog.text
    assert "pw-never-logged" not in caplog.text and str(port) not in caplog.text


# --- The limiter itself -----------------------------------------------------------------


async def settled(check: Callable[[], bool]) -> None:
    """Let the other tasks run until ``check`` holds."""
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("the tasks never reached the expected state")


async def test_the_limiter_serves_waiters_first_come_first_served() -> None:
    limiter = InFlightLimiter(1, wait_seconds=5)
    order: list[int] = []
    gate = asyncio.Event()

    async def work(n: int) -> None:
        async with limiter.slot():
            order.append(n)
            await gate.wait()

    tasks = [asyncio.create_task(work(n)) for n in range(4)]
    await settled(lambda: limiter.waiting == 3)
    assert (limiter.in_flight, limiter.waiting) == (1, 3)
    gate.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3]
    assert (limiter.in_flight, limiter.waiting) == (0, 0)


async def test_a_cancelled_or_timed_out_waiter_does_not_keep_a_slot() -> None:
    limiter = InFlightLimiter(1, wait_seconds=0.05)
    async with limiter.slot():
        with pytest.raises(ApiError) as refused:
            async with limiter.slot():
                pytest.fail("no slot should be free")
        assert refused.value.status == 503
        limiter.wait_seconds = 5
        waiter = asyncio.create_task(limiter.slot().__aenter__())
        await settled(lambda: limiter.waiting == 1)
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        assert limiter.waiting == 0
    assert limiter.in_flight == 0
    async with limiter.slot():
        assert limiter.in_flight == 1
