"""The worker's composition root: the journey workflow and its activities on one task queue."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from .activities import JourneyActivities
from .journey import JourneyWorkflow


def build_worker(
    client: Client,
    *,
    task_queue: str,
    activities: JourneyActivities,
    max_concurrent_activities: int = 100,
) -> Worker:
    """A worker for the journey interpreter; the caller owns running and shutting it down."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[JourneyWorkflow],
        activities=activities.all(),
        max_concurrent_activities=max_concurrent_activities,
        # On shutdown, let in-flight sends finish and record their outcome.
        graceful_shutdown_timeout=timedelta(seconds=15),
    )
