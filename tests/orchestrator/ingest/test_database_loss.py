"""Postgres going away in the middle of an ingest transaction is a 503 that stored nothing.

The API runs over a real Postgres, called in-process through ASGI. Another connection holds
the row lock of a customer's metrics, so a batch for that customer waits inside its
transaction (its events already inserted); that backend is then terminated with
``pg_terminate_backend``, as a database restart or a failover does. The client must get a
503 with ``Retry-After`` (docs/ingest.md: retry, the messageId dedupes), nothing of the batch
may be stored, and the same batch, retried, is stored once.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from journeyman.orchestrator.api import Services, create_app
from journeyman.orchestrator.api.backpressure import (
    DATABASE_RETRY_AFTER,
    database_unavailable_is_503,
)
from journeyman.orchestrator.api.errors import ApiError
from journeyman.orchestrator.storage import connect, create_pool, migrate

WRITE_KEY = "wk_database_loss"
WRITER = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
CUSTOMER = "held-customer"


@dataclass
class Ingest:
    http: httpx.AsyncClient
    pool: asyncpg.Pool
    url: str

    async def count(self, table: str, customer_id: str = CUSTOMER) -> int:
        return int(
            await self.pool.fetchval(
                f"SELECT count(*) FROM {table} WHERE customer_id = $1", customer_id
            )
        )


@pytest.fixture
async def ingest_api(database_url: str) -> AsyncIterator[Ingest]:
    conn = await connect(database_url)
    await migrate(conn)
    await conn.close()
    pool = await create_pool(database_url)
    services = Services(
        pool=pool,
        database_url=database_url,
        write_key=WRITE_KEY,
        admin_token="adm_database_loss",
        max_body_bytes=1024 * 1024,
    )
    await services.refresh_index()
    app = create_app(services, follow_deploys=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://journeyman.test") as http:
        yield Ingest(http, pool, database_url)
    await pool.close()


def _batch(n: int) -> dict[str, object]:
    return {
        "batch": [
            {
                "type": "track",
                "userId": CUSTOMER,
                "event": "Page Viewed",
                "messageId": f"loss-{i}-{uuid.uuid4().hex}",
                "context": {"channel": "web"},
            }
            for i in range(n)
        ]
    }


async def _waiting_backend(conn: asyncpg.Connection, holder: int) -> int:
    """The pid of the backend waiting for the lock ``holder`` holds (within 10 s)."""
    async with asyncio.timeout(10):
        while True:
            pid = await conn.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", holder
            )
            if pid is not None:
                return int(pid)
            await asyncio.sleep(0.01)


async def test_a_backend_terminated_mid_transaction_is_a_503_that_stored_nothing(
    ingest_api: Ingest,
) -> None:
    # The customer exists, so the batch's metrics read waits on the row this test locks.
    first = await ingest_api.http.post("/v1/batch", json=_batch(1), headers=WRITER)
    assert first.status_code == 200, first.text
    events_before = await ingest_api.count("events")
    body = _batch(20)

    holder = await asyncpg.connect(ingest_api.url)
    try:
        async with holder.transaction():
            await holder.execute(
                "SELECT 1 FROM customer_metrics WHERE customer_id = $1 FOR UPDATE", CUSTOMER
            )
            posting = asyncio.create_task(
                ingest_api.http.post("/v1/batch", json=body, headers=WRITER)
            )
            victim = await _waiting_backend(holder, holder.get_server_pid())
            # Its events are inserted by now: the transaction is well under way.
            assert await holder.fetchval("SELECT pg_terminate_backend($1)", victim)
        response = await posting
    finally:
        await holder.close()

    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == str(DATABASE_RETRY_AFTER)
    assert response.json()["error"] == "database_unavailable"
    assert await ingest_api.count("events") == events_before
    assert await ingest_api.count("customer_metrics") == 1

    # The pool replaces the lost connection: the retry is stored, once.
    retried = await ingest_api.http.post("/v1/batch", json=body, headers=WRITER)
    assert retried.status_code == 200, retried.text
    assert retried.json()["accepted"] == 20
    assert await ingest_api.count("events") == events_before + 20


def test_an_interface_error_after_the_connection_was_lost_is_a_503() -> None:
    # What a rollback raises once the statement before it lost the connection.
    with pytest.raises(ApiError) as caught, database_unavailable_is_503():
        try:
            raise ConnectionResetError("connection reset by peer")
        except OSError:
            raise asyncpg.InterfaceError("the underlying connection is closed") from None
    assert caught.value.status == 503
    assert caught.value.code == "database_unavailable"


def test_an_interface_error_of_its_own_is_no_503() -> None:
    # A connection misused by the code is a bug to see, not "retry later".
    with pytest.raises(asyncpg.InterfaceError), database_unavailable_is_503():
        raise asyncpg.InterfaceError("cannot perform operation: another operation is in progress")
