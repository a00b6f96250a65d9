"""The worker's composition root: the journey workflow, the customer sweep and their
activities on one task queue."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from journeyman.orchestrator.observability import ActivityLogContext

from .activities import JourneyActivities
from .journey import JourneyWorkflow
from .sweep import CustomerSweepWorkflow, SweepActivities

# The sandbox re-imports a workflow's modules for every new run and swaps its import hooks
# and builtins in and out around every activation: under load that was a third of the
# worker's CPU. The interpreter keeps no state at module level and takes time and randomness
# from the workflow API only, so workers run it unsandboxed by default; the workflow tests and
# the replay tests run it in the full sandbox, which keeps catching non-deterministic calls.
UNSANDBOXED = UnsandboxedWorkflowRunner()


def build_worker(
    client: Client,
    *,
    task_queue: str,
    activities: JourneyActivities,
    sweep: SweepActivities | None = None,
    max_concurrent_activities: int = 100,
    sandboxed: bool = False,
) -> Worker:
    """A worker for the journey interpreter and, given ``sweep``, the scheduled customer
    sweep; the caller owns running and shutting it down.

    Activities log with their run's ids; tracing, when on, comes with the client.
    ``sandboxed`` runs the workflows in Temporal's sandbox (slower; for tests).
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
        workflow_runner=SandboxedWorkflowRunner() if sandboxed else UNSANDBOXED,
        interceptors=[ActivityLogContext()],
        # On shutdown, let in-flight sends finish and record their outcome.
        graceful_shutdown_timeout=timedelta(seconds=15),
    )
