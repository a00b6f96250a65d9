"""Running a plan's stages for one journey run: steps, goals, exits, dwell and migrations.

Deterministic workflow code, used by ``JourneyWorkflow`` (``journey.py``), which owns the
signals, the pending events and continue-as-new.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Literal, TypeVar

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from .activities import JourneyActivities
    from .inputs import (
        RUN_ENDED_EVENT,
        ExitReason,
        JourneyInput,
        Outcome,
        RunState,
        SendInput,
        StepInput,
        TransitionInput,
    )
    from .plan import (
        BranchStep,
        EventMatch,
        ExitStep,
        ExperimentStep,
        GotoStep,
        Plan,
        SendStep,
        SplitStep,
        StagePlan,
        Step,
        UpdateStep,
        WaitForStep,
        WaitStep,
    )
    from .program import Program, bucket, compile_stage, is_waiting, locate
    from .search_attributes import JOURNEY_STAGE, JOURNEY_STEP

if TYPE_CHECKING:
    from .journey import JourneyWorkflow

# Steps run without time passing before the run is failed: a goto loop with no wait in it.
MAX_INSTANT_STEPS = 1_000

ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
ACTIVITY_TIMEOUT = timedelta(seconds=30)
# A send may wait on a provider for as long as its configured timeout allows (a webhook up to
# five minutes), so its own limit is longer; the heartbeat notices a dead worker far sooner.
SEND_TIMEOUT = timedelta(minutes=6)
SEND_HEARTBEAT = timedelta(seconds=20)

_In = TypeVar("_In")
_Out = TypeVar("_Out")


async def short_activity(
    method: Callable[[JourneyActivities, _In], Awaitable[_Out]], arg: _In, *, local: bool
) -> _Out:
    """Run one of the short, idempotent database steps (plan, transition, branch, variant,
    timed wait).

    ``local``: as a local activity, inside the workflow task that asks for it, so it costs no
    server round trip and no workflow task of its own. A retried or re-executed one is
    harmless: each is a read, or a write keyed so that a repeat changes nothing.
    """
    if local:
        return await workflow.execute_local_activity_method(
            method, arg, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY
        )
    return await workflow.execute_activity_method(
        method, arg, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY
    )


# The engine's own exit, watched like the plan's exits (identity merges, erasure).
RUN_ENDED = EventMatch(event=RUN_ENDED_EVENT)
# What the engine writes in its run-ended event's ``reason``, as an exit reason.
RUN_ENDED_REASONS: dict[str, ExitReason] = {
    "merged": "merge",
    "merge": "merge",
    "erased": "erasure",
    "erasure": "erasure",
}
# Exit reasons' words (an exit step's text, an exit event) are kept this long at most.
MAX_DETAIL = 200


# How a stage ended for the run: the transition outcomes, plus two internal ones.
StageOutcome = Literal["converted", "moved_on", "exited", "goal", "migrated", "continue"]


@dataclass(frozen=True)
class StageEnd:
    """How a stage ended: ``done``, ``goto`` (``stage``, ``pc``), ``exit``, ``continue`` at
    ``pc`` (continue-as-new before a waiting step), or ``timeout`` (the max dwell passed).

    ``reason`` and ``detail`` say why a run that leaves without converting leaves."""

    kind: str
    stage: int = 0
    pc: int = 0
    reason: ExitReason | None = None
    detail: str | None = None


TIMED_OUT = StageEnd("timeout", reason="timeout")


def describe(match: EventMatch) -> str:
    """An event match in a few words for reports: ``Segment Exited (segment=vip)``."""
    tests = ", ".join(
        f"{t.path}={t.value}" if t.op == "eq" else f"{t.path} {t.op} {t.value}" for t in match.where
    )
    return f"{match.event} ({tests})" if tests else match.event


class StageRunner:
    """Runs one plan's stages for one run; kept apart so the workflow class stays readable."""

    def __init__(
        self, wf: JourneyWorkflow, plan: Plan, input: JourneyInput, state: RunState
    ) -> None:
        self.wf, self.plan, self.input, self.state = wf, plan, input, state
        self.stopping = False  # the stage is settled: start no further step
        # Events arriving from this mark on belong to the current stage (0: the whole run).
        self.stage_mark = 0
        self.in_send = False
        self.instant_steps = 0
        self.clock = workflow.now()

    @property
    def version(self) -> str:
        return self.state.version or self.input.version

    async def run(self) -> str:
        plan, state = self.plan, self.state
        while state.stage_index < len(plan.stages):
            plan = self.plan
            stage = plan.stages[state.stage_index]
            self.wf.show(stage.name, None)
            self.publish([JOURNEY_STAGE.value_set(stage.name), JOURNEY_STEP.value_unset()])
            outcome, end = await self.run_stage(stage)
            if outcome == "migrated":
                continue
            if outcome == "continue":
                self.wf.continue_as_new(self.input, state)
            if outcome == "exited" or outcome == "goal":
                await self.transition(stage.name, None, outcome, end=end)
                return "converted" if outcome == "goal" else "exited"
            if end is not None and end.kind == "goto":
                state.stage_index, state.pc = end.stage, end.pc
            else:
                state.stage_index, state.pc = state.stage_index + 1, 0
            nxt = (
                plan.stages[state.stage_index].name
                if state.stage_index < len(plan.stages)
                else None
            )
            assert outcome == "converted" or outcome == "moved_on"
            await self.transition(stage.name, nxt, outcome, end=end)
            state.stage_started_at = workflow.now()
            if nxt is not None and self.wf.should_continue_as_new():
                self.wf.continue_as_new(self.input, state)
        return "completed"

    def publish(self, updates: list[SearchAttributeUpdate[str]]) -> None:
        """Set the run's stage and step in Temporal's visibility.

        Each upsert is a history event and a visibility write on the server, so runs with
        ``LOCAL_ACTIVITIES_PATCH`` leave out what is already so: a step never set, a stage
        given at start or unchanged by a goto. Older runs upsert as their histories say.
        """
        if self.wf.local:
            current = workflow.info().typed_search_attributes
            updates = [u for u in updates if current.get(u.key) != u.value]
            if not updates:
                return
        workflow.upsert_search_attributes(updates)

    async def transition(
        self,
        from_stage: str | None,
        to_stage: str | None,
        outcome: Outcome,
        from_version: str | None = None,
        *,
        end: StageEnd | None = None,
    ) -> None:
        """Record a transition; ``end`` says why a run leaving without converting leaves."""
        # Only leaving without converting has a reason; a conversion needs none.
        why = end if outcome in ("moved_on", "exited") else None
        self.state.seq += 1
        await short_activity(
            JourneyActivities.record_transition,
            TransitionInput(
                run_key=self.state.run_key,
                seq=self.state.seq,
                journey_id=self.input.journey_id,
                version=self.version,
                customer_id=self.input.customer_id,
                workflow_id=workflow.info().workflow_id,
                from_stage=from_stage,
                to_stage=to_stage,
                outcome=outcome,
                from_version=from_version,
                holdout=self.state.holdout,
                reason=why.reason if why is not None else None,
                reason_detail=why.detail if why is not None else None,
                entered_at=self.state.entered_at,
                at=workflow.now(),
            ),
            local=self.wf.local,
        )

    # --- watching the stage ------------------------------------------------------------

    def _journey_end(self) -> Literal["exited", "goal"] | None:
        """``goal`` or ``exited`` when a journey-wide goal or exit event has arrived; an event
        that is both counts as the goal, so a conversion is never recorded as an exit."""
        goal = self.plan.goal
        if goal is not None and self.state.entered_at is not None:
            position = self.wf.find(goal.match)
            if position is not None:
                arrived = self.wf.event_at(position).received_at
                deadline = self.state.entered_at + timedelta(seconds=goal.within_seconds)
                if arrived is None or arrived <= deadline:
                    return "goal"
        if any(self.wf.find(match) is not None for match in self.plan.exits):
            return "exited"
        if self.wf.find(RUN_ENDED) is not None:
            return "exited"
        return None

    def _exit_cause(self) -> StageEnd:
        """Why a journey-wide exit happened: the earliest pending exit event, the plan's
        ``exit`` rules or the engine's run-ended event."""
        found = [
            (position, match)
            for match in [*self.plan.exits, RUN_ENDED]
            if (position := self.wf.find(match)) is not None
        ]
        position, match = min(found, key=lambda item: item[0])
        if match is not RUN_ENDED:
            return StageEnd("exit", reason="exit_rule", detail=describe(match)[:MAX_DETAIL])
        said = str(self.wf.event_at(position).properties.get("reason", ""))
        reason = RUN_ENDED_REASONS.get(said)
        if reason is not None:
            return StageEnd("exit", reason=reason)
        # A reason this worker does not know yet: kept in the detail rather than lost.
        return StageEnd("exit", reason="unknown", detail=said[:MAX_DETAIL] or None)

    def _ended(
        self, journey_end: Literal["exited", "goal"]
    ) -> tuple[StageOutcome, StageEnd | None]:
        """The outcome of a journey-wide goal or exit, with the exit's cause."""
        return journey_end, self._exit_cause() if journey_end == "exited" else None

    async def run_stage(self, stage: StagePlan) -> tuple[StageOutcome, StageEnd | None]:
        """Run the steps while watching goals, exits and migrations.

        Returns converted, moved_on, exited, goal, migrated or continue (as new), with how
        the steps ended.
        """
        program = compile_stage(self.plan, stage)
        steps = asyncio.create_task(self.execute(stage, program, self.state.pc))
        goal = stage.goal

        def settled() -> bool:
            if goal is not None and self.wf.find(goal) is not None:
                return True
            return self._journey_end() is not None or steps.done()

        while True:
            try:
                await workflow.wait_condition(
                    lambda: settled() or self.wf.migration is not None,
                    timeout=self._dwell_left(stage),
                )
            except TimeoutError:
                await self._stop(steps)
                self.stage_mark = self.wf.received + 1
                return ("exited" if stage.on_max_dwell == "exit" else "moved_on"), TIMED_OUT
            if settled():
                break
            target = await self._migration_target(program)
            if target is not None and not settled():
                await self._stop(steps)
                await self._apply_migration(stage, *target)
                return "migrated", None
        await self._stop(steps)
        self.stage_mark = self.wf.received + 1
        journey_end = self._journey_end()
        if journey_end is not None:
            return self._ended(journey_end)
        if goal is not None:
            position = self.wf.find(goal)
            if position is not None:
                self.wf.consume_through(position)
                return "converted", None
        if steps.exception() is not None:
            raise ApplicationError(f"stage {stage.name} failed") from steps.exception()
        end = steps.result()
        if end.kind == "exit":
            return "exited", end
        if end.kind == "continue":
            self.state.pc = end.pc
            return "continue", end
        if end.kind == "done" and goal is not None:
            # Touchpoints are done; the customer stays until the goal or the dwell limit.
            return await self._await_goal(stage, goal)
        if end.kind == "done":
            return "moved_on", StageEnd("done", pc=end.pc, reason="no_goal")
        return "moved_on", end

    async def _await_goal(
        self, stage: StagePlan, goal: EventMatch
    ) -> tuple[StageOutcome, StageEnd | None]:
        try:
            await workflow.wait_condition(
                lambda: self.wf.find(goal) is not None or self._journey_end() is not None,
                timeout=self._dwell_left(stage),
            )
        except TimeoutError:
            return ("exited" if stage.on_max_dwell == "exit" else "moved_on"), TIMED_OUT
        journey_end = self._journey_end()
        if journey_end is not None:
            return self._ended(journey_end)
        position = self.wf.find(goal)
        assert position is not None
        self.wf.consume_through(position)
        return "converted", None

    def _dwell_left(self, stage: StagePlan) -> float | None:
        if stage.max_dwell_seconds is None:
            return None
        started = self.state.stage_started_at or workflow.now()
        left = started + timedelta(seconds=stage.max_dwell_seconds) - workflow.now()
        return max(left.total_seconds(), 0.001)

    async def _stop(self, steps: asyncio.Task[StageEnd]) -> None:
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

    async def _migration_target(self, program: Program) -> tuple[Plan, int, int] | None:
        """The new plan, stage and pc for a requested migration, or None when it cannot apply:
        the run is not at a waiting step, or the step has no counterpart in the new version."""
        request, self.wf.migration = self.wf.migration, None
        assert request is not None
        here = program.instructions[self.state.pc].step if self.state.pc < program.end else None
        if here is None or not is_waiting(here) or request.version == self.version:
            return None
        new_plan = await self.wf.load_plan(self.input.journey_id, request.version)
        try:
            stage_index, pc = locate(new_plan, request.steps.get(here.id, here.id))
        except KeyError:
            return None
        return new_plan, stage_index, pc

    async def _apply_migration(self, stage: StagePlan, plan: Plan, index: int, pc: int) -> None:
        old = self.version
        self.plan, self.state.version = plan, plan.version
        self.wf.version = plan.version
        self.state.stage_index, self.state.pc = index, pc
        self.state.stage_started_at = workflow.now()
        await self.transition(stage.name, plan.stages[index].name, "migrated", old)

    # --- the steps ---------------------------------------------------------------------

    async def execute(self, stage: StagePlan, program: Program, pc: int) -> StageEnd:
        """Run instructions from ``pc``; ``self.state.pc`` always says where the run is."""
        since, first = self.stage_mark, True
        while pc < program.end:
            if self.stopping:
                return StageEnd("done", pc=pc)
            self.state.pc = pc
            instruction = program.instructions[pc]
            step = instruction.step
            self._count_instant_step()
            if instruction.op == "jump":
                pc = instruction.targets[0]
                continue
            assert step is not None
            self.state.visits[step.id] = self.state.visits.get(step.id, 0) + 1
            if instruction.op == "goto":
                assert instruction.stage is not None and isinstance(step, GotoStep)
                return StageEnd(
                    "goto",
                    stage=instruction.stage,
                    pc=instruction.targets[0],
                    reason="goto",
                    detail=step.id,
                )
            if instruction.op == "exit":
                assert isinstance(step, ExitStep)
                # The declared words (``exit: not interested``), else which exit step it was.
                said = step.reason or step.id
                return StageEnd("exit", reason="exit_step", detail=said[:MAX_DETAIL])
            if is_waiting(step) and self.wf.should_continue_as_new():
                self.state.visits[step.id] -= 1
                return StageEnd("continue", pc=pc)
            # The first step starts at the stage mark; later ones when they begin.
            started = since if first else self.wf.received + 1
            first = False
            if instruction.op == "wait_for":
                assert isinstance(step, WaitForStep)
                self.wf.show(stage.name, step.id)
                self.publish([JOURNEY_STEP.value_set(step.id)])
                came = await self._wait_for(step, since)
                pc = instruction.targets[0 if came else 1]
            elif instruction.op == "choose":
                pc = instruction.targets[await self._choose(step)]
            else:
                if await self._do(stage, step) == "exit":
                    return StageEnd("exit", reason="archived")
                pc += 1
            # A reply to a message can arrive while that message's send is still being
            # recorded: the next wait_for counts events from the start of the step before it.
            since = started
        self.state.pc = pc
        return StageEnd("done", pc=pc)

    def _count_instant_step(self) -> None:
        now = workflow.now()
        if now > self.clock:
            self.clock, self.instant_steps = now, 0
        self.instant_steps += 1
        if self.instant_steps > MAX_INSTANT_STEPS:
            raise ApplicationError(
                f"more than {MAX_INSTANT_STEPS} steps without any time passing: a loop with no"
                " wait in it",
                non_retryable=True,
            )

    async def _wait_for(self, step: WaitForStep, since: int) -> bool:
        after = workflow.now() - timedelta(seconds=step.lookback_seconds)
        lookback = after if step.lookback_seconds else None
        try:
            await workflow.wait_condition(
                lambda: self.wf.find(step.match, since=since, after=lookback) is not None,
                timeout=step.timeout_seconds,
            )
        except TimeoutError:
            return False
        return True

    async def _choose(self, step: Step) -> int:
        if isinstance(step, SplitStep):
            total = sum(path.weight for path in step.paths)
            roll = bucket(self.plan.journey_id, step.id, self.input.customer_id, modulo=total)
            for index, path in enumerate(step.paths):
                if roll < path.weight:
                    return index
                roll -= path.weight
            raise AssertionError("weights cover the roll")
        if isinstance(step, BranchStep):
            method = JourneyActivities.evaluate_branch
        else:
            assert isinstance(step, ExperimentStep)
            if self.state.holdout:
                # Held-out customers are no variant's entrants: they would dilute the
                # comparison. They follow the control path, which sends them nothing anyway.
                return [v.name for v in step.variants].index(step.control)
            method = JourneyActivities.assign_variant
        return await short_activity(method, self._step_input(step), local=self.wf.local)

    def _step_input(self, step: Step) -> StepInput:
        return StepInput(
            journey_id=self.input.journey_id,
            version=self.version,
            customer_id=self.input.customer_id,
            step_id=step.id,
            entry_event=self.state.entry_event,
            now=workflow.now(),
        )

    async def _do(self, stage: StagePlan, step: Step) -> str | None:
        if isinstance(step, SendStep):
            return await self.send(stage, step)
        if isinstance(step, WaitStep):
            self.wf.show(stage.name, step.id)
            self.publish([JOURNEY_STEP.value_set(step.id)])
            await self._wait(step)
            return None
        assert isinstance(step, UpdateStep)
        await workflow.execute_activity_method(
            JourneyActivities.update_profile,
            self._step_input(step),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )
        return None

    async def _wait(self, step: WaitStep) -> None:
        if step.until_time is None and step.until_date is None:
            await workflow.sleep(step.seconds)
            return
        until = await short_activity(
            JourneyActivities.resolve_wait, self._step_input(step), local=self.wf.local
        )
        if until is not None and until > workflow.now():
            await workflow.sleep((until - workflow.now()).total_seconds())

    async def send(self, stage: StagePlan, step: SendStep) -> str | None:
        if self.state.holdout:
            return None  # held out: counted in the funnel, never messaged
        # Deterministic per run, step and visit: a retried or replayed send finds its ledger
        # row and never delivers twice; a step revisited through a goto is a new message.
        visit = self.state.visits.get(step.id, 1) - 1
        send_key = f"{self.state.run_key}/{stage.name}/{step.id}/{visit}"
        while True:
            self.in_send = True
            try:
                result = await workflow.execute_activity_method(
                    JourneyActivities.send_message,
                    SendInput(
                        send_key=send_key,
                        journey_id=self.input.journey_id,
                        version=self.version,
                        customer_id=self.input.customer_id,
                        step_id=step.id,
                        stage=stage.name,
                        entry_event=self.state.entry_event,
                        now=workflow.now(),
                    ),
                    start_to_close_timeout=SEND_TIMEOUT,
                    heartbeat_timeout=SEND_HEARTBEAT,
                    retry_policy=ACTIVITY_RETRY,
                    priority=Priority(priority_key=self.plan.delivery.priority),
                )
            finally:
                self.in_send = False
            if result.status == "archived":
                return "exit"
            if result.status != "deferred" or result.retry_at is None:
                return None
            # Quiet hours or the throttle: try again when the activity says it may go.
            if self.stopping:
                return None
            await workflow.sleep(max((result.retry_at - workflow.now()).total_seconds(), 1))
