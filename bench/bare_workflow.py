"""The ceiling: a bare Temporal workflow of the bench journey's shape, nothing else.

Started by signal-with-start (the entry), it runs a trivial activity, waits for a signal
(the reply), runs another trivial activity and completes. Kept in its own module with no
imports beyond temporalio, because the workflow sandbox re-imports it.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

ENTER_SIGNAL = "enter"
REPLY_SIGNAL = "reply"
FIRST_ACTIVITY = "bare_first"
SECOND_ACTIVITY = "bare_second"


@workflow.defn(name="BenchBareWorkflow")
class BareWorkflow:
    def __init__(self) -> None:
        self._entered = False
        self._replied = False

    @workflow.signal(name=ENTER_SIGNAL)
    def enter(self, customer: str) -> None:
        self._entered = True

    @workflow.signal(name=REPLY_SIGNAL)
    def reply(self) -> None:
        self._replied = True

    @workflow.run
    async def run(self, customer: str) -> str:
        await workflow.wait_condition(lambda: self._entered)
        await workflow.execute_activity(
            FIRST_ACTIVITY, customer, start_to_close_timeout=timedelta(seconds=30)
        )
        await workflow.wait_condition(lambda: self._replied, timeout=timedelta(hours=1))
        await workflow.execute_activity(
            SECOND_ACTIVITY, customer, start_to_close_timeout=timedelta(seconds=30)
        )
        return "completed"
