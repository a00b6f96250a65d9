"""The journey interpreter: one run per customer per journey, executing a pinned plan.

Deterministic code only: time comes from the workflow API, every side effect and every read
of customer data is an activity. Goals and exits are watched continuously: a matching event
moves the customer on at once, whatever step they are in, including in the middle of a delay.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from .activities import JourneyActivities
    from .conditions import matches
    from .inputs import (
        EVENT_SIGNAL,
        MIGRATE_SIGNAL,
        JourneyEvent,
        JourneyInput,
        LoadPlanInput,
        MigrateInput,
        Position,
        RunState,
    )
    from .plan import EventMatch, Plan
    from .program import bucket

from .stages import StageRunner, short_activity

# Bounds that keep a months-long run's state and history small (invariant 7).
MAX_PENDING_EVENTS = 100
MAX_SEEN_IDS = 500
HISTORY_EVENTS_BEFORE_CONTINUE = 5_000

# Runs that start with this patch run their short database steps as local activities (see
# ``stages.short_activity``) and leave out search-attribute upserts that change nothing
# (``StageRunner.publish``); runs started before it keep the commands their histories hold.
LOCAL_ACTIVITIES_PATCH = "local-activities"


def is_held_out(plan: Plan, customer_id: str) -> bool:
    """Whether the customer is in the journey's holdout share.

    The draw depends on the customer alone, so holdouts nest into one global control group:
    a customer held out of a 5 % holdout is held out of every journey holding out 5 % or more,
    and uplift can be measured across all journeys, not only within one.
    """
    share = plan.entry.holdout_percent
    return share > 0 and bucket("holdout", customer_id, modulo=10_000) < share * 100


@workflow.defn(name="JourneyWorkflow")
class JourneyWorkflow:
    def __init__(self) -> None:
        self._pending: list[tuple[int, JourneyEvent]] = []  # (arrival number, event)
        self._received = 0
        self._seen: dict[str, None] = {}  # insertion-ordered set of recent message ids
        self._stage: str | None = None
        self._step: str | None = None
        self.version = ""
        self.migration: MigrateInput | None = None
        self.local = False  # short steps as local activities (``LOCAL_ACTIVITIES_PATCH``)

    @workflow.signal(name=EVENT_SIGNAL)
    def on_event(self, event: JourneyEvent) -> None:
        """Take an event; the dispatcher may deliver one twice, so dedupe by message id."""
        if event.message_id in self._seen:
            return
        self._seen[event.message_id] = None
        while len(self._seen) > MAX_SEEN_IDS:
            del self._seen[next(iter(self._seen))]
        self._received += 1
        stamped = event.model_copy(update={"received_at": workflow.now()})
        self._pending.append((self._received, stamped))
        if len(self._pending) > MAX_PENDING_EVENTS:
            del self._pending[0]

    @workflow.signal(name=MIGRATE_SIGNAL)
    def on_migrate(self, request: MigrateInput) -> None:
        self.migration = request

    @workflow.query(name="stage")
    def current_stage(self) -> str | None:
        return self._stage

    @workflow.query(name="position")
    def position(self) -> Position:
        return Position(version=self.version, stage=self._stage, step=self._step)

    @workflow.run
    async def run(self, input: JourneyInput) -> str:
        # Decided once, first thing, so a run keeps one command sequence from start to end.
        self.local = workflow.patched(LOCAL_ACTIVITIES_PATCH)
        info = workflow.info()
        state = input.state or RunState(run_key=f"{info.workflow_id}@{info.run_id}")
        self._restore(state)
        if state.entry_event is None:
            # Started by signal-with-start: the entry event is the first one delivered.
            await workflow.wait_condition(lambda: bool(self._pending))
            state.entry_event = self._pending.pop(0)[1]
        self.version = state.version or input.version
        plan = await self.load_plan(input.journey_id, self.version)
        runner = StageRunner(self, plan, input, state)
        if state.seq == 0:
            state.entered_at = state.stage_started_at = workflow.now()
            state.holdout = is_held_out(plan, input.customer_id)
            await runner.transition(None, plan.stages[0].name, "entered")
        return await runner.run()

    async def load_plan(self, journey_id: str, version: str) -> Plan:
        return await short_activity(
            JourneyActivities.load_plan,
            LoadPlanInput(journey_id=journey_id, version=version),
            local=self.local,
        )

    def _restore(self, state: RunState) -> None:
        for message_id in state.seen_ids:
            self._seen[message_id] = None
        for event in state.pending:
            self._received += 1
            self._pending.append((self._received, event))

    def should_continue_as_new(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() > HISTORY_EVENTS_BEFORE_CONTINUE
        )

    def continue_as_new(self, input: JourneyInput, state: RunState) -> None:
        state.pending = [e for _, e in self._pending]
        state.seen_ids = list(self._seen)
        workflow.continue_as_new(JourneyInput(**{**input.model_dump(), "state": state}))

    def find(
        self, match: EventMatch, *, since: int = 0, after: datetime | None = None
    ) -> int | None:
        """Position of the first pending event that matches and arrived at or after arrival
        number ``since`` or, when given, at or after time ``after``."""
        for position, (arrival, event) in enumerate(self._pending):
            recent = arrival >= since or (
                after is not None and event.received_at is not None and event.received_at >= after
            )
            if recent and matches(match, event.name, event.properties):
                return position
        return None

    def event_at(self, position: int) -> JourneyEvent:
        return self._pending[position][1]

    def consume_through(self, position: int) -> None:
        """Drop events up to a goal event; later ones carry into the next stage."""
        del self._pending[: position + 1]

    def show(self, stage: str | None, step: str | None) -> None:
        self._stage, self._step = stage, step

    @property
    def received(self) -> int:
        return self._received
