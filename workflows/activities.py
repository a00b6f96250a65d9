"""The journey workflow's activities, as methods of a class built with its dependencies.

Sends go through the delivery ledger: the row is claimed before the provider is called, so a
retried or replayed send never delivers twice (invariant 3). A bad profile or template fails
that one send, visibly in the ledger, and the customer continues.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar

import asyncpg
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from journeyman.channels import (
    EmailProvider,
    PermanentDeliveryError,
    Renderer,
    RenderError,
    RetryableDeliveryError,
)
from journeyman.channels.render import template_context
from journeyman.orchestrator.customers import identity
from journeyman.orchestrator.customers import metrics as customer_metrics
from journeyman.orchestrator.observability import worker_metrics
from journeyman.orchestrator.storage import (
    behaviour,
    delivery_rules,
    delivery_states,
    experiments,
    journeys,
    ledger,
    profiles,
    runs,
)
from journeyman.orchestrator.tracking import consent
from journeyman.orchestrator.tracking.config import TrackingConfig
from journeyman.orchestrator.tracking.consent import (
    DEFAULT_GROUPS,
    SubscriptionGroups,
    UnknownGroupError,
)

from . import expressions, timing
from .compose import Outbound, Skip, compose
from .conditions import matches_properties
from .inputs import LoadPlanInput, SendInput, SendResult, StepInput, TransitionInput
from .links import unsubscribe_link, with_links
from .plan import (
    BranchStep,
    Channel,
    Delivery,
    ExperimentStep,
    Plan,
    SendStep,
    Step,
    UpdateStep,
    WaitStep,
)
from .program import bucket
from .providers import IDEMPOTENT_CHANNELS, ChannelProviders

_Input = TypeVar("_Input", StepInput, SendInput)

log = logging.getLogger(__name__)

PLAN_CACHE_SIZE = 256
# A paused journey's sends are tried again this often until it is resumed.
PAUSED_RETRY = timedelta(minutes=1)
# A send its provider keeps refusing (429, 5xx, unreachable) fails after this long: a message
# a day late is rarely still the right one, and the customer moves on.
SEND_GIVE_UP = timedelta(hours=24)
# How often a send tells Temporal it is alive (its heartbeat timeout is 20 s).
HEARTBEAT_EVERY = 5.0


@lru_cache(maxsize=1024)
def _condition(source: str) -> expressions.Expression:
    # Conditions were checked when the plan compiled; parsing again is only for the tree.
    return expressions.parse(source)


def _clock(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def _retrying_for() -> timedelta | None:
    """How long this activity has been retried: from its first attempt's scheduling to this
    attempt's, on Temporal's clock (which a time-skipping test server moves)."""
    if not activity.in_activity():
        return None
    info = activity.info()
    return info.current_attempt_scheduled_time - info.scheduled_time


def _duration(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


@contextlib.asynccontextmanager
async def _heartbeating(every: float = HEARTBEAT_EVERY) -> AsyncIterator[None]:
    """Heartbeat while the body runs, so a worker that dies mid-send is noticed within the
    heartbeat timeout rather than the send's much longer start-to-close timeout."""
    if not activity.in_activity():
        yield
        return

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every)

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        beating.cancel()


