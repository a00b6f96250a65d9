"""The API as it ships (``journeyman api``) in a process of its own, so its memory can be read
apart from the clients overloading it.

It runs against a real Postgres database and an unreachable Temporal (the API serves ingest
without Temporal, and ``/healthz`` says so), with the ingest limits a test chooses.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ..channels.provider_servers import unused_port

WRITE_KEY = "wk_overload_test"
ADMIN_TOKEN = "adm_overload_test"
# The API imports, migrates and starts within this on a busy machine.
STARTUP_LIMIT = 90.0


@dataclass
class ApiProcess:
    """A running ``journeyman api``."""

    process: subprocess.Popen[bytes]
    url: str
    database_url: str
    log: Path

    def rss_bytes(self) -> int:
        """The process's resident memory now (``VmRSS``)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for process {self.process.pid}")

    def log_tail(self, limit: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-limit:]

    async def ingest_counts(self) -> dict[str, float]:
        """``journeyman_ingest_requests_total`` by status, from the process's ``/metrics``."""
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            response = await client.get("/metrics")
        response.raise_for_status()
        counts: dict[str, float] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name == "journeyman_ingest_requests_total":
                    counts[sample.labels["status"]] = sample.value
        return counts


def _environment(
    database_url: str, data_dir: Path, *, max_in_flight: int, wait: float
) -> dict[str, str]:
    journeys = data_dir / "journeys"
    journeys.mkdir(exist_ok=True)
    # Nothing of the caller's own JOURNEYMAN_* settings leaks into the process under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYMAN_")}
    env.update(
        JOURNEYMAN_DATABASE_URL=database_url,
        JOURNEYMAN_TEMPORAL_ADDRESS=f"127.0.0.1:{unused_port()}",
        JOURNEYMAN_API_HOST="127.0.0.1",
        JOURNEYMAN_API_PORT=str(unused_port()),
        JOURNEYMAN_WRITE_KEY=WRITE_KEY,
        JOURNEYMAN_ADMIN_TOKEN=ADMIN_TOKEN,
        JOURNEYMAN_DATA_DIR=str(data_dir),
        JOURNEYMAN_JOURNEYS_DIR=str(journeys),
        JOURNEYMAN_INGEST_MAX_IN_FLIGHT=str(max_in_flight),
        JOURNEYMAN_INGEST_QUEUE_SECONDS=str(wait),
        JOURNEYMAN_LOG_LEVEL="WARNING",
    )
    return env


@contextlib.asynccontextmanager
async def api_process(
    database_url: str, data_dir: Path, *, max_in_flight: int, wait: float
) -> AsyncIterator[ApiProcess]:
    """``journeyman api`` with these ingest limits, once it answers ``/healthz``."""
    env = _environment(database_url, data_dir, max_in_flight=max_in_flight, wait=wait)
    log = data_dir / "api.log"
    process = _spawn(env, log)
    api = ApiProcess(process, f"http://127.0.0.1:{env['JOURNEYMAN_API_PORT']}", database_url, log)
    try:
        await _until_serving(api)
        yield api
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 20)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)


def _spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "journeyman.orchestrator.cli", "api"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _until_serving(api: ApiProcess) -> None:
    deadline = time.monotonic() + STARTUP_LIMIT
    async with httpx.AsyncClient(base_url=api.url, timeout=5) as client:
        while True:
            if api.process.poll() is not None:
                raise RuntimeError(f"journeyman api exited while starting:\n{api.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                # 503 "degraded" is expected: Temporal is away on purpose.
                if (await client.get("/healthz")).status_code in (200, 503):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"journeyman api did not start in time:\n{api.log_tail()}")
            await asyncio.sleep(0.1)
