"""A whole deployment the fault tests can break: its own Postgres and Temporal dev server (each
on a data directory, so they can be stopped and started again), an SMTP sink, and any number
of `journeyman worker` and `journeyman api` processes.

A supervisor restarts a process that exits on its own, as the compose file's
``restart: unless-stopped`` does; such exits are recorded so a test can show them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from journeyman.channels import SmtpSink
from journeyman.orchestrator.embedded import EmbeddedPostgres, TemporalDevServer

REPO = Path(__file__).resolve().parents[2]
WRITE_KEY = "wk_faults"
ADMIN_TOKEN = "adm_faults"
DATABASE = "journeyman"
# Durability settings that make no difference to a clean stop and start (a fast shutdown
# writes everything out), but that spare the shared test machine's disk.
PG_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Role:
    """One worker or API process slot: what runs in it now and how often it was started."""

    name: str
    kind: str  # "worker" or "api"
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    # While a fault holds a slot, the supervisor leaves it alone.
    held: bool = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Cluster:
    """The parts of one deployment, and the operations a fault drill performs on them."""

    root: Path
    postgres: EmbeddedPostgres
    temporal: TemporalDevServer
    sink: SmtpSink
    database_url: str = ""
    workers: list[Role] = field(default_factory=list)
    apis: list[Role] = field(default_factory=list)
    # (seconds since start, what happened), for the report of a failed drill.
    timeline: list[tuple[float, str]] = field(default_factory=list)
    unexpected_exits: list[str] = field(default_factory=list)
    # Whether a worker lost for good was the one running the outbox dispatcher.
    lost_dispatcher: bool = False
    _started: float = field(default_factory=time.monotonic)

    # --- bookkeeping -----------------------------------------------------------------------

    def note(self, what: str) -> None:
        self.timeline.append((time.monotonic() - self._started, what))

    def story(self) -> str:
        return "\n".join(f"{at:7.1f}s  {what}" for at, what in self.timeline)

    def api_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{role.env['JOURNEYMAN_API_PORT']}" for role in self.apis]

    def log_tail(self, role: Role, limit: int = 3000) -> str:
        text = role.log.read_text(errors="replace") if role.log.exists() else ""
        return text[-limit:]

    def logs(self) -> dict[str, str]:
        """Every process's whole log, by slot name."""
        return {
            role.name: role.log.read_text(errors="replace") if role.log.exists() else ""
            for role in (*self.workers, *self.apis)
        }

    # --- processes ---------------------------------------------------------------------------

    def spawn(self, role: Role) -> None:
        with role.log.open("ab") as log:
            log.write(f"--- start {role.starts + 1}\n".encode())
            log.flush()
            role.process = subprocess.Popen(
                [sys.executable, "-m", "journeyman.orchestrator.cli", role.kind],
                env=role.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        role.starts += 1

    async def stop(self, role: Role, sig: signal.Signals) -> None:
        """Send ``sig`` and wait for the process to end (SIGKILL after 30 s)."""
        process = role.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
        try:
            await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)
        role.process = None

    async def wait_healthy(self, role: Role, within: float = 90) -> None:
        """Until the API in ``role`` answers ``/healthz`` with 200."""
        url = f"http://127.0.0.1:{role.env['JOURNEYMAN_API_PORT']}/healthz"
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=3) as http:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(url)).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise AssertionError(f"{role.name} never became healthy:\n{self.log_tail(role)}")

    async def wait_polling(self, role: Role, within: float = 90) -> None:
        """Until the worker in ``role`` polls its task queue for activities (it is at work).

        Temporal lists a queue's pollers by identity, which the SDK makes ``pid@host``.
        """
        assert role.process is not None
        me = f"{role.process.pid}@"
        request = DescribeTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name=role.env["JOURNEYMAN_TASK_QUEUE"]),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        )
        client = await Client.connect(self.temporal.address)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            described = await client.workflow_service.describe_task_queue(request)
            if any(p.identity.startswith(me) for p in described.pollers):
                return
            if not role.running:
                raise AssertionError(f"{role.name} exited while starting:\n{self.log_tail(role)}")
            await asyncio.sleep(0.2)
        raise AssertionError(f"{role.name} never polled its task queue:\n{self.log_tail(role)}")

    async def supervise(self) -> None:
        """Restart any process that exited on its own, like a process supervisor does."""
        while True:
            for role in (*self.workers, *self.apis):
                if role.held or role.process is None or role.process.poll() is None:
                    continue
                code = role.process.returncode
                self.unexpected_exits.append(f"{role.name} exited with {code}")
                self.note(f"{role.name} exited on its own ({code}); restarted")
                self.spawn(role)
            await asyncio.sleep(0.5)

    # --- faults --------------------------------------------------------------------------------

    async def kill_worker(self, role: Role, down: float) -> None:
        """SIGKILL a worker (no graceful shutdown at all), and start it again after ``down`` s."""
        role.held = True
        try:
            await self.stop(role, signal.SIGKILL)
            self.note(f"{role.name} SIGKILLed")
            await asyncio.sleep(down)
            self.spawn(role)
            await self.wait_polling(role)
            self.note(f"{role.name} started again and polling")
        finally:
            role.held = False

    async def lose_worker(self, role: Role) -> None:
        """SIGKILL a worker for good: the others must take over its work."""
        role.held = True  # never restarted
        await self.stop(role, signal.SIGKILL)
        self.note(f"{role.name} SIGKILLed for good")

    async def restart_api(self, role: Role, sig: signal.Signals, down: float) -> None:
        """Stop an API process with ``sig`` and start it again after ``down`` seconds."""
        role.held = True
        try:
            await self.stop(role, sig)
            self.note(f"{role.name} stopped by {sig.name}")
            await asyncio.sleep(down)
            self.spawn(role)
            await self.wait_healthy(role)
            self.note(f"{role.name} healthy again")
        finally:
            role.held = False

    async def restart_postgres(self, down: float) -> None:
        """Stop Postgres (fast shutdown) and start it again on its data directory."""
        await self.postgres.stop()
        self.note("Postgres stopped")
        await asyncio.sleep(down)
        await self.postgres.start()
        self.note("Postgres started again")

    async def restart_temporal(self, down: float) -> None:
        """Stop the Temporal dev server and start it again on its database file."""
        await self.temporal.stop()
        self.note("Temporal stopped")
        await asyncio.sleep(down)
        await self.temporal.start()
        self.note("Temporal started again")

    # --- journeys ------------------------------------------------------------------------------

    async def deploy(self, source: bytes) -> str:
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(
                f"{self.api_urls()[0]}/api/journeys",
                content=source,
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
        assert response.status_code == 201, response.text
        return str(response.json()["version"])

    async def funnel(self, journey: str) -> dict[str, dict[str, int]]:
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.get(
                f"{self.api_urls()[0]}/api/journeys/{journey}/funnel",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
        assert response.status_code == 200, response.text
        return {s["stage"]: s for s in response.json()["stages"]}


@contextlib.asynccontextmanager
async def running_cluster(root: Path, *, workers: int, apis: int) -> AsyncIterator[Cluster]:
    """Start everything under ``root``; stop it all afterwards, whatever happened."""
    postgres = EmbeddedPostgres(root / "postgres-data", settings=PG_SETTINGS)
    temporal = TemporalDevServer(root / "temporal-data", ui_port=None)
    sink = SmtpSink()
    cluster = Cluster(root=root, postgres=postgres, temporal=temporal, sink=sink)
    supervisor: asyncio.Task[None] | None = None
    try:
        await postgres.start()
        cluster.database_url = await postgres.create_database(DATABASE)
        await temporal.start()
        smtp_port = sink.start()
        base = {
            **os.environ,
            "JOURNEYMAN_DATA_DIR": str(root / "data"),
            "JOURNEYMAN_DATABASE_URL": cluster.database_url,
            "JOURNEYMAN_TEMPORAL_ADDRESS": temporal.address,
            "JOURNEYMAN_TASK_QUEUE": f"faults-{uuid.uuid4().hex[:8]}",
            "JOURNEYMAN_WRITE_KEY": WRITE_KEY,
            "JOURNEYMAN_ADMIN_TOKEN": ADMIN_TOKEN,
            "JOURNEYMAN_SMTP_HOST": "127.0.0.1",
            "JOURNEYMAN_SMTP_PORT": str(smtp_port),
            "JOURNEYMAN_SMTP_FROM": "Shop <journeys@shop.example>",
        }
        for i in range(apis):
            env = {**base, "JOURNEYMAN_API_PORT": str(_free_port())}
            cluster.apis.append(Role(f"api-{i + 1}", "api", env, root / f"api-{i + 1}.log"))
        for i in range(workers):
            role = Role(f"worker-{i + 1}", "worker", dict(base), root / f"worker-{i + 1}.log")
            cluster.workers.append(role)
        for role in (*cluster.apis, *cluster.workers):
            cluster.spawn(role)
        for role in cluster.apis:
            await cluster.wait_healthy(role)
        for role in cluster.workers:
            await cluster.wait_polling(role)
        cluster.note("cluster up")
        supervisor = asyncio.create_task(cluster.supervise())
        yield cluster
    finally:
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        for role in (*cluster.workers, *cluster.apis):
            await cluster.stop(role, signal.SIGTERM)
        sink.stop()
        await temporal.stop()
        await postgres.stop()
