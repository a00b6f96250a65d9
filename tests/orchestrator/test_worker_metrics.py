"""A worker serves the Temporal SDK's own metrics for Prometheus when given a port."""

from __future__ import annotations

import asyncio
import socket
import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families
from temporalio import workflow
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from journeyman.orchestrator.embedded import TemporalDevServer
from journeyman.orchestrator.temporal_client import connect_temporal, metrics_runtime


@workflow.defn(name="MetricsProbe")
class MetricsProbe:
    @workflow.run
    async def run(self) -> str:
        return "done"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_sdk_metrics_are_served_and_count_completed_workflows(
    temporal_dev_server: TemporalDevServer,
) -> None:
    port = _free_port()
    client = await connect_temporal(
        temporal_dev_server.address, runtime=metrics_runtime(port, host="127.0.0.1")
    )
    queue = f"metrics-{uuid.uuid4()}"
    # Unsandboxed: this module imports an HTTP client, which the sandbox would refuse.
    runner = UnsandboxedWorkflowRunner()
    async with Worker(client, task_queue=queue, workflows=[MetricsProbe], workflow_runner=runner):
        for _ in range(3):
            await client.execute_workflow(
                MetricsProbe.run, id=f"probe-{uuid.uuid4()}", task_queue=queue
            )
    completed = 0.0
    async with httpx.AsyncClient() as http:
        for _ in range(50):  # the core exports on its own schedule
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            samples = [
                sample
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name.startswith("temporal_workflow_completed")
                and sample.labels.get("task_queue") == queue
            ]
            completed = sum(sample.value for sample in samples)
            if completed >= 3:
                break
            await asyncio.sleep(0.1)
    assert completed == 3
