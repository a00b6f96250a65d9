"""The dispatcher: drains the outbox into Temporal, in order, surviving crashes.

One dispatcher is active at a time (a Postgres advisory lock elects it), so a customer's
events reach their run in the order they were accepted. Delivery is at least once; the
workflow dedupes by message id. Entry rows start the run by signal-with-start; other rows
only signal, so an event can never start a second run for a finished one.

Its counters (``observability.worker_metrics``) go to the metric meter of its Temporal
client's runtime: on a worker, the Prometheus port that serves the SDK's metrics. Its log
lines carry the ids of the row at hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from datetime import timedelta

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import (
    MetricMeter,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from journeyman.workflows.inputs import EVENT_SIGNAL, JourneyEvent, JourneyInput
from journeyman.workflows.journey import JourneyWorkflow
from journeyman.workflows.search_attributes import CUSTOMER_ID, JOURNEY_ID

from .observability import DispatcherMetrics, log_context
from .storage import outbox
from .storage.pool import connect

log = logging.getLogger(__name__)

_LEADER_LOCK = 0x4A4D_0002
BATCH_SIZE = 500
POLL_SECONDS = 1.0
MAX_ATTEMPTS = 10
RPC_TIMEOUT = timedelta(seconds=5)  # bounds the client's own retries during an outage
MAX_BACKOFF_SECONDS = 10.0
# Temporal being away (restarting, overloaded) is not the event's fault: wait and retry
# without counting. Anything else counts; a row that fails MAX_ATTEMPTS times is left as a
# dead letter (kept in the outbox with its last error) so it cannot block the rest forever.
TRANSIENT = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.ABORTED,
        RPCStatusCode.CANCELLED,
    }
)


def client_meter(client: Client, *, task_queue: str) -> MetricMeter:
    """The metric meter of ``client``'s runtime, labelled as the SDK labels its own."""
    runtime = client.service_client.config.runtime or Runtime.default()
    meter = runtime.metric_meter
    if meter is MetricMeter.noop:
        return meter
    return meter.with_additional_attributes(
        {"namespace": client.namespace, "task_queue": task_queue}
    )


def _kind(row: outbox.OutboxRow) -> str:
    return "start" if row.payload.get("entry") else "signal"


