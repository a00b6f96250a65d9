"""The worker's composition root: the journey workflow, the customer sweep and their
activities on one task queue."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from journeyman.orchestrator.observability import ActivityLogContext

from .activities import JourneyActivities
from .journey import JourneyWorkflow
from .sweep import CustomerSweepWorkflow, SweepActivities


def build_worker(
    client: Client,
    *,
    task_queue: str,
    activities: JourneyActivities,
    sweep: SweepActivities | None = None,
    max_concurrent_activities: int = 100,
) -> Worker:
    """A worker for the journey interpreter and, given ``sweep``, the scheduled customer
    sweep; the caller owns running and shutting it down.

    Activities log with their run's ids; tracing, when on, comes with the client.
    """
    workflows: list[type[Any]] = [JourneyWorkflow]
    registered = activities.all()
    if sweep is not None:
        workflows.append(CustomerSweepWorkflow)
        registered += sweep.all()
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows,
        activities=registered,
        max_concurrent_activities=max_concurrent_activities,
        interceptors=[ActivityLogContext()],
        # On shutdown, let in-flight sends finish and record their outcome.
        graceful_shutdown_timeout=timedelta(seconds=15),
    )
