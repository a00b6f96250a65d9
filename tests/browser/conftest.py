"""Debian's headless Chromium, driven by Playwright, against the API served by uvicorn.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium`` (``python3 dev.py
test`` installs the ``chromium`` package when it runs as root). Without it the browser tests
are skipped with the reason; the tests that need no browser still run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, async_playwright
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from journeyman.orchestrator.api import Services, create_app
from journeyman.orchestrator.storage import connect, create_pool, migrate

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps calling home, which on an offline
# machine is a flood of refused connections.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NO_CHROMIUM = (
    f"Chromium is not installed at {CHROMIUM}: the browser tests need Debian's package "
    "(as root: apt-get install -y chromium; `python3 dev.py test` does it when run as root)"
)
WRITE_KEY = "wk_browser_test"
ADMIN_TOKEN = "adm_browser_test"
QUEUE_KEY_PREFIX = "journeyman.queue."

# Belt and braces: nothing in this suite may make Playwright fetch a browser build.
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")


def chromium_installed() -> bool:
    return CHROMIUM.exists()


def artifacts_dir() -> Path:
    """Where screenshots are kept: $JOURNEYMAN_ARTIFACTS, else .artifacts/ in the repository."""
    path = Path(os.environ.get("JOURNEYMAN_ARTIFACTS") or REPO / ".artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: Ctrl-C must still stop pytest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Served:
    """An ASGI app on a loopback port that a test can stop and start again on the same port."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.port = 0
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))  # port 0 the first time: a free one
        self.port = int(sock.getsockname()[1])
        self._socket = sock
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            ws="none",
            timeout_graceful_shutdown=2,
        )
        self._server = server = _Server(config)
        self._task = task = asyncio.create_task(server.serve(sockets=[sock]))
        deadline = time.monotonic() + 15
        while not server.started:
            if task.done():
                sock.close()
                raise RuntimeError(f"uvicorn did not start on {self.url}: {task.exception()!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url} within 15 s")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._server = self._task = None
        # uvicorn leaves a socket it was handed open: closed here, so connections to a stopped
        # API are refused at once (as they would be) instead of waiting in the backlog.
        if self._socket is not None:
            self._socket.close()
            self._socket = None


@contextlib.asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[Served]:
    served = Served(app)
    await served.start()
    try:
        yield served
    finally:
        await served.stop()


@dataclass
class Ingested:
    """What reached the ``events`` table."""

    pool: asyncpg.Pool

    async def rows(self) -> list[dict[str, Any]]:
        records = await self.pool.fetch(
            "SELECT message_id, type, event, customer_id, user_id, anonymous_id, properties,"
            " traits, context FROM events ORDER BY occurred_at, id"
        )
        return [dict(r) for r in records]

    async def wait_for(self, count: int, within: float = 20) -> list[dict[str, Any]]:
        """The stored rows once there are ``count`` of them (fails after ``within`` seconds)."""
        deadline = time.monotonic() + within
        while True:
            rows = await self.rows()
            if len(rows) >= count:
                return rows
            if time.monotonic() > deadline:
                stored = [(r["type"], r["event"]) for r in rows]
                raise AssertionError(f"expected {count} stored events, got {stored}")
            await asyncio.sleep(0.1)


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[Services]:
    conn = await connect(database_url)
    await migrate(conn)
    await conn.close()
    pool = await create_pool(database_url)
    yield Services(
        pool=pool,
        database_url=database_url,
        write_key=WRITE_KEY,
        admin_token=ADMIN_TOKEN,
        max_body_bytes=512 * 1024,
    )
    await pool.close()


@pytest.fixture
def ingested(services: Services) -> Ingested:
    return Ingested(services.pool)


@pytest.fixture
async def live_api(services: Services) -> AsyncIterator[Served]:
    """The whole API (ingest, snippet, demo shop) on a free loopback port."""
    async with serving(create_app(services, follow_deploys=False)) as served:
        yield served


@dataclass
class Attempt:
    at: float  # time.monotonic() when the request arrived
    status: int
    message_ids: list[str]
    mode: str  # Sec-Fetch-Mode: "cors" for fetch(), "no-cors" for a text/plain beacon


@dataclass
class RecordingFront:
    """In front of the API, as a load balancer would be: records every ingest request, and
    answers the first ones itself with the given status and headers (shedding load)."""

    app: ASGIApp
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        ids = [str(m.get("messageId")) for m in json.loads(body or b"{}").get("batch", [])]
        arrived = time.monotonic()
        headers = dict(scope["headers"])
        mode = headers.get(b"sec-fetch-mode", b"").decode()
        if self.answers:
            status, answer_headers = self.answers.pop(0)
            self.attempts.append(Attempt(arrived, status, ids, mode))
            raw_headers = [(k.lower().encode(), v.encode()) for k, v in answer_headers.items()]
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json"), *raw_headers],
                }
            )
            await send({"type": "http.response.body", "body": b'{"error": "unavailable"}'})
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.attempts.append(Attempt(arrived, int(message["status"]), ids, mode))
            await send(message)

        await self.app(scope, replay, recording_send)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not chromium_installed():
        pytest.skip(NO_CHROMIUM)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@dataclass
class Visitor:
    """One browser profile (its own storage), in Taipei with a Traditional Chinese browser."""

    context: BrowserContext
    console: list[ConsoleMessage]


@pytest.fixture
async def visitor(browser: Browser) -> AsyncIterator[Visitor]:
    context = await browser.new_context(
        locale="zh-TW", timezone_id="Asia/Taipei", viewport={"width": 1200, "height": 900}
    )
    console: list[ConsoleMessage] = []

    def keep(message: ConsoleMessage) -> None:
        console.append(message)

    context.on("console", keep)
    yield Visitor(context, console)
    await context.close()