class JourneyActivities:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        email: EmailProvider | None,
        from_address: str,
        renderer: Renderer | None = None,
        providers: ChannelProviders | None = None,
        links: TrackingConfig | None = None,
        groups: SubscriptionGroups | None = None,
        give_up_after: timedelta = SEND_GIVE_UP,
    ) -> None:
        self._pool = pool
        self._give_up_after = give_up_after
        # ``email`` is the email provider; ``providers`` adds the other channels.
        self._providers = replace(providers or ChannelProviders(), email=email)
        self._from = from_address
        # Signed tracking and unsubscribe links, and the subscription groups consent is kept
        # in; without a link secret, messages carry no tracked links or unsubscribe headers.
        self._links = links
        self._groups = groups or (links.groups if links is not None else DEFAULT_GROUPS)
        self._renderer = renderer or Renderer()
        # Plans are immutable per version, so caching them can never serve a stale one.
        self._plans: OrderedDict[tuple[str, str], Plan] = OrderedDict()

    def all(self) -> list[Callable[..., Any]]:
        """Every activity, for the worker to register."""
        return [
            self.load_plan,
            self.record_transition,
            self.send_message,
            self.evaluate_branch,
            self.assign_variant,
            self.update_profile,
            self.resolve_wait,
        ]

    async def _plan(self, journey_id: str, version: str) -> Plan:
        key = (journey_id, version)
        plan = self._plans.get(key)
        if plan is None:
            plan = await journeys.load_plan(self._pool, journey_id=journey_id, version=version)
            self._plans[key] = plan
            if len(self._plans) > PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return plan

    @activity.defn(name="load_plan")
    async def load_plan(self, input: LoadPlanInput) -> Plan:
        return await self._plan(input.journey_id, input.version)

    @activity.defn(name="record_transition")
    async def record_transition(self, input: TransitionInput) -> bool:
        async with self._pool.acquire() as conn:
            recorded = await runs.record_transition(conn, **input.model_dump())
        if recorded:  # a retry of a recorded transition is not counted twice
            worker_metrics.count_transition(
                activity.metric_meter(), journey_id=input.journey_id, outcome=input.outcome
            )
        return recorded

    async def _as_merged(self, input: _Input) -> _Input:
        """The input for the customer its id stands for now.

        A run keeps the customer id it started with; when identify or alias joined that id
        to another customer, the profile, history and caps to use are the merged customer's.
        """
        customer_id = await identity.canonical(self._pool, input.customer_id)
        if customer_id == input.customer_id:
            return input
        return input.model_copy(update={"customer_id": customer_id})

    async def _step(self, input: StepInput, kind: type[Step]) -> tuple[Plan, Any]:
        plan = await self._plan(input.journey_id, input.version)
        step = plan.step(input.step_id)
        if not isinstance(step, kind):
            raise ValueError(f"step {input.step_id} is not a {kind.__name__}")
        return plan, step

    @activity.defn(name="evaluate_branch")
    async def evaluate_branch(self, input: StepInput) -> int:
        """The index of the first case whose condition holds, or ``len(cases)`` (otherwise)."""
        input = await self._as_merged(input)
        _, step = await self._step(input, BranchStep)
        assert isinstance(step, BranchStep)
        trees = [_condition(case.when) for case in step.cases]
        needs = expressions.merge_needs([expressions.needs(tree) for tree in trees])
        event = input.entry_event.properties if input.entry_event else {}
        async with self._pool.acquire() as conn:
            context = await behaviour.load_context(
                conn, customer_id=input.customer_id, needs=needs, event=event, now=_clock(input.now)
            )
        for index, tree in enumerate(trees):
            if expressions.evaluate(tree, context):
                return index
        return len(step.cases)

    @activity.defn(name="assign_variant")
    async def assign_variant(self, input: StepInput) -> int:
        """The experiment variant for this customer: the winner once decided, else by weight."""
        input = await self._as_merged(input)
        _, step = await self._step(input, ExperimentStep)
        assert isinstance(step, ExperimentStep)
        names = [variant.name for variant in step.variants]
        now = _clock(input.now)
        async with self._pool.acquire() as conn:
            decided = await experiments.winner(conn, journey_id=input.journey_id, step_id=step.id)
            if decided is None and step.decide is not None:
                decided = await self._decide(conn, input.journey_id, step, now)
            if decided is not None and decided in names:
                return names.index(decided)
            total = sum(variant.weight for variant in step.variants)
            roll = bucket(input.journey_id, step.id, input.customer_id, modulo=total)
            chosen = names[-1]
            for variant in step.variants:
                if roll < variant.weight:
                    chosen = variant.name
                    break
                roll -= variant.weight
            chosen = await experiments.assign(
                conn,
                journey_id=input.journey_id,
                step_id=step.id,
                customer_id=input.customer_id,
                variant=chosen,
                at=now,
            )
        return names.index(chosen) if chosen in names else 0

    async def _decide(
        self, conn: asyncpg.Connection, journey_id: str, step: ExperimentStep, now: datetime
    ) -> str | None:
        rule = step.decide
        assert rule is not None
        found, first = await experiments.results(
            conn,
            journey_id=journey_id,
            step_id=step.id,
            metric_event=step.metric.event,
            window=timedelta(seconds=step.window_seconds),
            now=now,
            accept=lambda properties: matches_properties(step.metric, properties),
        )
        if first is None or now < first + timedelta(seconds=rule.after_seconds):
            return None
        by_name = {result.name: result for result in found}
        if any(
            by_name.get(v.name) is None or by_name[v.name].entrants < rule.min_per_variant
            for v in step.variants
        ):
            return None
        best = experiments.pick_winner(found, step.control, rule.confidence)
        return await experiments.decide(
            conn, journey_id=journey_id, step_id=step.id, winner_name=best, found=found
        )

    @activity.defn(name="update_profile")
    async def update_profile(self, input: StepInput) -> None:
        input = await self._as_merged(input)
        _, step = await self._step(input, UpdateStep)
        assert isinstance(step, UpdateStep)
        async with self._pool.acquire() as conn:
            await profiles.update_traits(
                conn,
                customer_id=input.customer_id,
                set_traits=step.set,
                increment=step.increment,
                tags=step.tags,
            )

    @activity.defn(name="resolve_wait")
    async def resolve_wait(self, input: StepInput) -> datetime | None:
        """When a timed wait ends, in UTC; None when the profile has no usable date."""
        input = await self._as_merged(input)
        plan, step = await self._step(input, WaitStep)
        assert isinstance(step, WaitStep)
        traits = await profiles.traits(self._pool, input.customer_id)
        return timing.wake_time(step, traits, plan.delivery, _clock(input.now))

    @activity.defn(name="send_message")
    async def send_message(self, input: SendInput) -> SendResult:
        async with _heartbeating():
            result = await self._send(input)
        # The plan is cached by now: this costs no query.
        step = (await self._plan(input.journey_id, input.version)).step(input.step_id)
        if isinstance(step, SendStep):
            worker_metrics.count_send(
                activity.metric_meter(), channel=step.channel, state=result.status
            )
        return result

    async def _send(self, input: SendInput) -> SendResult:
        input = await self._as_merged(input)
        plan = await self._plan(input.journey_id, input.version)
        step = plan.step(input.step_id)
        if not isinstance(step, SendStep):
            raise ValueError(f"step {input.step_id} is not a send")
        now = _clock(input.now)
        status = await journeys.journey_status(self._pool, input.journey_id)
        if status == "archived":
            return SendResult(status="archived", reason="the journey is archived")
        if status == "paused":
            return SendResult(status="deferred", reason="paused", retry_at=now + PAUSED_RETRY)
        rules = plan.delivery
        if rules.quiet_hours is not None:
            traits = await profiles.traits(self._pool, input.customer_id)
            until = timing.quiet_until(traits, rules, now)
            if until is not None and rules.quiet_hours.action == "defer":
                return SendResult(status="deferred", reason="quiet hours", retry_at=until)
            if until is not None:
                return await self._record_only(input, step, "skipped", "quiet hours")
        try:
            group = self._group_of(step)
        except UnknownGroupError as exc:
            return await self._record_only(input, step, "failed", str(exc))
        async with self._pool.acquire() as conn:
            decision = await consent.may_send(
                conn,
                customer_id=input.customer_id,
                channel=step.channel,
                group=group,
                groups=self._groups,
            )
        if not decision.allowed:
            assert decision.rule is not None
            return await self._record_only(input, step, "suppressed", decision.rule)
        async with self._pool.acquire() as conn, conn.transaction():
            if rules.throttle_per_minute is not None:
                await delivery_rules.lock_journey(conn, input.journey_id)
                sent, first = await delivery_rules.journey_sends_since(
                    conn,
                    journey_id=input.journey_id,
                    since=now - timedelta(minutes=1),
                )
                if sent >= rules.throttle_per_minute and first is not None:
                    retry_at = first + timedelta(minutes=1)
                    return SendResult(status="deferred", reason="throttled", retry_at=retry_at)
            capped = await self._capped(conn, input.customer_id, step.channel, rules, now)
            claim = await ledger.claim_send(
                conn,
                send_key=input.send_key,
                journey_id=input.journey_id,
                version=input.version,
                customer_id=input.customer_id,
                step_id=input.step_id,
                channel=step.channel,
                at=now,
            )
            if claim.fresh and capped is not None:
                await ledger.finish_send(
                    conn, send_key=input.send_key, status="capped", reason=capped
                )
                return SendResult(status="capped", reason=capped)
        idempotent = step.channel in IDEMPOTENT_CHANNELS
        if not claim.claimed:
            if claim.status != "sending":
                return SendResult(status="duplicate", reason=f"already {claim.status}")
            if not idempotent:
                # An earlier attempt died while the provider had the message, and this
                # provider takes no idempotency key: sending again could deliver twice.
                await self._finish(input, "unknown", "an earlier attempt may have been delivered")
                return SendResult(status="unknown", reason="earlier attempt interrupted")
            # The provider dedupes by the send's idempotency key: try again.
        try:
            outbound = await self._compose(input, plan, step, group)
        except _Skip as skip:
            await self._finish(input, skip.status, skip.reason)
            return SendResult(status=skip.status, reason=skip.reason)
        except BaseException:
            await ledger.release_send(self._pool, send_key=input.send_key, attempt=claim.attempts)
            raise
        # Committed before the provider call: an attempt that dies from here on may have
        # delivered; one that died before it surely did not, and its claim is taken over.
        if not await ledger.hand_over(self._pool, send_key=input.send_key, attempt=claim.attempts):
            return SendResult(status="duplicate", reason="a later attempt took the send over")
        # Shielded: once the message is handed to the provider, a cancelled or shut-down
        # activity still waits for the answer and records it, so the ledger stays truthful.
        return await asyncio.shield(
            self._deliver(
                input,
                outbound,
                idempotent=idempotent,
                channel=step.channel,
                attempt=claim.attempts,
            )
        )

    async def _capped(
        self,
        conn: asyncpg.Connection,
        customer_id: str,
        channel: str,
        rules: Delivery,
        now: datetime,
    ) -> str | None:
        """Why the customer may not get another message on ``channel`` now, if they may not."""
        caps = [cap for cap in rules.frequency_caps if cap.channel == channel]
        if not caps:
            return None
        # Locked per customer so two journeys sending at once cannot both slip under the cap.
        await delivery_rules.lock_customer(conn, customer_id)
        for cap in caps:
            since = now - timedelta(seconds=cap.window_seconds)
            sent = await delivery_rules.customer_sends_since(
                conn, customer_id=customer_id, channel=channel, since=since
            )
            if sent >= cap.limit:
                return f"frequency cap: {cap.limit} {channel} per {cap.window_seconds}s reached"
        return None

    async def _record_only(
        self, input: SendInput, step: SendStep, status: ledger.FinalStatus, reason: str
    ) -> SendResult:
        claim = await ledger.claim_send(
            self._pool,
            send_key=input.send_key,
            journey_id=input.journey_id,
            version=input.version,
            customer_id=input.customer_id,
            step_id=input.step_id,
            channel=step.channel,
            at=_clock(input.now),
        )
        if not claim.claimed:
            return SendResult(status="duplicate", reason=f"already {claim.status}")
        await self._finish(input, status, reason)
        assert status in ("skipped", "capped", "suppressed", "failed")
        return SendResult(status=status, reason=reason)

    def _group_of(self, step: SendStep) -> str | None:
        """The subscription group key consent is checked in; None for transactional sends
        and for channels with no groups configured (channel-wide rules still apply)."""
        if step.group == "transactional":
            return None
        if not any(group.channel == step.channel for group in self._groups):
            return None
        return self._groups.get(step.group, channel=step.channel).key

    async def _compose(
        self, input: SendInput, plan: Plan, step: SendStep, group: str | None
    ) -> Outbound:
        traits: dict[str, Any] = (
            await self._pool.fetchval(
                "SELECT traits FROM profiles WHERE customer_id = $1", input.customer_id
            )
            or {}
        )
        entry = input.entry_event
        async with self._pool.acquire() as conn:
            found = await customer_metrics.load(conn, input.customer_id)
        context = template_context(
            profile=traits,
            metrics=customer_metrics.condition_values(found),
            event_name=entry.name if entry else None,
            event_properties=entry.properties if entry else None,
            journey={
                "id": plan.journey_id,
                "name": plan.name,
                "stage": input.stage,
                "step": step.id,
            },
            customer_id=input.customer_id,
        )
        context["unsubscribe_url"] = unsubscribe_link(
            self._links, send_key=input.send_key, customer_id=input.customer_id, group=group
        )
        if not self._providers.configured(step.channel):
            raise _Skip("failed", f"no {step.channel} provider is configured")
        try:
            composed = compose(
                step,
                send_key=input.send_key,
                customer_id=input.customer_id,
                traits=traits,
                context=context,
                renderer=self._renderer,
                from_address=self._from,
            )
            return with_links(
                composed,
                self._links,
                send_key=input.send_key,
                customer_id=input.customer_id,
                group=group,
            )
        except Skip as skip:
            raise _Skip("skipped", skip.reason) from None
        except RenderError as exc:
            raise _Skip("failed", f"template: {exc}") from None
        except ValidationError as exc:
            # A rendered value the channel cannot carry (a header with a line break, a URL
            # that is not http): the same on every retry, so a visible failure.
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise _Skip("failed", f"rendered {where}: {problem['msg']}") from None

    async def _deliver(
        self,
        input: SendInput,
        outbound: Outbound,
        *,
        idempotent: bool,
        channel: Channel,
        attempt: int,
    ) -> SendResult:
        provider = getattr(getattr(self._providers, channel), "name", channel)
        try:
            with worker_metrics.provider_request(
                activity.metric_meter(), channel=channel, provider=str(provider)
            ):
                receipt = await self._providers.deliver(outbound.message)
        except RetryableDeliveryError as exc:
            if exc.maybe_delivered and not idempotent:
                await self._finish(input, "unknown", str(exc), outbound)
                return SendResult(status="unknown", reason=str(exc))
            if (waited := _retrying_for()) is not None and waited >= self._give_up_after:
                # A provider that refuses for this long (a 429 that never ends, an outage)
                # would keep the customer waiting for ever: the send fails, visibly.
                reason = f"gave up after retrying for {_duration(waited)}: {exc}"
                await self._finish(input, "failed", reason, outbound)
                return SendResult(status="failed", reason=reason)
            # Not taken (or taken under a key the provider dedupes by): give the claim back
            # and let Temporal retry, after the provider's Retry-After when it gave one.
            await ledger.release_send(self._pool, send_key=input.send_key, attempt=attempt)
            if exc.retry_after is not None:
                raise ApplicationError(
                    str(exc),
                    type="ProviderBusy",
                    next_retry_delay=timedelta(seconds=exc.retry_after),
                ) from exc
            raise
        except PermanentDeliveryError as exc:
            await self._finish(input, "failed", str(exc), outbound)
            return SendResult(status="failed", reason=str(exc))
        await self._finish(input, "sent", None, outbound, receipt.provider_message_id)
        log.debug(
            "sent %s step %s to customer %s", input.journey_id, input.step_id, input.customer_id
        )
        return SendResult(status="sent")

    async def _finish(
        self,
        input: SendInput,
        status: ledger.FinalStatus,
        reason: str | None,
        outbound: Outbound | None = None,
        provider_message_id: str | None = None,
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await ledger.finish_send(
                conn,
                send_key=input.send_key,
                status=status,
                reason=reason,
                recipient=outbound.recipient if outbound else None,
                subject=outbound.summary if outbound else None,
                provider_message_id=provider_message_id,
            )
            if provider_message_id is not None:
                # A provider may report on the message (Twilio's status callback) before its
                # API answer reached the ledger: those reports wait for this id.
                await delivery_states.attach_waiting_events(
                    conn, send_key=input.send_key, provider_message_id=provider_message_id
                )


class _Skip(Exception):
    def __init__(self, status: ledger.FinalStatus, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason
