"""The simulated outside world, as workflows on the time-skipping server.

None of this is the engine: a customer's delayed reaction, a customer arriving later, and the
clock that ends the simulation. Reactions and arrivals are started with a start delay, so the
wait is the server's own timer, which it skips; they are unsandboxed because they are tiny and
there are thousands of them (the journey workflow keeps its sandbox, as in production).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from journeyman.workflows.inputs import EVENT_SIGNAL, JourneyEvent

ENTER_ACTIVITY = "simulation_enter"
ACTIVITY_TIMEOUT = timedelta(seconds=30)


class ReactionInput(BaseModel):
    workflow_id: str  # the customer's journey run
    event: JourneyEvent


class ArrivalInput(BaseModel):
    customer_id: str


class ClockInput(BaseModel):
    seconds: int


@workflow.defn(name="SimulatedReaction", sandboxed=False)
class SimulatedReaction:
    """Deliver one event to a journey run, as the dispatcher would; False if the run has ended."""

    @workflow.run
    async def run(self, input: ReactionInput) -> bool:
        handle = workflow.get_external_workflow_handle(input.workflow_id)
        try:
            await handle.signal(EVENT_SIGNAL, input.event)
        except ApplicationError as exc:
            # The customer acted after their run ended (converted, exited): nothing listens.
            if exc.type == "ExternalWorkflowExecutionNotFound":
                return False
            raise
        return True


@workflow.defn(name="SimulatedArrival", sandboxed=False)
class SimulatedArrival:
    """Enter one customer into the journey now (the activity does the signal-with-start)."""

    @workflow.run
    async def run(self, input: ArrivalInput) -> None:
        await workflow.execute_activity(
            ENTER_ACTIVITY, input, start_to_close_timeout=ACTIVITY_TIMEOUT
        )


@workflow.defn(name="SimulationClock", sandboxed=False)
class SimulationClock:
    """Ends at the horizon; the client awaits it, which is what lets the server skip time."""

    @workflow.run
    async def run(self, input: ClockInput) -> None:
        await workflow.sleep(input.seconds)
