"""The real Segment and RudderStack Python SDKs, unchanged, against the API on a real server.

The API runs under uvicorn on a free localhost port, in the test's event loop; the SDKs are
synchronous and run their own threads, so they are driven from a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import uvicorn
from rudderstack.analytics import Client as RudderClient  # type: ignore[import-untyped]
from segment.analytics import Client as SegmentClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from journeyman.orchestrator.api import Services, create_app
from journeyman.orchestrator.storage import connect, create_pool, migrate

from .conftest import ADMIN_TOKEN, WRITE_KEY

# A call made at a known time (the past, as a server-side import of history would).
CALLED_AT = datetime(2024, 5, 1, 9, 30, 15, 250000, tzinfo=UTC)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the test decides when it stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Statuses:
    """An ASGI wrapper that notes the status of every answer (to see a client's retry)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[int] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.seen.append(message["status"])
            await send(message)

        await self.app(scope, receive, noting)


@dataclass
class Served:
    url: str
    pool: asyncpg.Pool
    services: Services
    statuses: Statuses


@contextlib.asynccontextmanager
async def serve(database_url: str, **limits: Any) -> AsyncIterator[Served]:
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
        **limits,
    )
    statuses = Statuses(create_app(services, follow_deploys=False))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _Server(uvicorn.Config(statuses, log_level="warning", access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or serving.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield Served(f"http://127.0.0.1:{port}", pool, services, statuses)
    finally:
        server.should_exit = True
        await serving
        sock.close()
        await pool.close()


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[Served]:
    async with serve(database_url) as running:
        yield running


def _ids() -> dict[str, str]:
    return {
        name: str(uuid.uuid4())
        for name in ("identify", "track", "past", "page", "screen", "group", "alias", "anon")
    }


def send_every_call(client: Any, user: str, anon: str, ids: dict[str, str]) -> None:
    """Every Segment call, through the SDK's own methods (their signatures are the same)."""
    client.identify(
        user, {"email": f"{user}@example.com", "city": "Taipei"}, message_id=ids["identify"]
    )
    client.track(user, "Order Completed", {"total": 42.5}, message_id=ids["track"])
    client.track(
        user, "Coupon Redeemed", {"code": "SPRING"}, timestamp=CALLED_AT, message_id=ids["past"]
    )
    client.page(
        user, "Docs", "Pricing", {"url": "https://shop.example/pricing"}, message_id=ids["page"]
    )
    client.screen(user, None, "Wallet", {"coupons": 3}, message_id=ids["screen"])
    client.group(user, "acme", {"plan": "enterprise"}, message_id=ids["group"])
    client.alias(anon, user, message_id=ids["alias"])
    client.track(
        None, "Product Viewed", {"sku": "AC-50"}, anonymous_id=anon, message_id=ids["anon"]
    )


def segment_client(url: str, errors: list[object]) -> Any:
    return SegmentClient(
        WRITE_KEY,
        host=url,
        gzip=True,
        max_retries=3,
        upload_interval=0.05,
        on_error=lambda error, _batch: errors.append(error),
    )


def rudder_client(url: str, errors: list[object]) -> Any:
    return RudderClient(
        WRITE_KEY,
        host=url,
        gzip=True,
        max_retries=3,
        upload_interval=0.05,
        on_error=lambda error, _batch: errors.append(error),
    )


SDKS: dict[str, Callable[[str, list[object]], Any]] = {
    "segment-analytics-python": segment_client,
    "rudder-sdk-python": rudder_client,
}


async def rows_by_message(pool: asyncpg.Pool, ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT * FROM events WHERE message_id = ANY($1::text[])", list(ids.values())
    )
    by_id = {r["message_id"]: dict(r) for r in rows}
    assert len(by_id) == len(ids), f"stored {len(by_id)} of {len(ids)} messages"
    return {name: by_id[message_id] for name, message_id in ids.items()}


@pytest.mark.parametrize("sdk", sorted(SDKS))
async def test_an_sdk_sends_every_call_and_the_rows_say_what_it_sent(
    served: Served, sdk: str
) -> None:
    user, anon, ids = f"{sdk}-user", f"{sdk}-anon", _ids()
    errors: list[object] = []

    def send() -> None:
        client = SDKS[sdk](served.url, errors)
        send_every_call(client, user, anon, ids)
        client.flush()
        client.join()

    started = datetime.now(UTC)
    await asyncio.to_thread(send)
    assert errors == []
    rows = await rows_by_message(served.pool, ids)

    assert {name: row["type"] for name, row in rows.items()} == {
        "identify": "identify",
        "track": "track",
        "past": "track",
        "page": "page",
        "screen": "screen",
        "group": "group",
        "alias": "alias",
        "anon": "track",
    }
    # The alias joined the anonymous id into the user: its events belong to the user.
    assert {name: row["customer_id"] for name, row in rows.items()} == {name: user for name in ids}
    assert (rows["alias"]["user_id"], rows["anon"]["user_id"]) == (user, None)
    assert rows["anon"]["anonymous_id"] == anon
    assert rows["identify"]["traits"] == {"email": f"{user}@example.com", "city": "Taipei"}
    assert (rows["track"]["event"], rows["track"]["properties"]) == (
        "Order Completed",
        {"total": 42.5},
    )
    assert (rows["page"]["event"], rows["page"]["properties"]) == (
        "Pricing",
        {"url": "https://shop.example/pricing", "name": "Pricing", "category": "Docs"},
    )
    assert (rows["screen"]["event"], rows["screen"]["properties"]) == (
        "Wallet",
        {"coupons": 3, "name": "Wallet"},
    )
    assert rows["group"]["traits"] == {"plan": "enterprise"}
    assert rows["track"]["context"]["library"]["name"] == "analytics-python"
    profile = await served.pool.fetchval("SELECT traits FROM profiles WHERE customer_id = $1", user)
    assert profile["email"] == f"{user}@example.com"

    for name, row in rows.items():
        # The SDKs stamp sentAt as they upload; the time is corrected by the spec's formula.
        assert row["source_id"] == "default"
        assert started <= row["received_at"] <= datetime.now(UTC), name
        assert row["sent_at"] is not None, name
        assert started - timedelta(seconds=5) <= row["sent_at"] <= datetime.now(UTC), name
    past = rows["past"]
    assert past["occurred_at"] == past["received_at"] - (past["sent_at"] - CALLED_AT)
    # Same machine, one clock: the correction moves a call by no more than the trip's time.
    assert abs(past["occurred_at"] - CALLED_AT) < timedelta(seconds=5)
    for name in ("identify", "track", "page", "anon"):
        assert started - timedelta(seconds=5) <= rows[name]["occurred_at"] <= datetime.now(UTC)


async def waiting_on_the_lock(conn: asyncpg.Connection) -> None:
    for _ in range(500):
        # Statistics views are a snapshot per transaction, and the lock holder is in one.
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no request came to wait on the lock")


async def test_the_segment_sdk_retries_a_503_after_retry_after_and_loses_nothing(
    database_url: str,
) -> None:
    ids = {f"m{i}": str(uuid.uuid4()) for i in range(5)}
    errors: list[object] = []
    async with serve(database_url, ingest_max_in_flight=1, ingest_queue_seconds=0.1) as live:
        lock = await connect(database_url)
        transaction = lock.transaction()
        await transaction.start()
        await lock.execute("LOCK TABLE events IN SHARE MODE")
        # Another sender's request takes the only slot and waits on the lock.
        blocker = RudderClient(WRITE_KEY, host=live.url, sync_mode=True, max_retries=0)
        blocked = asyncio.create_task(
            asyncio.to_thread(blocker.track, "someone", "Signed Up", message_id="blocker")
        )
        await waiting_on_the_lock(lock)

        def send() -> None:
            client = segment_client(live.url, errors)
            for i, message_id in enumerate(ids.values()):
                client.track(f"u{i}", "Checkout Started", message_id=message_id)
            client.flush()
            client.join()

        sending = asyncio.create_task(asyncio.to_thread(send))
        try:
            for _ in range(500):
                if 503 in live.statuses.seen:
                    break
                await asyncio.sleep(0.01)
            assert 503 in live.statuses.seen, f"answers so far: {live.statuses.seen}"
        finally:
            await transaction.rollback()
            await lock.close()
        await blocked
        await sending
        assert errors == []
        assert live.statuses.seen.count(503) >= 1 and live.statuses.seen[-1] == 200
        stored = await live.pool.fetch(
            "SELECT message_id, count(*) AS n FROM events GROUP BY message_id"
        )
    assert {r["message_id"]: r["n"] for r in stored} == {
        "blocker": 1,
        **{message_id: 1 for message_id in ids.values()},
    }
