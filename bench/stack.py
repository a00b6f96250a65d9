"""The servers a benchmark runs against, started once and always stopped.

Embedded Postgres (in a fresh directory under /tmp), an in-memory headless Temporal dev server
and the SMTP sink (``SmtpSink`` in a child process) are started by ``Stack``; the API and the
worker are the engine's own roles (``run_api``, ``run_worker``), run as tasks in this process
until their stop event.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from journeyman.orchestrator.config import Settings
from journeyman.orchestrator.credentials import Credentials
from journeyman.orchestrator.embedded import EmbeddedPostgres, TemporalDevServer
from journeyman.orchestrator.embedded._process import free_port
from journeyman.orchestrator.language import compile_source
from journeyman.orchestrator.roles import Endpoints, prepare_database, run_api, run_worker
from journeyman.orchestrator.storage import connect, deploy_plan
from journeyman.workflows.plan import Plan

from .mailbox import SinkProcess
from .worker_process import WorkerProcess

WRITE_KEY = "wk_bench"
ADMIN_TOKEN = "adm_bench"
SMTP_FROM = "Bench <bench@localhost>"
# Throwaway data: what the test suite uses. The default keeps Postgres' durable defaults.
FAST_PG_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@dataclass(frozen=True)
class Role:
    """A role running as a task; ``check`` raises what stopped it, if it stopped."""

    name: str
    task: asyncio.Task[None]
    url: str = ""

    def check(self) -> None:
        if self.task.done():
            self.task.result()
            raise RuntimeError(f"the {self.name} stopped unexpectedly")


def _reachable_tmp_dir(prefix: str) -> Path:
    """A directory under /tmp that the unprivileged user Postgres runs as can enter."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


class Stack:
    """Postgres, Temporal and the SMTP sink (child processes); everything stops on exit."""

    def __init__(self, *, durable: bool = True) -> None:
        self.durable = durable
        self._exit = contextlib.AsyncExitStack()
        self.pg: EmbeddedPostgres | None = None
        self.temporal: TemporalDevServer | None = None
        self.sink = SinkProcess()
        self.data_dir: Path | None = None
        self.worker_child: WorkerProcess | None = None  # the running child worker, if any

    async def __aenter__(self) -> Stack:
        try:
            await self._start()
        except BaseException:
            await self._exit.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._exit.aclose()

    async def _start(self) -> None:
        data_dir = _reachable_tmp_dir("jm-bench-")
        self._exit.callback(shutil.rmtree, data_dir, ignore_errors=True)
        self.data_dir = data_dir
        pg = EmbeddedPostgres(data_dir, settings=None if self.durable else FAST_PG_SETTINGS)
        # Pushed before start: stop() is a no-op when start failed (it cleans up itself).
        self._exit.push_async_callback(pg.stop)
        await pg.start()
        self.pg = pg
        temporal = TemporalDevServer(None, ui_port=None)
        self._exit.push_async_callback(temporal.stop)
        await temporal.start()
        self.temporal = temporal
        self._exit.push_async_callback(self.sink.stop)
        await self.sink.start()

    @property
    def temporal_address(self) -> str:
        assert self.temporal is not None
        return self.temporal.address

    def postmaster_pid(self) -> int | None:
        assert self.pg is not None
        try:
            return int((self.pg.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    async def database(self, name: str, plan: Plan, source: str) -> str:
        """A new database with the schema and ``plan`` deployed; returns its URL."""
        assert self.pg is not None
        url = await self.pg.create_database(name)
        await prepare_database(url)
        conn = await connect(url)
        try:
            await deploy_plan(conn, plan=plan, source=source)
        finally:
            await conn.close()
        return url

    def endpoints(self, database_url: str) -> Endpoints:
        return Endpoints(
            database_url=database_url,
            temporal_address=self.temporal_address,
            smtp_host="127.0.0.1",
            smtp_port=self.sink.port,
        )

    @contextlib.asynccontextmanager
    async def api(self, database_url: str) -> AsyncIterator[Role]:
        """The engine's API (uvicorn, ``run_api``) on a free port; yields its base URL."""
        settings = Settings(api_host="127.0.0.1", api_port=free_port(), smtp_from=SMTP_FROM)
        credentials = Credentials(write_key=WRITE_KEY, admin_token=ADMIN_TOKEN, generated=False)
        stop = asyncio.Event()
        endpoints = self.endpoints(database_url)
        task = asyncio.create_task(run_api(settings, endpoints, credentials, stop))
        url = f"http://127.0.0.1:{settings.api_port}"
        try:
            await _wait_healthy(url, task)
            yield Role("API", task, url)
        finally:
            await _stop_role("API", task, stop)

    @contextlib.asynccontextmanager
    async def worker(self, database_url: str, task_queue: str) -> AsyncIterator[Role]:
        """The engine's journey worker and outbox dispatcher (``run_worker``)."""
        settings = Settings(task_queue=task_queue, smtp_from=SMTP_FROM)
        stop = asyncio.Event()
        task = asyncio.create_task(run_worker(settings, self.endpoints(database_url), stop))
        try:
            # Let it connect and register before load arrives; fail early if it cannot.
            await asyncio.sleep(0.5)
            role = Role("worker", task)
            role.check()
            yield role
        finally:
            await _stop_role("worker", task, stop)

    @contextlib.asynccontextmanager
    async def worker_process(
        self, database_url: str, task_queue: str
    ) -> AsyncIterator[WorkerProcess]:
        """The journey worker and dispatcher as a child process (``journeyman worker``)."""
        assert self.data_dir is not None
        worker = WorkerProcess(
            database_url=database_url,
            temporal_address=self.temporal_address,
            smtp_port=self.sink.port,
            task_queue=task_queue,
            smtp_from=SMTP_FROM,
            log_path=self.data_dir / f"worker-{task_queue}.log",
        )
        try:
            self.worker_child = worker
            await worker.start()
            yield worker
        finally:
            self.worker_child = None
            await worker.stop()

    def worker_child_pid(self) -> int | None:
        return self.worker_child.pid if self.worker_child is not None else None


async def _wait_healthy(url: str, task: asyncio.Task[None], time_limit: float = 30.0) -> None:
    deadline = time.monotonic() + time_limit
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            if task.done():
                task.result()  # raises what stopped it
                raise RuntimeError("the API stopped while starting")
            try:
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API at {url} was not healthy within {time_limit:.0f}s")
            await asyncio.sleep(0.1)


async def _stop_role(
    name: str, task: asyncio.Task[None], stop: asyncio.Event, grace: float = 30.0
) -> None:
    """Ask a role to stop, wait for it, cancel it if it does not; never raises on the way out."""
    stop.set()
    try:
        await asyncio.wait_for(asyncio.shield(task), grace)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
    except asyncio.CancelledError:
        # We were cancelled (Ctrl-C) while waiting: still make sure the role is gone.
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise
    except Exception as exc:
        print(f"bench: the {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)


def compile_journey(source: str) -> Plan:
    return compile_source(source, source="<bench>")
