"""The real thing: `journeyman worker` and `journeyman api` processes over real Postgres, the
Temporal dev server and an SMTP server, driven over HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from journeyman.channels import SmtpSink
from journeyman.orchestrator.embedded import TemporalDevServer

REPO = Path(__file__).resolve().parents[2]
WRITE_KEY = "wk_e2e"
ADMIN_TOKEN = "adm_e2e"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    """Worker and API processes that a test can stop and start again."""

    env: dict[str, str]
    api_url: str
    sink: SmtpSink
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, role: str) -> None:
        with (self.logs / f"{role}.log").open("ab") as log:
            self.processes[role] = subprocess.Popen(
                [sys.executable, "-m", "journeyman.orchestrator.cli", role],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        if role == "api":
            self.wait_healthy()

    def stop(self, role: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(role)
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes.get("api")
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"api exited:\n{self.log_tail('api')}")
            try:
                if httpx.get(f"{self.api_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"api never became healthy:\n{self.log_tail('api')}")

    def log_tail(self, role: str, limit: int | None = 4000) -> str:
        path = self.logs / f"{role}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text if limit is None else text[-limit:]

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def deploy(self, path: Path) -> str:
        response = httpx.post(
            f"{self.api_url}/api/journeys",
            content=path.read_bytes(),
            headers=self.admin,
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["version"])

    def funnel(self, journey: str) -> dict[str, dict[str, int]]:
        response = httpx.get(f"{self.api_url}/api/journeys/{journey}/funnel", headers=self.admin)
        assert response.status_code == 200, response.text
        return {s["stage"]: s for s in response.json()["stages"]}

    def count_runs(self, query: str) -> int:
        """Runs of this stack's task queue that match a Temporal visibility query."""

        async def count() -> int:
            client = await Client.connect(self.env["JOURNEYMAN_TEMPORAL_ADDRESS"])
            queue = self.env["JOURNEYMAN_TASK_QUEUE"]
            return (await client.count_workflows(f"TaskQueue = '{queue}' AND {query}")).count

        return asyncio.run(count())

    def post_batch(self, messages: list[dict[str, object]]) -> None:
        for start in range(0, len(messages), 50):
            response = httpx.post(
                f"{self.api_url}/v1/batch",
                json={"batch": messages[start : start + 50]},
                auth=(WRITE_KEY, ""),
                timeout=30,
            )
            assert response.status_code == 200, response.text


@pytest.fixture
def stack(
    database_url: str, temporal_dev_server: TemporalDevServer, tmp_path: Path
) -> Iterator[Stack]:
    sink = SmtpSink()
    smtp_port = sink.start()
    port = _free_port()
    env = {
        **os.environ,
        "JOURNEYMAN_DATA_DIR": str(tmp_path / "data"),
        "JOURNEYMAN_DATABASE_URL": database_url,
        "JOURNEYMAN_TEMPORAL_ADDRESS": temporal_dev_server.address,
        "JOURNEYMAN_TASK_QUEUE": f"e2e-{uuid.uuid4().hex[:8]}",
        "JOURNEYMAN_API_PORT": str(port),
        "JOURNEYMAN_WRITE_KEY": WRITE_KEY,
        "JOURNEYMAN_ADMIN_TOKEN": ADMIN_TOKEN,
        "JOURNEYMAN_SMTP_HOST": "127.0.0.1",
        "JOURNEYMAN_SMTP_PORT": str(smtp_port),
        "JOURNEYMAN_SMTP_FROM": "Shop <journeys@shop.example>",
    }
    stack = Stack(env=env, api_url=f"http://127.0.0.1:{port}", sink=sink, logs=tmp_path)
    try:
        yield stack
    finally:
        for role in list(stack.processes):
            stack.stop(role)
        sink.stop()
