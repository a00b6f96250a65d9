"""The journey workflow's activities, in memory: same names, same inputs and outputs.

They replace Postgres and SMTP, and nothing else: the journey workflow runs unchanged on the
time-skipping server and cannot tell the difference. Conditions, local times, buckets and
event matches use the engine's own pure functions; "now" is always the workflow's time (from
the input, or when the server scheduled the activity), never the wall clock, because the
server skips time.

Besides counting, two activities are where synthetic customers act: entering a stage
(``record_transition``) and receiving a message (``send_message``) may make them send events
later, as ``SimulatedReaction`` workflows started with that delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal, TypeVar

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from journeyman.orchestrator.customers.settings import CustomerDataSettings
from journeyman.orchestrator.ingest import API_ENTRY_EVENT, workflow_id_for
from journeyman.orchestrator.storage.experiments import VariantResult, pick_winner
from journeyman.workflows import expressions, timing
from journeyman.workflows.compose import PHONE_TRAIT, PUSH_TOKEN_TRAIT
from journeyman.workflows.conditions import matches_properties
from journeyman.workflows.inputs import (
    EVENT_SIGNAL,
    JourneyEvent,
    JourneyInput,
    LoadPlanInput,
    SendInput,
    SendResult,
    StepInput,
    TransitionInput,
)
from journeyman.workflows.journey import JourneyWorkflow
from journeyman.workflows.plan import (
    BranchStep,
    Delivery,
    ExperimentStep,
    Plan,
    SendStep,
    Step,
    UpdateStep,
    WaitStep,
)
from journeyman.workflows.program import bucket
from journeyman.workflows.search_attributes import CUSTOMER_ID, JOURNEY_ID

from . import customers as population
from .customers import Customer, Emission
from .report import Recorder
from .scenario import Reaction, Scenario
from .workflows import ENTER_ACTIVITY, ArrivalInput, ReactionInput, SimulatedReaction


@lru_cache(maxsize=1024)
def _condition(source: str) -> expressions.Expression:
    return expressions.parse(source)


def _scheduled_at() -> datetime:
    # The server's clock when the workflow asked for the activity, skipped time included (for
    # a server activity; inputs that carry the run's own time are preferred).
    return activity.info().scheduled_time


Self = TypeVar("Self", bound="SimulatedActivities")
In = TypeVar("In")
Out = TypeVar("Out")


def _fail_fast(
    method: Callable[[Self, In], Awaitable[Out]],
) -> Callable[[Self, In], Awaitable[Out]]:
    """Turn an unexpected error into a non-retryable failure, and stop the simulation.

    The journey retries activities forever; a bug here would otherwise be retried every
    minute of simulated time until the horizon, which looks like a hang.
    """

    @functools.wraps(method)
    async def failing_fast(self: Self, input: In) -> Out:
        try:
            return await method(self, input)
        except ApplicationError:
            raise
        except Exception as exc:
            self._recorder.fail(f"activity {method.__name__} failed:\n{traceback.format_exc()}")
            raise ApplicationError(f"{exc!r}", non_retryable=True) from exc

    return failing_fast


class SimulatedActivities:
    """Every journey activity against one plan and an in-memory population."""

    def __init__(
        self,
        *,
        client: Client,
        task_queue: str,
        plan: Plan,
        scenario: Scenario,
        seed: int,
        recorder: Recorder,
        settings: CustomerDataSettings | None = None,
    ) -> None:
        self._client = client
        self._task_queue = task_queue
        self.plan = plan
        self._scenario = scenario
        self._seed = seed
        self._recorder = recorder
        # How conditions' ``metrics.*`` are read from the customers' events (customers.yaml).
        self._settings = settings or CustomerDataSettings()
        self.customers: dict[str, Customer] = {}
        self._claimed: set[str] = set()  # send keys, as the ledger's unique key
        self._sent_at: dict[tuple[str, str], list[datetime]] = {}  # (customer, channel)
        self._journey_sends: deque[datetime] = deque()  # for the per-minute throttle
        # Like the ingest's trigger index, only events the plan reacts to reach a run; the rest
        # only enter the customer's history, where conditions count them.
        self._routed = plan.event_names()
        self._assignments: dict[tuple[str, str], tuple[str, datetime]] = {}
        self._decisions: dict[str, str] = {}

    def all(self) -> list[Callable[..., Any]]:
        """The journey's activities, then the simulation's own."""
        return [
            self.load_plan,
            self.record_transition,
            self.send_message,
            self.evaluate_branch,
            self.assign_variant,
            self.update_profile,
            self.resolve_wait,
            self.enter,
        ]

    # --- customers entering ------------------------------------------------------------

    def admit(self, customer_id: str, at: datetime) -> Customer:
        """Create the customer: profile drawn from the population, entry event at ``at``."""
        scenario, seed, plan = self._scenario, self._seed, self.plan
        # A journey entered by API call gets the event the API would send.
        name = plan.entry.match.event if plan.entry.match is not None else API_ENTRY_EVENT
        entry = population.entry_event(scenario, seed, customer_id, name=name, at=at)
        customer = Customer(
            id=customer_id,
            workflow_id=workflow_id_for(plan.journey_id, customer_id),
            traits=population.profile(scenario, seed, customer_id),
            entry=entry,
            settings=self._settings,
        )
        customer.remember(entry.message_id, entry.name, entry.properties, at)
        customer.recall(scenario.history, seed=seed, now=at)
        self.customers[customer_id] = customer
        return customer

    async def start_run(self, customer: Customer) -> None:
        """Start the customer's journey run the way the dispatcher does: signal-with-start."""
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await self._client.start_workflow(
                JourneyWorkflow.run,
                JourneyInput(
                    journey_id=self.plan.journey_id,
                    version=self.plan.version,
                    customer_id=customer.id,
                ),
                id=customer.workflow_id,
                task_queue=self._task_queue,
                start_signal=EVENT_SIGNAL,
                start_signal_args=[customer.entry],
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(JOURNEY_ID, self.plan.journey_id),
                        SearchAttributePair(CUSTOMER_ID, customer.id),
                    ]
                ),
            )

    @activity.defn(name=ENTER_ACTIVITY)
    @_fail_fast
    async def enter(self, input: ArrivalInput) -> None:
        """A customer arriving later than the start (``entry.over`` in the scenario)."""
        customer = self.customers.get(input.customer_id) or self.admit(
            input.customer_id, _scheduled_at()
        )
        await self.start_run(customer)

    # --- reactions -----------------------------------------------------------------------

    async def _react(
        self, customer: Customer, reactions: Sequence[Reaction], trigger: str, now: datetime
    ) -> None:
        emissions = customer.react(reactions, seed=self._seed, trigger=trigger, now=now)
        routed = [e for e in emissions if e.event in self._routed]
        await asyncio.gather(*(self._emit(customer, e, now) for e in routed))

    async def _emit(self, customer: Customer, emission: Emission, now: datetime) -> None:
        event = JourneyEvent(
            message_id=emission.message_id,
            name=emission.event,
            properties=emission.properties,
            occurred_at=now + timedelta(seconds=emission.delay_seconds),
        )
        if emission.delay_seconds == 0:
            handle: WorkflowHandle[Any, Any] = self._client.get_workflow_handle(
                customer.workflow_id
            )
            try:
                await handle.signal(EVENT_SIGNAL, event)
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
            return
        # Started again by a retried activity, the same id finds the first one.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await self._client.start_workflow(
                SimulatedReaction.run,
                ReactionInput(workflow_id=customer.workflow_id, event=event),
                id=emission.message_id,
                task_queue=self._task_queue,
                start_delay=timedelta(seconds=emission.delay_seconds),
            )

    # --- the journey's activities ----------------------------------------------------------

    @activity.defn(name="load_plan")
    @_fail_fast
    async def load_plan(self, input: LoadPlanInput) -> Plan:
        if (input.journey_id, input.version) != (self.plan.journey_id, self.plan.version):
            raise ApplicationError(
                f"the simulation has only {self.plan.journey_id} version {self.plan.version}",
                non_retryable=True,
            )
        return self.plan

    @activity.defn(name="record_transition")
    @_fail_fast
    async def record_transition(self, input: TransitionInput) -> bool:
        # The run's clock: a local activity's scheduled time is the worker's wall clock, which
        # knows nothing of the time the test server skipped.
        at = input.at if input.at is not None else _scheduled_at()
        if input.to_stage is not None:
            reactions = self._scenario.stages.get(input.to_stage, ())
            customer = self.customers[input.customer_id]
            # The transition number makes the trigger unique in the run, even through gotos.
            await self._react(customer, reactions, f"stage/{input.to_stage}/{input.seq}", at)
        return self._recorder.transition(input, at)

    def _step(self, input: StepInput, kind: type[Step]) -> Any:
        step = self.plan.step(input.step_id)
        if not isinstance(step, kind):
            raise ApplicationError(f"step {input.step_id} is not a {kind.__name__}")
        return step

    def _now(self, now: datetime | None) -> datetime:
        return now if now is not None else _scheduled_at()

    @activity.defn(name="evaluate_branch")
    @_fail_fast
    async def evaluate_branch(self, input: StepInput) -> int:
        step: BranchStep = self._step(input, BranchStep)
        context = self.customers[input.customer_id].context(self._now(input.now))
        for index, case in enumerate(step.cases):
            if expressions.evaluate(_condition(case.when), context):
                return index
        return len(step.cases)

    @activity.defn(name="assign_variant")
    @_fail_fast
    async def assign_variant(self, input: StepInput) -> int:
        step: ExperimentStep = self._step(input, ExperimentStep)
        names = [variant.name for variant in step.variants]
        now = self._now(input.now)
        decided = self._decisions.get(step.id)
        if decided is None and step.decide is not None:
            decided = self._decide(step, now)
        if decided is not None and decided in names:
            return names.index(decided)
        key = (step.id, input.customer_id)
        if key not in self._assignments:
            total = sum(variant.weight for variant in step.variants)
            roll = bucket(input.journey_id, step.id, input.customer_id, modulo=total)
            chosen = names[-1]
            for variant in step.variants:
                if roll < variant.weight:
                    chosen = variant.name
                    break
                roll -= variant.weight
            self._assignments[key] = (chosen, now)
        return names.index(self._assignments[key][0])

    def _decide(self, step: ExperimentStep, now: datetime) -> str | None:
        """The winner once the rule allows, from entrants whose metric window has closed."""
        rule = step.decide
        assert rule is not None
        window = timedelta(seconds=step.window_seconds)
        mine = [
            (customer_id, variant, at)
            for (step_id, customer_id), (variant, at) in self._assignments.items()
            if step_id == step.id
        ]
        if not mine:
            return None
        first = min(at for _, _, at in mine)
        if now < first + timedelta(seconds=rule.after_seconds):
            return None
        entrants: dict[str, int] = {}
        converted: dict[str, int] = {}
        for customer_id, variant, at in mine:
            if at > now - window:
                continue
            entrants[variant] = entrants.get(variant, 0) + 1
            events = self.customers[customer_id].history.get(step.metric.event, [])
            if any(
                at <= e.occurred_at <= at + window and matches_properties(step.metric, e.properties)
                for e in events
            ):
                converted[variant] = converted.get(variant, 0) + 1
        found = [VariantResult(name, n, converted.get(name, 0)) for name, n in entrants.items()]
        if any(entrants.get(v.name, 0) < rule.min_per_variant for v in step.variants):
            return None
        winner = pick_winner(found, step.control, rule.confidence)
        self._decisions[step.id] = winner
        return winner

    @activity.defn(name="update_profile")
    @_fail_fast
    async def update_profile(self, input: StepInput) -> None:
        # The same rules as ``storage.profiles.update_traits``.
        step: UpdateStep = self._step(input, UpdateStep)
        traits = self.customers[input.customer_id].traits
        traits.update(step.set)
        for name, amount in step.increment.items():
            value = traits.get(name)
            base = value if isinstance(value, int | float) and not isinstance(value, bool) else 0
            traits[name] = base + amount
        if step.tags:
            existing = traits.get("tags")
            held = [t for t in existing if isinstance(t, str)] if isinstance(existing, list) else []
            traits["tags"] = held + [t for t in step.tags if t not in held]

    @activity.defn(name="resolve_wait")
    @_fail_fast
    async def resolve_wait(self, input: StepInput) -> datetime | None:
        step: WaitStep = self._step(input, WaitStep)
        traits = self.customers[input.customer_id].traits
        return timing.wake_time(step, traits, self.plan.delivery, self._now(input.now))

    @activity.defn(name="send_message")
    @_fail_fast
    async def send_message(self, input: SendInput) -> SendResult:
        """The ledger's decisions in the same order, minus rendering and delivery."""
        step = self.plan.step(input.step_id)
        if not isinstance(step, SendStep):
            raise ApplicationError(f"step {input.step_id} is not a send", non_retryable=True)
        now = self._now(input.now)
        if self._recorder.until is not None and now > self._recorder.until:
            # Past the horizon (the server ran on before the workers stopped): not reported.
            return SendResult(status="skipped", reason="after the horizon")
        customer = self.customers[input.customer_id]
        rules = self.plan.delivery
        if rules.quiet_hours is not None:
            until = timing.quiet_until(customer.traits, rules, now)
            if until is not None and rules.quiet_hours.action == "defer":
                self._recorder.send(step.id, "deferred")
                return SendResult(status="deferred", reason="quiet hours", retry_at=until)
            if until is not None:
                return self._finish(input, "skipped", "quiet hours")
        if rules.throttle_per_minute is not None:
            recent = self._journey_sends
            while recent and recent[0] <= now - timedelta(minutes=1):
                recent.popleft()
            if len(recent) >= rules.throttle_per_minute:
                self._recorder.send(step.id, "deferred")
                retry_at = recent[0] + timedelta(minutes=1)
                return SendResult(status="deferred", reason="throttled", retry_at=retry_at)
        if input.send_key in self._claimed:
            return SendResult(status="duplicate", reason="already recorded")
        capped = self._capped(customer, step.channel, rules, now)
        if capped is not None:
            return self._finish(input, "capped", capped)
        unreachable = _unreachable(step.channel, customer.traits)
        if unreachable is not None:
            return self._finish(input, "skipped", unreachable)
        self._journey_sends.append(now)
        self._sent_at.setdefault((customer.id, step.channel), []).append(now)
        # Step and visit, not the send key: the key holds the run id, which is random.
        visit = input.send_key.rsplit("/", 1)[1]
        reactions = self._scenario.steps.get(step.id, ())
        await self._react(customer, reactions, f"step/{step.id}/{visit}", now)
        self._claimed.add(input.send_key)
        self._recorder.send(step.id, "sent")
        return SendResult(status="sent")

    def _finish(
        self, input: SendInput, status: Literal["skipped", "capped"], reason: str
    ) -> SendResult:
        self._claimed.add(input.send_key)
        self._recorder.send(input.step_id, status)
        return SendResult(status=status, reason=reason)

    def _capped(
        self, customer: Customer, channel: str, rules: Delivery, now: datetime
    ) -> str | None:
        for cap in rules.frequency_caps:
            if cap.channel != channel:
                continue
            since = now - timedelta(seconds=cap.window_seconds)
            sent = sum(1 for at in self._sent_at.get((customer.id, channel), ()) if at > since)
            if sent >= cap.limit:
                return f"frequency cap: {cap.limit} {channel} per {cap.window_seconds}s reached"
        return None


def _unreachable(channel: str, traits: Mapping[str, Any]) -> str | None:
    """Why the channel cannot reach the customer, as the real send path would skip them."""
    if channel == "email":
        address = traits.get("email")
        if not isinstance(address, str) or "@" not in address:
            return "customer has no email address"
    elif channel == "sms" and not isinstance(traits.get(PHONE_TRAIT), str):
        return "customer has no phone number"
    elif channel == "push" and not isinstance(traits.get(PUSH_TOKEN_TRAIT), str):
        return "customer has no push token"
    return None
