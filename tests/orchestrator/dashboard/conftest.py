"""The API with its dashboard over a real Postgres database: in-process through ASGI for the
pages, and on a loopback port through uvicorn for the event stream (ASGI transports buffer a
whole response, which a stream never finishes)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from journeyman.orchestrator.api import Services, create_app
from journeyman.orchestrator.storage import connect, create_pool, migrate

from .seed import JOURNEY, seed

WRITE_KEY = "wk_dashboard_test"
ADMIN_TOKEN = "adm_dashboard_test_5b1f0c9e"
BASE_URL = "http://journeyman.test"


@dataclass
class Dash:
    http: httpx.AsyncClient
    pool: asyncpg.Pool
    services: Services
    app: FastAPI

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    async def deploy(self, source: str = JOURNEY) -> str:
        """Deploy a journey through the API; its version."""
        response = await self.http.post("/api/journeys", content=source, headers=self.admin)
        assert response.status_code == 201, response.text
        version: str = response.json()["version"]
        return version

    async def seeded(self) -> str:
        """The seeded ``spring`` journey's version."""
        version = await self.deploy()
        await seed(self.pool, version=version)
        return version

    async def sign_in(self) -> None:
        response = await self.http.post(
            "/dashboard/sign-in", data={"token": ADMIN_TOKEN, "next": "/dashboard"}
        )
        assert response.status_code == 303, response.text

    async def api(self, path: str) -> Any:
        response = await self.http.get(path, headers=self.admin)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
async def dash(database_url: str) -> AsyncIterator[Dash]:
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
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield Dash(http, pool, services, app)
    await pool.close()


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: Ctrl-C must still stop pytest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """``app`` on a free loopback port; its base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", access_log=False, ws="none"
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 15
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start: {task.exception() if task.done() else ''}")
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
