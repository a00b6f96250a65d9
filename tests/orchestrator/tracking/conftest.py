"""The API with links configured, over a real Postgres database, called in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from journeyman.orchestrator.api import Services, create_app
from journeyman.orchestrator.api.routes.tracking import install_tracking
from journeyman.orchestrator.storage import claim_send, connect, create_pool, finish_send, migrate
from journeyman.orchestrator.tracking import (
    DEFAULT_GROUPS,
    LinkToken,
    SubscriptionGroups,
    TrackingConfig,
)
from journeyman.orchestrator.tracking.links import Kind

WRITE_KEY = "wk_tracking_test"
ADMIN_TOKEN = "adm_tracking_test"
SECRET = "test-link-secret-5f0c2b7e9a1d4c3b8e6f"
PUBLIC_URL = "https://links.example.test"


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A migrated database's pool."""
    conn = await connect(database_url)
    await migrate(conn)
    await conn.close()
    pool = await create_pool(database_url)
    yield pool
    await pool.close()


@dataclass
class Links:
    http: httpx.AsyncClient
    pool: asyncpg.Pool
    services: Services
    config: TrackingConfig

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    async def count(self, table: str, where: str = "true", *args: Any) -> int:
        return int(await self.pool.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args))

    async def events(self, name: str) -> list[asyncpg.Record]:
        return list(
            await self.pool.fetch(
                "SELECT customer_id, properties, context FROM events WHERE event = $1 ORDER BY id",
                name,
            )
        )

    def token(
        self,
        kind: Kind,
        send_key: str,
        customer_id: str,
        *,
        url: str | None = None,
        group: str | None = None,
        issued_at: datetime | None = None,
    ) -> str:
        return self.config.signer.sign(
            LinkToken(
                kind=kind,
                send_key=send_key,
                customer_id=customer_id,
                issued_at=issued_at or datetime.now(UTC),
                url=url,
                group=group or ("email:marketing" if kind == "unsubscribe" else None),
            )
        )

    async def identify(self, customer_id: str, **traits: Any) -> None:
        response = await self.http.post(
            "/v1/identify", json={"userId": customer_id, "traits": traits}, auth=(WRITE_KEY, "")
        )
        assert response.status_code == 200, response.text

    async def sent(
        self,
        customer_id: str,
        *,
        email: str | None = None,
        journey_id: str = "newsletter",
        step_id: str = "monthly",
        send_key: str | None = None,
    ) -> str:
        """A message in the delivery ledger, as the send activity leaves it; its send key."""
        key = send_key or f"journey/{journey_id}/{customer_id}@run-1/awareness/{step_id}/0"
        await claim_send(
            self.pool,
            send_key=key,
            journey_id=journey_id,
            version="v1",
            customer_id=customer_id,
            step_id=step_id,
            channel="email",
        )
        await finish_send(
            self.pool, send_key=key, status="sent", recipient=email, subject="Our news"
        )
        return key


async def serve(
    pool: asyncpg.Pool,
    database_url: str,
    *,
    install: bool = True,
    groups: SubscriptionGroups = DEFAULT_GROUPS,
) -> Links:
    services = Services(
        pool=pool,
        database_url=database_url,
        write_key=WRITE_KEY,
        admin_token=ADMIN_TOKEN,
        max_body_bytes=64 * 1024,
    )
    await services.refresh_index()
    app = create_app(services, follow_deploys=False)
    config = install_tracking(app, secret=SECRET, public_url=PUBLIC_URL, groups=groups)
    if not install:
        del app.state.tracking
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://links.example.test"
    )
    return Links(http, pool, services, config)


@pytest.fixture
async def links(database: asyncpg.Pool, database_url: str) -> AsyncIterator[Links]:
    served = await serve(database, database_url)
    async with served.http:
        yield served
