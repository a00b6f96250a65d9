"""What one run asks of Temporal, read from its history: the bare and engine phases report it
side by side, so a difference in journeys/s can be traced to the commands behind it."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory

# What each count is made of, by history event type.
_COUNTED = {
    "workflow_tasks": EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    "activities": EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    # Local activities' results and patch markers, recorded in a workflow task's completion.
    "markers": EventType.EVENT_TYPE_MARKER_RECORDED,
    "search_attribute_upserts": EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    "timers": EventType.EVENT_TYPE_TIMER_STARTED,
    "signals": EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
}


def shape(history: WorkflowHistory) -> dict[str, int]:
    """Events in all, and the workflow tasks, activities, markers, upserts, timers and signals
    among them."""
    types = [event.event_type for event in history.events]
    counts = {name: types.count(kind) for name, kind in _COUNTED.items()}
    return {"events": len(types), **counts}


async def fetch_shape(client: Client, workflow_id: str) -> dict[str, int]:
    """The shape of a finished run's history."""
    return shape(await client.get_workflow_handle(workflow_id).fetch_history())


def describe(engine: dict[str, int], bare: dict[str, int]) -> str:
    """``engine / bare`` for each count, for the report: ``workflow tasks 4 / 4, ...``."""
    parts = [
        f"{name.replace('_', ' ')} {engine.get(name, 0)} / {bare.get(name, 0)}" for name in _COUNTED
    ]
    return ", ".join(parts)
