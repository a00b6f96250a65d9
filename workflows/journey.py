"""The journey interpreter: one run per customer per journey, executing a pinned plan.

Deterministic code only: time comes from the workflow API, every side effect is an activity.
Goals are watched continuously: a goal event moves the customer on at once, whatever step
they are in, including in the middle of a delay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from .activities import JourneyActivities
    from .conditions import matches
    from .inputs import (
        EVENT_SIGNAL,
        JourneyEvent,
        JourneyInput,
        LoadPlanInput,
        Outcome,
        RunState,
        SendInput,
        TransitionInput,
    )
    from .plan import EventMatch, Plan, SendStep, StagePlan, Step, WaitForStep, WaitStep
    from .search_attributes import JOURNEY_STAGE

# Bounds that keep a months-long run's state and history small (invariant 7).
MAX_PENDING_EVENTS = 100
MAX_SEEN_IDS = 500
HISTORY_EVENTS_BEFORE_CONTINUE = 5_000

ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)


@workflow.defn(name="JourneyWorkflow")
class JourneyWorkflow:
    def __init__(self) -> None:
        self._pending: list[tuple[int, JourneyEvent]] = []  # (arrival number, event)
        self._received = 0
        self._seen: dict[str, None] = {}  # insertion-ordered set of recent message ids
        self._stage: str | None = None

    @workflow.signal(name=EVENT_SIGNAL)
    def on_event(self, event: JourneyEvent) -> None:
        """Take an event; the dispatcher may deliver one twice, so dedupe by message id."""
        if event.message_id in self._seen:
            return
        self._seen[event.message_id] = None
        while len(self._seen) > MAX_SEEN_IDS:
            del self._seen[next(iter(self._seen))]
        self._received += 1
        self._pending.append((self._received, event))
        if len(self._pending) > MAX_PENDING_EVENTS:
            del self._pending[0]

    @workflow.query(name="stage")
    def current_stage(self) -> str | None:
        return self._stage

    @workflow.run
    async def run(self, input: JourneyInput) -> str:
        info = workflow.info()
        state = input.state or RunState(run_key=f"{info.workflow_id}@{info.run_id}")
        self._restore(state)
        if state.entry_event is None:
            # Started by signal-with-start: the entry event is the first one delivered.
            await workflow.wait_condition(lambda: bool(self._pending))
            state.entry_event = self._pending.pop(0)[1]
        plan = await workflow.execute_activity_method(
            JourneyActivities.load_plan,
            LoadPlanInput(journey_id=input.journey_id, version=input.version),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=ACTIVITY_RETRY,
        )
        runner = _Runner(self, plan, input, state)
        if state.seq == 0:
            await runner.transition(None, plan.stages[0].name, "entered")
        while state.stage_index < len(plan.stages):
            stage = plan.stages[state.stage_index]
            self._stage = stage.name
            workflow.upsert_search_attributes([JOURNEY_STAGE.value_set(stage.name)])
            outcome = await runner.run_stage(stage)
            nxt = (
                plan.stages[state.stage_index + 1].name
                if state.stage_index + 1 < len(plan.stages)
                else None
            )
            if outcome == "exited":
                await runner.transition(stage.name, None, "exited")
                return "exited"
            await runner.transition(stage.name, nxt, outcome)
            state.stage_index += 1
            if nxt is not None and self._should_continue_as_new():
                state.pending = [e for _, e in self._pending]
                state.seen_ids = list(self._seen)
                workflow.continue_as_new(JourneyInput(**{**input.model_dump(), "state": state}))
        return "completed"

    def _restore(self, state: RunState) -> None:
        for message_id in state.seen_ids:
            self._seen[message_id] = None
        for event in state.pending:
            self._received += 1
            self._pending.append((self._received, event))

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() > HISTORY_EVENTS_BEFORE_CONTINUE
        )

    def find(self, match: EventMatch, *, since: int = 0) -> int | None:
        """Position of the first pending event that matches and arrived at or after ``since``."""
        for position, (arrival, event) in enumerate(self._pending):
            if arrival >= since and matches(match, event.name, event.properties):
                return position
        return None

    def consume_through(self, position: int) -> None:
        """Drop events up to a goal event; later ones carry into the next stage."""
        del self._pending[: position + 1]

    @property
    def received(self) -> int:
        return self._received


class _Runner:
    """Runs one plan's stages for one run; kept apart so the workflow class stays readable."""

    def __init__(
        self, wf: JourneyWorkflow, plan: Plan, input: JourneyInput, state: RunState
    ) -> None:
        self.wf, self.plan, self.input, self.state = wf, plan, input, state
        self.stopping = False  # the stage is settled: start no further step
        # Events arriving from this mark on belong to the current stage (0: the whole run).
        self.stage_mark = 0
        self.in_send = False

    async def transition(
        self, from_stage: str | None, to_stage: str | None, outcome: Outcome
    ) -> None:
        self.state.seq += 1
        await workflow.execute_activity_method(
            JourneyActivities.record_transition,
            TransitionInput(
                run_key=self.state.run_key,
                seq=self.state.seq,
                journey_id=self.input.journey_id,
                version=self.input.version,
                customer_id=self.input.customer_id,
                workflow_id=workflow.info().workflow_id,
                from_stage=from_stage,
                to_stage=to_stage,
                outcome=outcome,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=ACTIVITY_RETRY,
        )

    async def run_stage(self, stage: StagePlan) -> Outcome:
        """Run the touchpoints while watching the goal; returns converted, moved_on or exited."""
        steps = asyncio.create_task(self.run_steps(stage, stage.steps, since=self.stage_mark))
        goal = stage.goal

        def settled() -> bool:
            if goal is not None and self.wf.find(goal) is not None:
                return True
            return steps.done() and (goal is None or steps.exception() is not None)

        try:
            await workflow.wait_condition(settled, timeout=stage.max_dwell_seconds)
        except TimeoutError:
            return "exited" if stage.on_max_dwell == "exit" else "moved_on"
        finally:
            await self._stop(steps)
            self.stage_mark = self.wf.received + 1
        if goal is not None:
            position = self.wf.find(goal)
            if position is not None:
                self.wf.consume_through(position)
                return "converted"
        if steps.exception() is not None:
            raise ApplicationError(f"stage {stage.name} failed") from steps.exception()
        return "moved_on"

    async def _stop(self, steps: asyncio.Task[None]) -> None:
        """Stop the touchpoints; a send already under way finishes and is recorded first.

        Sends are never cancelled: the provider may already have the message, and the
        ledger must say what happened. Waits are interrupted at once.
        """
        self.stopping = True
        await workflow.wait_condition(lambda: steps.done() or not self.in_send)
        if not steps.done():
            steps.cancel()
            await workflow.wait([steps])
        self.stopping = False

    async def run_steps(self, stage: StagePlan, steps: Sequence[Step], *, since: int) -> None:
        # A reply to a message can arrive while that message's send is still being recorded:
        # wait_for counts events from the start of the step before it, so it is not missed.
        step_start = since
        for index, step in enumerate(steps):
            if self.stopping:
                return
            # The first step starts at the stage mark; later ones when they begin.
            previous_start = step_start
            step_start = since if index == 0 else self.wf.received + 1
            if isinstance(step, SendStep):
                await self.send(stage, step)
            elif isinstance(step, WaitStep):
                await workflow.sleep(step.seconds)
            elif isinstance(step, WaitForStep):
                try:
                    await workflow.wait_condition(
                        lambda s=step, f=previous_start: self.wf.find(s.match, since=f) is not None,  # type: ignore[misc]
                        timeout=step.timeout_seconds,
                    )
                except TimeoutError:
                    await self.run_steps(stage, step.on_timeout, since=self.wf.received + 1)

    async def send(self, stage: StagePlan, step: SendStep) -> None:
        # Deterministic per run, step and iteration: a retried or replayed send finds its
        # ledger row and never delivers twice. Steps run once per stage visit (iteration 0).
        send_key = f"{self.state.run_key}/{stage.name}/{step.id}/0"
        self.in_send = True
        try:
            await self._send_activity(stage, step, send_key)
        finally:
            self.in_send = False

    async def _send_activity(self, stage: StagePlan, step: SendStep, send_key: str) -> None:
        await workflow.execute_activity_method(
            JourneyActivities.send_message,
            SendInput(
                send_key=send_key,
                journey_id=self.input.journey_id,
                version=self.input.version,
                customer_id=self.input.customer_id,
                step_id=step.id,
                stage=stage.name,
                entry_event=self.state.entry_event,
            ),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=ACTIVITY_RETRY,
        )
