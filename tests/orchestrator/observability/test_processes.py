"""The real `journeyman api` and `journeyman worker` processes, configured as an operator
would: JSON logs, a collector, the worker's metrics port. One customer goes through, and
each output is read back: the log lines, the worker's endpoint, the collector's spans."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from journeyman.channels import SmtpSink
from journeyman.orchestrator.embedded import TemporalDevServer
from journeyman.orchestrator.observability.worker_metrics import DISPATCHER_LEADER, SENDS

from .collector import Collector

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[3]
WRITE_KEY = "wk_processes_0123456789"
ADMIN_TOKEN = "adm_processes_0123456789"
LINK_SECRET = "link-secret-processes-0123456789abcdef"
EMAIL = "mei.wang@example.com"

WELCOME = """
id: process-welcome
name: Welcome
entry: {event: Signed Up}
stages:
  - name: awareness
    touchpoints:
      - send: {id: hello, subject: "Welcome {{ profile.first_name }}", body: "Hello"}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def sink() -> AsyncIterator[tuple[SmtpSink, int]]:
    smtp = SmtpSink()
    port = smtp.start()
    yield smtp, port
    smtp.stop()


async def _wait_for(check: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - polling other processes
            await asyncio.sleep(0.2)


async def test_processes_log_json_serve_worker_metrics_and_trace_a_customer(
    database_url: str,
    temporal_dev_server: TemporalDevServer,
    sink: tuple[SmtpSink, int],
    tmp_path: Path,
) -> None:
    smtp, smtp_port = sink
    api_port, metrics_port = _free_port(), _free_port()
    queue = f"processes-{uuid.uuid4().hex[:8]}"
    (tmp_path / "journeys").mkdir()
    with Collector() as collector:
        env = {
            **os.environ,
            "JOURNEYMAN_DATA_DIR": str(tmp_path / "data"),
            "JOURNEYMAN_JOURNEYS_DIR": str(tmp_path / "journeys"),
            "JOURNEYMAN_DATABASE_URL": database_url,
            "JOURNEYMAN_TEMPORAL_ADDRESS": temporal_dev_server.address,
            "JOURNEYMAN_TASK_QUEUE": queue,
            "JOURNEYMAN_API_PORT": str(api_port),
            "JOURNEYMAN_WRITE_KEY": WRITE_KEY,
            "JOURNEYMAN_ADMIN_TOKEN": ADMIN_TOKEN,
            "JOURNEYMAN_SMTP_HOST": "127.0.0.1",
            "JOURNEYMAN_SMTP_PORT": str(smtp_port),
            "JOURNEYMAN_LINK_SECRET": LINK_SECRET,
            "JOURNEYMAN_PUBLIC_URL": "https://journeys.shop.example",
            "JOURNEYMAN_WORKER_METRICS_PORT": str(metrics_port),
            "JOURNEYMAN_LOG_FORMAT": "json",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        }
        processes = {
            role: await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "journeyman.orchestrator.cli",
                role,
                env=env,
                cwd=REPO,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for role in ("api", "worker")
        }
        # Read as they write, so that a full pipe never blocks them.
        outputs = {
            role: asyncio.create_task(process.communicate()) for role, process in processes.items()
        }
        base = f"http://127.0.0.1:{api_port}"
        timed_out: str | None = None
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:

                async def healthy() -> bool:
                    try:
                        return (await http.get("/healthz")).status_code == 200
                    except httpx.TransportError:
                        return False

                timed_out = healthy.__name__
                await _wait_for(healthy)
                admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
                deployed = await http.post("/api/journeys", content=WELCOME, headers=admin)
                assert deployed.status_code == 201, deployed.text
                fields: tuple[tuple[str, dict[str, object]], ...] = (
                    ("identify", {"traits": {"email": EMAIL, "first_name": "Mei"}}),
                    ("track", {"event": "Signed Up"}),
                )
                for path, extra in fields:
                    body = {"userId": "mei", "messageId": str(uuid.uuid4()), **extra}
                    sent = await http.post(f"/v1/{path}", json=body, auth=(WRITE_KEY, ""))
                    assert sent.status_code == 200, sent.text

                async def delivered() -> bool:
                    return len(smtp.messages) == 1

                timed_out = delivered.__name__
                await _wait_for(delivered)

                async def counted() -> bool:
                    try:
                        text = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
                    except httpx.TransportError:
                        return False
                    samples = {
                        (s.name, s.labels.get("task_queue")): s.value
                        for family in text_string_to_metric_families(text)
                        for s in family.samples
                        if s.labels.get("channel", "email") == "email"
                    }
                    return (
                        samples.get((SENDS, queue)) == 1
                        and samples.get((DISPATCHER_LEADER, queue)) == 1
                    )

                timed_out = counted.__name__
                await _wait_for(counted)
                timed_out = None
        except TimeoutError:
            pass  # reported below, with what the processes said
        finally:
            for process in processes.values():
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
            done = {role: await asyncio.wait_for(task, 60) for role, task in outputs.items()}
        if timed_out is not None:
            said = {role: err.decode()[-3000:] for role, (_, err) in done.items()}
            pytest.fail(f"waited in vain for {timed_out}; the processes said: {said}")
        codes = {role: process.returncode for role, process in processes.items()}
        assert codes == {"api": 0, "worker": 0}, done
        spans = collector.spans()

    for role, (stdout, stderr) in done.items():
        text = stderr.decode()
        entries = [json.loads(line) for line in text.splitlines()]  # every line is JSON
        assert entries, f"{role} logged nothing"
        assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
        assert any(e["message"].startswith("tracing: spans go to") for e in entries), role
        for private in (WRITE_KEY, ADMIN_TOKEN, LINK_SECRET, EMAIL):
            assert private not in text and private not in stdout.decode(), (role, private)

    # The worker's dispatcher started the run and its activities sent: one process's spans.
    names = {(span.service_name, span.name) for span in spans}
    assert ("journeyman-worker", "SignalWithStartWorkflow:JourneyWorkflow") in names
    assert ("journeyman-worker", "RunActivity:send_message") in names
