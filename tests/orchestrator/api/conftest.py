"""The API over a real Postgres database, called in-process through ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from journeyman.orchestrator.api import Services, create_app
from journeyman.orchestrator.storage import connect, create_pool, migrate

WRITE_KEY = "wk_test_key"
ADMIN_TOKEN = "adm_test_token"

LIFECYCLE = """
id: lifecycle
name: Lifecycle
entry: {event: Signed Up, where: {source: web}}
stages:
  - name: awareness
    goal: {event: Product Viewed}
    touchpoints:
      - send: {id: welcome, subject: "Welcome", body: "Hello"}
  - name: consideration
    goal: {event: Checkout Started}
"""


@dataclass
class Api:
    http: httpx.AsyncClient
    pool: asyncpg.Pool
    services: Services

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    async def count(self, table: str) -> int:
        return int(await self.pool.fetchval(f"SELECT count(*) FROM {table}"))

    async def deploy(self, source: str = LIFECYCLE) -> dict[str, object]:
        response = await self.http.post("/api/journeys", content=source, headers=self.admin)
        assert response.status_code == 201, response.text
        body: dict[str, object] = response.json()
        return body


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    conn = await connect(database_url)
    await migrate(conn)
    await conn.close()
    pool = await create_pool(database_url)
    services = Services(
        pool=pool,
        database_url=database_url,
        write_key=WRITE_KEY,
        admin_token=ADMIN_TOKEN,
        max_body_bytes=64 * 1024,
    )
    await services.refresh_index()
    app = create_app(services, follow_deploys=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://journeyman.test") as http:
        yield Api(http, pool, services)
    await pool.close()
