"""``GET /metrics``: ingest counters and database gauges, read back with Prometheus's parser."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from journeyman.orchestrator.api import Services, create_app
from journeyman.orchestrator.api.backpressure import InFlightLimiter
from journeyman.orchestrator.embedded import EmbeddedPostgres
from journeyman.orchestrator.observability.metrics import DATABASE_SECONDS
from journeyman.orchestrator.storage import connect, create_pool, migrate

from .conftest import ADMIN_TOKEN, WRITE_KEY, Api

AUTH = (WRITE_KEY, "")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def message(kind: str, user: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "userId": user, "messageId": str(uuid.uuid4()), **fields}


def track(user: str, event: str, **props: Any) -> dict[str, Any]:
    return message("track", user, event=event, properties=props)


async def scrape(http: httpx.AsyncClient) -> Samples:
    """Every sample of a scrape (made without any credentials), parsed by the official parser."""
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


async def test_ingest_is_counted_by_type_outcome_reason_and_status(api: Api) -> None:
    await api.deploy()

    async def post(path: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
        return await api.http.post(path, json=body, **({"auth": AUTH} | kw))

    first, second = track("u1", "Signed Up", source="web"), track("u2", "Signed Up", source="web")
    for body in (first, second, first):  # the last: duplicate
        assert (await post("/v1/track", body)).status_code == 200
    ident = message("identify", "u1", traits={"plan": "pro"})
    assert (await post("/v1/identify", ident)).status_code == 200
    batch = [track("u3", "Product Viewed"), message("page", "u3", name="Home")]
    bad = [message("track", "u3"), {"type": "bogus", "userId": "u3"}]  # no event; no such type
    response = await post("/v1/batch", {"batch": [*batch, *bad]})
    assert response.status_code == 200 and len(response.json()["rejected"]) == 2
    sent = [m["messageId"] for m in (first, second, ident, *batch)]
    assert (await post("/v1/track", message("track", "u4"))).status_code == 400
    assert (await post("/v1/track", track("u5", "X"), auth=("wrong", ""))).status_code == 401

    samples = await scrape(api.http)

    stored = await api.pool.fetch(
        "SELECT type, count(*) AS n FROM events WHERE message_id = ANY($1) GROUP BY type", sent
    )
    assert {
        labels: v
        for labels, v in series(samples, "journeyman_ingest_messages_total").items()
        if ("outcome", "accepted") in labels
    } == {frozenset({("type", r["type"]), ("outcome", "accepted")}): r["n"] for r in stored}
    assert (
        value(samples, "journeyman_ingest_messages_total", type="track", outcome="duplicate") == 1
    )
    assert series(samples, "journeyman_ingest_messages_rejected_total") == {
        frozenset({("type", "track"), ("reason", "invalid")}): 2,
        frozenset({("type", "unknown"), ("reason", "invalid")}): 1,
    }
    assert series(samples, "journeyman_ingest_requests_total") == {
        frozenset({("status", "200")}): 5,
        frozenset({("status", "400")}): 1,
        frozenset({("status", "401")}): 1,
    }
    assert value(samples, "journeyman_ingest_request_duration_seconds_count") == 7
    assert value(samples, "journeyman_ingest_request_duration_seconds_bucket", le="+Inf") == 7
    assert series(samples, "journeyman_ingest_backpressure_total") == {}


async def test_backpressure_answers_are_counted(api: Api) -> None:
    api.services.ingest_limiter = InFlightLimiter(1, wait_seconds=0.05)
    async with api.services.ingest_limiter.slot():  # the one slot is taken: the next waits out
        response = await api.http.post("/v1/track", json=track("u1", "A"), auth=AUTH)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    samples = await scrape(api.http)
    assert series(samples, "journeyman_ingest_backpressure_total") == {
        frozenset({("reason", "overloaded")}): 1
    }
    assert value(samples, "journeyman_ingest_requests_total", status="503") == 1
    assert await api.count("events") == 0


async def _fill(api: Api) -> None:
    """Runs, outbox rows (one delivered, one old), deliveries and segment members."""
    await api.deploy()
    for user in ("u1", "u2", "u3"):
        entry = track(user, "Signed Up", source="web")
        assert (await api.http.post("/v1/t", json=entry, auth=AUTH)).status_code == 200
    run = "INSERT INTO journey_runs (journey_id, customer_id, version, workflow_id, stage, status)"
    await api.pool.executemany(
        f"{run} VALUES ($1, $2, $3, $4, $5, $6)",
        [
            ("lifecycle", "a1", "v-old", "w1", "awareness", "active"),
            ("lifecycle", "a2", "v-old", "w2", "awareness", "active"),
            ("lifecycle", "a3", "v-old", "w3", "consideration", "active"),
            ("lifecycle", "a4", "v-old", "w4", "consideration", "completed"),
            ("other", "a1", "v9", "w5", None, "exited"),
        ],
    )
    await api.pool.execute("UPDATE outbox SET delivered_at = now() WHERE customer_id = 'u1'")
    await api.pool.execute(
        "UPDATE outbox SET created_at = now() - interval '90 seconds' WHERE customer_id = 'u2'"
    )
    await api.pool.executemany(
        "INSERT INTO deliveries (send_key, journey_id, version, customer_id, step_id, channel,"
        " status) VALUES ($1, 'lifecycle', 'v-old', $2, 'welcome', $3, $4)",
        [
            ("k1", "a1", "email", "sent"),
            ("k2", "a2", "email", "sent"),
            ("k3", "a3", "email", "bounced"),
            ("k4", "a1", "sms", "failed"),
        ],
    )
    await api.pool.executemany(
        "INSERT INTO segment_memberships (segment_id, customer_id) VALUES ($1, $2)",
        [("vip", "a1"), ("vip", "a2"), ("churn-risk", "a3")],
    )


async def test_database_gauges_equal_independent_counts(api: Api) -> None:
    await _fill(api)
    samples = await scrape(api.http)
    db = api.pool

    assert value(samples, "journeyman_scrape_error") == 0
    pending = await db.fetchval("SELECT count(*) FROM outbox WHERE delivered_at IS NULL")
    assert pending == 2
    assert value(samples, "journeyman_outbox_pending") == pending
    assert value(samples, "journeyman_outbox_dead_letters") == 0
    delivered = await db.fetchval("SELECT count(*) FROM outbox WHERE delivered_at IS NOT NULL")
    assert value(samples, "journeyman_outbox_delivered_total") == delivered == 1
    assert 90 <= value(samples, "journeyman_outbox_oldest_pending_age_seconds") < 120

    deliveries = await db.fetch(
        "SELECT channel, status, count(*) AS n FROM deliveries GROUP BY 1, 2"
    )
    assert series(samples, "journeyman_deliveries") == {
        frozenset({("channel", r["channel"]), ("state", r["status"])}): r["n"] for r in deliveries
    }
    assert value(samples, "journeyman_deliveries", channel="email", state="sent") == 2

    runs = await db.fetch(
        "SELECT journey_id, version, coalesce(stage, '') AS stage, count(*) AS n"
        " FROM journey_runs WHERE status NOT IN ('completed', 'exited', 'converted')"
        " GROUP BY 1, 2, 3"
    )
    expected = {
        frozenset({("journey_id", r["journey_id"]), ("version", r["version"])})
        | {("stage", r["stage"])}: r["n"]
        for r in runs
    }
    assert series(samples, "journeyman_journey_runs") == expected
    assert (
        value(
            samples,
            "journeyman_journey_runs",
            journey_id="lifecycle",
            version="v-old",
            stage="awareness",
        )
        == 2
    )
    assert sum(expected.values()) == 3 + 3  # the three entrants of ingest, three active runs

    assert series(samples, "journeyman_segment_members") == {
        frozenset({("segment_id", "vip")}): 2,
        frozenset({("segment_id", "churn-risk")}): 1,
    }


@pytest.fixture
async def doomed(pg_server: EmbeddedPostgres) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The API over a database of its own, which the test may take away; and its name."""
    name = f"test_{uuid.uuid4().hex}"
    url = await pg_server.create_database(name)
    conn = await connect(url)
    await migrate(conn)
    await conn.close()
    pool = await create_pool(url)
    services = Services(
        pool=pool,
        database_url=url,
        write_key=WRITE_KEY,
        admin_token=ADMIN_TOKEN,
        max_body_bytes=1024,
    )
    app = create_app(services, follow_deploys=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://journeyman.test") as http:
        yield http, name
    pool.terminate()


async def test_a_database_outage_gives_a_scrape_with_the_error_set(
    doomed: tuple[httpx.AsyncClient, str], pg_server: EmbeddedPostgres
) -> None:
    http, name = doomed
    assert (await http.post("/v1/track", json=track("u1", "A"), auth=AUTH)).status_code == 200
    assert value(await scrape(http), "journeyman_scrape_error") == 0

    admin = await connect(pg_server.url)
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()

    samples = await scrape(http)
    assert value(samples, "journeyman_scrape_error") == 1
    assert series(samples, "journeyman_outbox_pending") == {}
    # This process's counters are still there.
    assert value(samples, "journeyman_ingest_messages_total", type="track", outcome="accepted") == 1


async def test_a_slow_database_cannot_hang_the_scrape(api: Api) -> None:
    locker = await api.pool.acquire()
    try:
        tx = locker.transaction()
        await tx.start()
        await locker.execute("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE")
        started = time.perf_counter()
        samples = await asyncio.wait_for(scrape(api.http), DATABASE_SECONDS + 5)
        assert time.perf_counter() - started < DATABASE_SECONDS
        await tx.rollback()
    finally:
        await api.pool.release(locker)
    assert value(samples, "journeyman_scrape_error") == 1
    assert value(await scrape(api.http), "journeyman_scrape_error") == 0


async def test_a_partly_repeated_batch_of_several_types_is_counted_as_mixed(api: Api) -> None:
    """Ingest reports accepted and duplicate per request, so such a batch has no exact split."""
    batch = [track("u1", "A"), message("page", "u1", name="Home")]
    assert (await api.http.post("/v1/b", json={"batch": batch}, auth=AUTH)).status_code == 200
    again = {"batch": [*batch, message("identify", "u1")]}
    response = await api.http.post("/v1/b", json=again, auth=AUTH)
    assert response.json()["accepted"] == 1 and response.json()["duplicates"] == 2
    samples = await scrape(api.http)
    assert series(samples, "journeyman_ingest_messages_total") == {
        frozenset({("type", "track"), ("outcome", "accepted")}): 1,
        frozenset({("type", "page"), ("outcome", "accepted")}): 1,
        frozenset({("type", "mixed"), ("outcome", "accepted")}): 1,
        frozenset({("type", "mixed"), ("outcome", "duplicate")}): 2,
    }
