"""The customer sweep: what changes with time alone, turned into events on a Temporal Schedule.

``CustomerSweepWorkflow`` is started by the Schedule ``journeyman-customer-sweep/QUEUE`` (interval
from ``customers.yaml``, overlapping runs skipped). It is deterministic: it reads the time from
``workflow.now()`` and hands it to each sweep activity as ``now``, so every sweep of one run
judges against the same instant. It runs two sweeps, each an activity with its own field in
the result: recency (``Became Inactive`` and ``Became Lost``), then segments (new segments
filled, time-dependent ones re-evaluated: see ``orchestrator/customers/sweep_segments.py``).

The activities are methods of ``SweepActivities``, built in the worker with the pool and the
customer data settings. They are idempotent (the events they record have deterministic message
ids), so retries and a rerun after a crash record each change once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from temporalio import activity, workflow
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    import asyncpg

    from journeyman.orchestrator.customers import metrics, sweep_segments
    from journeyman.orchestrator.customers.events import BECAME_ACTIVE, BECAME_INACTIVE, BECAME_LOST
    from journeyman.orchestrator.customers.settings import CustomerDataSettings
    from journeyman.orchestrator.ingest import TriggerIndex
    from journeyman.orchestrator.storage import active_plans

SCHEDULE_PREFIX = "journeyman-customer-sweep"


def schedule_id(task_queue: str) -> str:
    """The sweep Schedule of the deployment on ``task_queue``: deployments that share a
    Temporal namespace (staging beside production, test runs) each keep their own."""
    return f"{SCHEDULE_PREFIX}/{task_queue}"


# A sweep reads and moves customers in batches and heartbeats after each one, so a worker that
# dies is noticed within the heartbeat timeout; the whole sweep may take much longer.
SWEEP_TIMEOUT = timedelta(hours=1)
SWEEP_HEARTBEAT = timedelta(minutes=2)
# A sweep that keeps failing gives up, and the next scheduled run starts afresh.
SWEEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=5,
)


class SweepInput(BaseModel):
    """One sweep activity's input: the workflow's instant and the batch size."""

    now: datetime
    batch_size: int = 1000


class RecencySweepResult(BaseModel):
    """The recency events the sweep recorded, by name."""

    became_inactive: int = 0
    became_lost: int = 0
    became_active: int = 0  # activity that arrived while the sweep was moving the customer


class SegmentSweepResult(BaseModel):
    """Segments filled, customers re-evaluated, and the outbox rows their changes wrote."""

    filled: list[str] = Field(default_factory=list)
    customers: int = 0
    routed: int = 0


class CustomerSweepInput(BaseModel):
    """The scheduled run's input (empty today; fields are added with defaults only)."""

    batch_size: int = 1000


class CustomerSweepResult(BaseModel):
    """What one scheduled run did, one field per sweep."""

    now: datetime
    recency: RecencySweepResult
    segments: SegmentSweepResult = Field(default_factory=SegmentSweepResult)


class SweepActivities:
    """The sweep activities, built with their dependencies in the worker."""

    def __init__(self, pool: asyncpg.Pool, *, settings: CustomerDataSettings) -> None:
        self._pool = pool
        self._settings = settings

    def all(self) -> list[Callable[..., Any]]:
        """Every sweep activity, for the worker to register."""
        return [self.sweep_customers, self.sweep_segments]

    @activity.defn(name="sweep_customers")
    async def sweep_customers(self, input: SweepInput) -> RecencySweepResult:
        """Move customers whose activity aged past a recency threshold and record it."""
        activity.heartbeat(0)
        events = await metrics.sweep_recency(
            self._pool,
            now=input.now,
            settings=self._settings,
            batch_size=input.batch_size,
            progress=activity.heartbeat,
        )
        names = [event.event for event in events]
        return RecencySweepResult(
            became_inactive=names.count(BECAME_INACTIVE),
            became_lost=names.count(BECAME_LOST),
            became_active=names.count(BECAME_ACTIVE),
        )

    @activity.defn(name="sweep_segments")
    async def sweep_segments(self, input: SweepInput) -> SegmentSweepResult:
        """Fill new segments, re-evaluate time-dependent ones, route what changed."""
        activity.heartbeat("start")
        index = TriggerIndex.build(*await active_plans(self._pool))
        report = await sweep_segments.sweep_segments(
            self._pool,
            index=index,
            now=input.now,
            batch_size=input.batch_size,
            progress=lambda segment, done: activity.heartbeat(segment, done),
        )
        return SegmentSweepResult(
            filled=report.filled, customers=report.customers, routed=report.routed
        )


@workflow.defn(name="CustomerSweepWorkflow")
class CustomerSweepWorkflow:
    @workflow.run
    async def run(self, input: CustomerSweepInput) -> CustomerSweepResult:
        now = workflow.now()
        recency = await workflow.execute_activity_method(
            SweepActivities.sweep_customers,
            SweepInput(now=now, batch_size=input.batch_size),
            start_to_close_timeout=SWEEP_TIMEOUT,
            heartbeat_timeout=SWEEP_HEARTBEAT,
            retry_policy=SWEEP_RETRY,
        )
        segments = await workflow.execute_activity_method(
            SweepActivities.sweep_segments,
            SweepInput(now=now, batch_size=input.batch_size),
            start_to_close_timeout=SWEEP_TIMEOUT,
            heartbeat_timeout=SWEEP_HEARTBEAT,
            retry_policy=SWEEP_RETRY,
        )
        return CustomerSweepResult(now=now, recency=recency, segments=segments)


def sweep_schedule(*, task_queue: str, interval: timedelta) -> Schedule:
    """The Schedule that starts ``CustomerSweepWorkflow`` every ``interval``."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            CustomerSweepWorkflow.run,
            CustomerSweepInput(),
            id=schedule_id(task_queue),  # Temporal appends each run's scheduled time
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=interval)]),
        # A sweep still running when the next is due has the next one skipped: two sweeps at
        # once would only compete for the same customers.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_sweep_schedule(client: Client, *, task_queue: str, interval: timedelta) -> None:
    """Create the sweep Schedule, or bring an existing one up to date (each worker start).

    An update keeps the Schedule's state, so a sweep an operator paused stays paused.
    """
    schedule = sweep_schedule(task_queue=task_queue, interval=interval)
    try:
        await client.create_schedule(schedule_id(task_queue), schedule)
    except ScheduleAlreadyRunningError:

        def updated(current: ScheduleUpdateInput) -> ScheduleUpdate:
            schedule.state = current.description.schedule.state
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(schedule_id(task_queue)).update(updated)


async def sweep_now(client: Client, *, task_queue: str) -> None:
    """Run the sweep at once (a segment was deployed and needs filling), not at its next
    interval. An overlapping sweep still running makes this a no-op (policy SKIP)."""
    await client.get_schedule_handle(schedule_id(task_queue)).trigger()
