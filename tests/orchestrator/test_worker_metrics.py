"""A worker serves the Temporal SDK's metrics and its own for Prometheus when given a port:
read back with Prometheus's parser after real sends through real providers."""

from __future__ import annotations

import asyncio
import socket
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families
from temporalio import workflow
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from journeyman.orchestrator.embedded import TemporalDevServer
from journeyman.orchestrator.observability.worker_metrics import (
    DISPATCHER_BATCHES,
    DISPATCHER_DELIVERED,
    DISPATCHER_FAILURES,
    DISPATCHER_LAG,
    DISPATCHER_LEADER,
    DISPATCHER_SIGNALS,
    PROVIDER_BUCKETS,
    SENDS,
    TRANSITIONS,
)
from journeyman.orchestrator.observability.worker_metrics import PROVIDER_SECONDS as PROVIDER
from journeyman.orchestrator.temporal_client import connect_temporal, metrics_runtime
from journeyman.workflows.inputs import JourneyEvent

from .observability.pipeline import JOURNEY_ID, running_pipeline


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


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(port: int) -> Samples:
    """Every sample the worker's endpoint serves now, parsed by Prometheus's own parser."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def test_sends_transitions_and_the_dispatcher_are_counted_on_the_worker_endpoint(
    database_url: str, temporal_dev_server: TemporalDevServer
) -> None:
    port = _free_port()
    runtime = metrics_runtime(port, host="127.0.0.1")
    async with running_pipeline(database_url, temporal_dev_server.address, runtime=runtime) as p:
        # Ana's first SMS meets a Twilio that is down for a moment; Bo's number is a
        # landline, which Twilio refuses for good. Both get their email.
        p.twilio.answer_next(503, {"code": 20503, "message": "Service Unavailable"})
        p.twilio.landlines.add("+886912000002")
        consent = {"sms": True}
        await p.sign_up(
            "ana", first_name="Ana", email="ana@example.com", phone="+886912000001", consent=consent
        )
        await p.sign_up(
            "bo", first_name="Bo", email="bo@example.com", phone="+886912000002", consent=consent
        )
        # A row Temporal refuses (a workflow id longer than any may be): a signal failure.
        refused = await _refused_row(p.pool)
        await p.finished(2)

        samples: Samples = {}
        for _ in range(50):
            samples = await scrape(port)
            if total(samples, PROVIDER + "_count", channel="sms") >= 3:
                break
            await asyncio.sleep(0.1)
        q = {"task_queue": p.task_queue}
        assert total(samples, DISPATCHER_LEADER, **q) == 1

        # Provider latency: one histogram per channel, provider and outcome.
        def calls(channel: str, provider: str, outcome: str) -> float:
            return total(
                samples, PROVIDER + "_count", channel=channel, provider=provider, outcome=outcome
            )

        assert calls("email", "smtp", "sent") == 2
        assert calls("sms", "twilio", "retryable") == 1
        assert calls("sms", "twilio", "sent") == 1
        assert calls("sms", "twilio", "permanent") == 1
        buckets = {
            float(dict(labels)["le"])
            for (name, labels) in samples
            if name == PROVIDER + "_bucket" and ("channel", "email") in labels
        }
        assert buckets == {*PROVIDER_BUCKETS, float("inf")}  # seconds, not the SDK's milliseconds

        # Sends by channel and the state they ended in; the retried attempt is no send.
        assert total(samples, SENDS, channel="email", state="sent", **q) == 2
        assert total(samples, SENDS, channel="sms", state="sent", **q) == 1
        assert total(samples, SENDS, channel="sms", state="failed", **q) == 1
        assert total(samples, SENDS, **q) == 4

        # Transitions: exactly the rows the runs recorded, per outcome.
        recorded = await p.pool.fetch(
            "SELECT outcome, count(*) AS n FROM stage_transitions GROUP BY outcome"
        )
        assert {r["outcome"] for r in recorded} >= {"entered"}
        for row in recorded:
            counted = total(samples, TRANSITIONS, journey_id=JOURNEY_ID, outcome=row["outcome"])
            assert counted == row["n"], row["outcome"]

        # The dispatcher: every delivered row counted once, with its lag.
        delivered = await p.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE delivered_at IS NOT NULL"
        )
        assert total(samples, DISPATCHER_DELIVERED, **q) == delivered
        assert total(samples, DISPATCHER_LAG + "_count", **q) == delivered
        assert 0 < total(samples, DISPATCHER_LAG + "_sum", **q) < 60 * delivered
        assert total(samples, DISPATCHER_SIGNALS, kind="start", outcome="sent", **q) == 2
        assert total(samples, DISPATCHER_BATCHES, **q) >= 1
        attempts = await p.pool.fetchval("SELECT attempts FROM outbox WHERE id = $1", refused)
        failures = total(samples, DISPATCHER_FAILURES, kind="start", reason="refused", **q)
        assert attempts >= 1 and failures >= attempts  # a scrape may lag the last attempt


async def _refused_row(pool: asyncpg.Pool) -> int:
    event_id = await pool.fetchval(
        "INSERT INTO events (message_id, type, customer_id, event, occurred_at)"
        " VALUES ($1, 'track', 'nobody', 'Signed Up', now()) RETURNING id",
        str(uuid.uuid4()),
    )
    payload = {
        "entry": True,
        "event": JourneyEvent(
            message_id=str(uuid.uuid4()), name="Signed Up", occurred_at=datetime.now(UTC)
        ).model_dump(mode="json"),
    }
    row_id: int = await pool.fetchval(
        "INSERT INTO outbox (event_id, journey_id, version, customer_id, workflow_id, payload)"
        " VALUES ($1, $2, 'v1', 'nobody', $3, $4) RETURNING id",
        event_id,
        JOURNEY_ID,
        "x" * 2000,
        payload,
    )
    return row_id
