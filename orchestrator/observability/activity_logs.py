"""Every activity's log lines carry the ids of the journey run it works for.

A worker interceptor binds the ids found on the activity's input model (``journey_id``,
``version``, ``customer_id``, ``step_id``, ``send_key``) in the activity's task; the
workflow and run ids come from the activity's info (``logs.context_ids``). Activities thus
log with context without passing ids around, and a new activity gets it for free.
"""

from __future__ import annotations

from typing import Any

from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from .logs import bind_log_context

# Input fields that name the work; anything else on an input (events, profiles) stays out.
INPUT_FIELDS = ("journey_id", "version", "customer_id", "step_id", "send_key")


def ids_of(value: object) -> dict[str, str]:
    """The ids an activity input carries, as strings."""
    found: dict[str, str] = {}
    for field in INPUT_FIELDS:
        item = getattr(value, field, None)
        if isinstance(item, str) and item:
            found[field] = item
    return found


class ActivityLogContext(Interceptor):
    """Install on a worker: activities log with their run's ids."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _BindIds(next)


class _BindIds(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        # Bound for the rest of the activity's task rather than around the call: the SDK
        # logs a failed attempt after the activity has raised, in that same task, and the
        # line should say which send failed. The task, and its context, end with it.
        bind_log_context(**(ids_of(input.args[0]) if input.args else {}))
        return await self.next.execute_activity(input)