class Dispatcher:
    def __init__(
        self,
        database_url: str,
        client: Client,
        *,
        task_queue: str,
        meter: MetricMeter | None = None,
    ) -> None:
        self._url = database_url
        self._client = client
        self._task_queue = task_queue
        self._wake = asyncio.Event()
        self.delivered = 0
        self.metrics = DispatcherMetrics(
            meter if meter is not None else client_meter(client, task_queue=task_queue)
        )

    async def run(self) -> None:
        """Deliver until cancelled; reconnects after database or Temporal outages."""
        self.metrics.leader(False)  # a standby reports 0 rather than nothing
        while True:
            try:
                await self._run_as_leader()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep dispatching through outages
                log.warning("dispatcher: %s; retrying in %ss", type(exc).__name__, POLL_SECONDS)
                await asyncio.sleep(POLL_SECONDS)

    async def _run_as_leader(self) -> None:
        conn = await connect(self._url)
        try:
            # Standby until the active dispatcher's session ends (Postgres has no lock event).
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LEADER_LOCK):  # noqa: ASYNC110
                await asyncio.sleep(POLL_SECONDS)
            await conn.add_listener(outbox.OUTBOX_CHANNEL, self._notified)
            self.metrics.leader(True)
            outage = 0
            while True:
                self._wake.clear()
                handled, transient = await self.drain_once(conn)
                if transient:
                    outage += 1
                    if outage == 1:
                        log.warning("dispatcher: Temporal unavailable; retrying with backoff")
                    await asyncio.sleep(min(POLL_SECONDS * 2**outage, MAX_BACKOFF_SECONDS))
                    continue
                if outage:
                    log.warning("dispatcher: Temporal reachable again")
                    outage = 0
                if handled < BATCH_SIZE:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
        finally:
            self.metrics.leader(False)
            with contextlib.suppress(Exception):
                await asyncio.shield(conn.close(timeout=2))

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def drain_once(self, conn: asyncpg.Connection) -> tuple[int, int]:
        """Deliver one batch; returns rows handled and rows held back by a Temporal outage."""
        rows = await outbox.claim_outbox(conn, limit=BATCH_SIZE, max_attempts=MAX_ATTEMPTS)
        if not rows:
            return 0, 0
        self.metrics.batch()
        by_workflow: dict[str, list[outbox.OutboxRow]] = defaultdict(list)
        for row in rows:
            by_workflow[row.workflow_id].append(row)
        results = await asyncio.gather(*(self._deliver_in_order(rs) for rs in by_workflow.values()))
        done = [row_id for ids, _ in results for row_id in ids]
        if done:
            await outbox.mark_delivered(conn, ids=done)
            self.delivered += len(done)
            self.metrics.delivered(len(done), await self._lags(conn, done))
        transient = 0
        for _, failure in results:
            if failure is None:
                continue
            row, exc = failure
            if exc.status in TRANSIENT:
                transient += 1
                self.metrics.failure(_kind(row), "unavailable")
                continue
            self.metrics.failure(_kind(row), "refused")
            with self._context(row):
                log.warning("outbox row %s refused by Temporal: %s", row.id, exc.status.name)
                await outbox.mark_failed(conn, id=row.id, error=f"{exc.status.name}: {exc.message}")
                if row.attempts + 1 >= MAX_ATTEMPTS:
                    log.error(
                        "outbox row %s is a dead letter after %s attempts", row.id, MAX_ATTEMPTS
                    )
        return len(rows), transient

    async def _lags(self, conn: asyncpg.Connection, ids: list[int]) -> list[float]:
        """Seconds from each delivered row's commit to now; skipped when nothing records it."""
        if not self.metrics.enabled:
            return []
        rows = await conn.fetch(
            "SELECT extract(epoch FROM clock_timestamp() - created_at)::float8 AS lag"
            " FROM outbox WHERE id = any($1::bigint[])",
            ids,
        )
        return [float(r["lag"]) for r in rows]

    @staticmethod
    def _context(row: outbox.OutboxRow) -> contextlib.AbstractContextManager[None]:
        return log_context(
            journey_id=row.journey_id,
            version=row.version,
            customer_id=row.customer_id,
            workflow_id=row.workflow_id,
        )

    async def _start(
        self, row: outbox.OutboxRow, event: JourneyEvent, policy: WorkflowIDReusePolicy
    ) -> None:
        await self._client.start_workflow(
            JourneyWorkflow.run,
            JourneyInput(
                journey_id=row.journey_id, version=row.version, customer_id=row.customer_id
            ),
            id=row.workflow_id,
            task_queue=self._task_queue,
            start_signal=EVENT_SIGNAL,
            start_signal_args=[event],
            id_reuse_policy=policy,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(JOURNEY_ID, row.journey_id),
                    SearchAttributePair(CUSTOMER_ID, row.customer_id),
                ]
            ),
            task_timeout=timedelta(seconds=10),
            rpc_timeout=RPC_TIMEOUT,
        )

    async def _id_was_freed(self, row: outbox.OutboxRow) -> bool:
        """Whether the closed run holding this entry's workflow id predates the entry's run."""
        entered = row.run_entered_at
        if entered is None:
            return False
        try:
            described = await self._client.get_workflow_handle(row.workflow_id).describe(
                rpc_timeout=RPC_TIMEOUT
            )
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return True  # deleted meanwhile
            raise
        return (
            described.status != WorkflowExecutionStatus.RUNNING and described.start_time < entered
        )

    async def _deliver_in_order(
        self, rows: list[outbox.OutboxRow]
    ) -> tuple[list[int], tuple[outbox.OutboxRow, RPCError] | None]:
        done: list[int] = []
        for row in rows:
            try:
                with self._context(row):
                    await self._deliver(row)
            except RPCError as exc:
                # Stop this customer's rows here so their order holds; retried next round.
                return done, (row, exc)
            done.append(row.id)
        return done, None

    async def _deliver(self, row: outbox.OutboxRow) -> None:
        event = JourneyEvent.model_validate(row.payload["event"])
        if row.payload.get("entry"):
            try:
                await self._start(row, event, WorkflowIDReusePolicy.REJECT_DUPLICATE)
            except WorkflowAlreadyStartedError:
                # Once per customer: a finished run is never restarted by a late duplicate.
                # The one exception is a closed run older than the run row this entry made:
                # its id was freed (the customer was erased, and a new customer came back
                # under the same id) while Temporal still keeps the old history.
                if not await self._id_was_freed(row):
                    self.metrics.signal("start", "run_closed")
                    return
                await self._start(row, event, WorkflowIDReusePolicy.ALLOW_DUPLICATE)
            self.metrics.signal("start", "sent")
            return
        handle: WorkflowHandle[JourneyWorkflow, str] = self._client.get_workflow_handle_for(
            JourneyWorkflow.run, row.workflow_id
        )
        try:
            await handle.signal(JourneyWorkflow.on_event, event, rpc_timeout=RPC_TIMEOUT)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            # The run has finished: the event stays stored, the run no longer needs it.
            self.metrics.signal("signal", "run_closed")
            return
        self.metrics.signal("signal", "sent")
