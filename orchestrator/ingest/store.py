"""Store accepted messages and route the relevant ones to the outbox, in one transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from journeyman.orchestrator.customers import identity, membership, metrics
from journeyman.orchestrator.customers.events import ENGINE_SOURCE, RUN_ENDED
from journeyman.orchestrator.customers.membership import change_event_fields
from journeyman.orchestrator.customers.settings import CustomerDataSettings
from journeyman.orchestrator.storage.outbox import notify_outbox
from journeyman.orchestrator.storage.satisfaction import SatisfactionTally
from journeyman.workflows.conditions import matches
from journeyman.workflows.inputs import JourneyEvent
from journeyman.workflows.plan import Plan

from . import entry
from .routing import TriggerIndex
from .segment import IncomingEvent


@dataclass(frozen=True)
class IngestResult:
    accepted: int  # new messages stored
    duplicates: int  # messages whose messageId was already stored (accepted, ignored)
    routed: int  # outbox rows written
    merges: int = 0  # customers joined into others by identify or alias


async def _store_event(conn: asyncpg.Connection, event: IncomingEvent) -> int | None:
    event_id: int | None = await conn.fetchval(
        "INSERT INTO events (message_id, type, customer_id, event, properties, traits, context,"
        " occurred_at, user_id, anonymous_id, sent_at, source_id, received_at, group_id,"
        " previous_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,"
        " coalesce($13, now()), $14, $15)"
        " ON CONFLICT (message_id) DO NOTHING RETURNING id",
        event.message_id,
        event.type,
        event.customer_id,
        event.event,
        event.properties,
        event.traits,
        event.context,
        event.occurred_at,
        event.user_id,
        event.anonymous_id,
        event.sent_at,
        event.source_id,
        event.received_at,
        event.group_id,
        event.previous_id,
    )
    if event_id is None:
        return None
    traits, consent = _profile_update(event)
    await conn.execute(
        "INSERT INTO profiles (customer_id, traits, consent) VALUES ($1, $2, $3)"
        " ON CONFLICT (customer_id) DO UPDATE"
        " SET traits = profiles.traits || excluded.traits,"
        " consent = profiles.consent || excluded.consent, updated_at = now()",
        event.customer_id,
        traits,
        consent,
    )
    return event_id


def _profile_update(event: IncomingEvent) -> tuple[dict[str, Any], dict[str, Any]]:
    """Traits and consent an event sets on its customer's profile.

    Only ``identify`` describes the customer (``group`` traits describe their account).
    A ``consent`` trait that maps channels to true/false is the customer's consent per
    channel, kept apart from free-form traits so no template or export mistakes it for one.
    """
    if event.type != "identify":
        return {}, {}
    traits = dict(event.traits)
    consent = traits.pop("consent", None)
    if isinstance(consent, dict) and all(isinstance(v, bool) for v in consent.values()):
        return traits, consent
    if consent is not None:
        traits["consent"] = consent
    return traits, {}


async def _route(
    conn: asyncpg.Connection, event: IncomingEvent, event_id: int, index: TriggerIndex
) -> int:
    assert event.event is not None
    concerned = index.journeys_for(event.event)
    if not concerned:
        return 0  # most traffic: stored, and nothing more to do
    signal = _signal(event)
    routed = 0
    for journey_id in concerned:
        plan = index.active.get(journey_id)  # None: paused, archived, or only older versions
        runs = await entry.customer_runs(conn, journey_id, event.customer_id)
        rows = [
            (run.workflow_id, run.version, False)
            for run in entry.targets(plan, runs, event.properties)
        ]
        if (
            plan is not None
            and plan.entry.match is not None
            and matches(plan.entry.match, event.event, event.properties)
            and entry.may_enter(plan, runs, event.properties, datetime.now(UTC))
            and await entry.under_cap(conn, plan)
        ):
            # The run row exists from this moment, so the customer's next events route to it
            # even before the workflow has started; the run is pinned to today's version.
            workflow_id = await entry.enter(conn, plan, event.customer_id, runs, event.properties)
            if workflow_id is not None:
                rows.append((workflow_id, plan.version, True))
        for workflow_id, version, is_entry in rows:
            await _to_outbox(
                conn,
                event_id=event_id,
                journey_id=journey_id,
                version=version,
                customer_id=event.customer_id,
                workflow_id=workflow_id,
                payload={"entry": is_entry, "event": signal},
            )
            routed += 1
    return routed


def _signal(event: IncomingEvent) -> dict[str, Any]:
    """The event as a run receives it (the signal payload)."""
    assert event.event is not None
    return JourneyEvent(
        message_id=event.message_id,
        name=event.event,
        properties=event.properties,
        occurred_at=event.occurred_at,
    ).model_dump(mode="json")


async def _to_outbox(
    conn: asyncpg.Connection,
    *,
    event_id: int,
    journey_id: str,
    version: str,
    customer_id: str,
    workflow_id: str,
    payload: dict[str, Any],
) -> None:
    await conn.execute(
        "INSERT INTO outbox (event_id, journey_id, version, customer_id, workflow_id, payload)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        event_id,
        journey_id,
        version,
        customer_id,
        workflow_id,
        payload,
    )


async def ingest(
    pool: asyncpg.Pool,
    *,
    events: list[IncomingEvent],
    index: TriggerIndex,
    settings: CustomerDataSettings | None = None,
) -> IngestResult:
    """Commit every new message (and its outbox rows) before returning; duplicates are skipped.

    In the same transaction: identities are joined (``identify``, ``alias``), each
    customer's metrics move on (``settings`` maps events to orders and satisfaction; the
    defaults follow the Segment e-commerce spec), and the segments the messages can change
    are re-evaluated for their customers. Entering or leaving a segment and becoming active
    again are stored as engine events and routed like any other. Satisfaction answers are
    counted for the stage and touchpoint of each of the customer's active runs.
    """
    settings = settings or DEFAULT_SETTINGS
    # Rows are locked in customer order (stable, so each customer's events keep theirs), so
    # concurrent batches touching the same customers rarely wait on each other; a merge
    # joins two customers, so a deadlock remains possible: the whole batch is then retried
    # (nothing of it was committed).
    ordered = sorted(events, key=lambda e: e.customer_id)
    for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await _ingest(conn, ordered, index, settings)
        except asyncpg.DeadlockDetectedError:
            if attempt == DEADLOCK_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


DEADLOCK_ATTEMPTS = 3
DEFAULT_SETTINGS = CustomerDataSettings()


@dataclass
class _Pass:
    """What one ingest transaction has done so far."""

    accepted: int = 0
    duplicates: int = 0
    routed: int = 0
    merges: int = 0
    # canonical customer -> ids of the segments to re-evaluate for them at the end
    touched: dict[str, set[str]] = field(default_factory=dict)
    # satisfaction answers per journey stage and touchpoint, written at the end
    satisfaction: SatisfactionTally = field(default_factory=SatisfactionTally)

    def touch(self, customer_id: str, segment_ids: set[str]) -> None:
        if segment_ids:
            self.touched.setdefault(customer_id, set()).update(segment_ids)


async def _ingest(
    conn: asyncpg.Connection,
    ordered: list[IncomingEvent],
    index: TriggerIndex,
    settings: CustomerDataSettings,
) -> IngestResult:
    done = _Pass()
    for message in ordered:
        event = await _join_identities(conn, message, index, settings, done)
        event_id = await _store_event(conn, event)
        if event_id is None:
            done.duplicates += 1
            continue
        done.accepted += 1
        engine = event.context.get("source") == ENGINE_SOURCE
        if event.type == "track" and not engine:
            # Before routing: an answer that enters the customer into a journey is no answer
            # to that new run, which has not reached a stage yet anyway.
            await done.satisfaction.add(
                conn,
                customer_id=event.customer_id,
                event=event.event,
                properties=event.properties,
                occurred_at=event.occurred_at,
                survey_event=settings.satisfaction.event,
                score_property=settings.satisfaction.score,
            )
        if event.type == "track":
            done.routed += await _route(conn, event, event_id, index)
        change = await metrics.apply_event(
            conn, customer_id=event.customer_id, event=event, settings=settings
        )
        if change is not None:
            done.routed += await _record(conn, change.event(occurred_at=event.occurred_at), index)
        done.touch(
            event.customer_id,
            index.segments.affected_by(kind=event.type, name=event.event, engine=engine),
        )
    await _update_segments(conn, index, done)
    # Last: the shared counter rows stay locked for the shortest time, taken in key order.
    await done.satisfaction.flush(conn)
    if done.routed:
        await notify_outbox(conn)
    return IngestResult(
        accepted=done.accepted, duplicates=done.duplicates, routed=done.routed, merges=done.merges
    )


async def _join_identities(
    conn: asyncpg.Connection,
    event: IncomingEvent,
    index: TriggerIndex,
    settings: CustomerDataSettings,
    done: _Pass,
) -> IncomingEvent:
    """Merge what the message says belongs together; return it for its canonical customer.

    ``identify`` joins an anonymous id to the user id when that anonymous id is still a
    customer of its own (an anonymous id already joined to someone else, as on a shared
    device, is left with them). ``alias`` joins ``previousId`` into ``userId`` whatever it
    is: the caller says outright that the two are one person.
    """
    merged: identity.Merge | None = None
    if (
        event.type == "identify"
        and event.user_id is not None
        and event.anonymous_id is not None
        and event.anonymous_id != event.user_id
        and await identity.canonical(conn, event.anonymous_id) == event.anonymous_id
    ):
        merged = await identity.merge(
            conn,
            from_id=event.anonymous_id,
            into_id=event.user_id,
            reason="identify",
            message_id=event.message_id,
        )
    elif event.type == "alias" and event.previous_id and event.previous_id != event.customer_id:
        merged = await identity.merge(
            conn,
            from_id=event.previous_id,
            into_id=event.customer_id,
            reason="alias",
            message_id=event.message_id,
        )
    if merged is not None:
        done.merges += 1
        change = await metrics.merge(
            conn, from_id=merged.from_id, into_id=merged.into_id, settings=settings
        )
        if change is not None:
            done.routed += await _record(conn, change.event(occurred_at=event.occurred_at), index)
        done.routed += await end_runs(
            conn, customer_id=merged.into_id, runs=merged.runs.ended, reason="merged"
        )
        # The joined side's memberships are gone; the merged customer's may have changed.
        done.touched.pop(merged.from_id, None)
        done.touch(merged.into_id, index.segments.every_id())
    customer_id = await identity.canonical(conn, event.customer_id)
    if customer_id != event.customer_id:
        event = event.model_copy(update={"customer_id": customer_id})
    return event


async def _record(conn: asyncpg.Connection, event: IncomingEvent, index: TriggerIndex) -> int:
    """Store an engine event and route it; an id seen before (a rerun) is skipped."""
    event_id = await _store_event(conn, event)
    if event_id is None or event.type != "track":
        return 0
    return await _route(conn, event, event_id, index)


async def end_runs(
    conn: asyncpg.Connection,
    *,
    customer_id: str,
    runs: list[tuple[str, str, str]],
    reason: str,
) -> int:
    """End journey runs (workflow id, journey, version) through the outbox, counted as exits.

    The engine's run-ended event is stored once and routed to each run, so the run leaves
    by its own transition (KPIs stay right) as soon as the dispatcher delivers it.
    """
    if not runs:
        return 0
    ended = IncomingEvent(
        message_id=f"run-ended:{uuid.uuid4()}",
        type="track",
        customer_id=customer_id,
        event=RUN_ENDED,
        properties={"reason": reason},
        traits={},
        context={"source": ENGINE_SOURCE},
        occurred_at=datetime.now(UTC),
    )
    event_id = await _store_event(conn, ended)
    assert event_id is not None  # a fresh message id
    signal = _signal(ended)
    for workflow_id, journey_id, version in runs:
        await _to_outbox(
            conn,
            event_id=event_id,
            journey_id=journey_id,
            version=version,
            customer_id=customer_id,
            workflow_id=workflow_id,
            payload={"entry": False, "event": signal},
        )
    return len(runs)


async def _update_segments(conn: asyncpg.Connection, index: TriggerIndex, done: _Pass) -> None:
    """Re-evaluate the touched customers' segments; store and route who entered and left."""
    if done.touched and len(index.segments):
        done.routed += await refresh_memberships(
            conn, index=index, customers=done.touched, now=datetime.now(UTC)
        )


async def refresh_memberships(
    conn: asyncpg.Connection,
    *,
    index: TriggerIndex,
    customers: dict[str, set[str]],
    now: datetime,
    silent: bool = False,
) -> int:
    """Re-evaluate segments (customer -> segment ids) inside the caller's transaction.

    Each change is stored as the engine event ``Segment Entered`` or ``Segment Exited`` and
    routed like a tracked event; returns the outbox rows written. ``silent`` records the
    memberships only: filling a newly deployed segment must not look like a crowd of
    customers entering it at once.
    """
    routed = 0
    for customer_id in sorted(customers):
        segments = index.segments.pick(customers[customer_id])
        for change in await membership.reevaluate(
            conn, customer_id=customer_id, segments=segments, now=now
        ):
            if silent:
                continue
            event = IncomingEvent(**change_event_fields(change), occurred_at=now)
            routed += await _record(conn, event, index)
    return routed


# The event an API entry is stored as: the run's entry event, with the caller's properties.
API_ENTRY_EVENT = "Journey Entry Requested"


@dataclass(frozen=True)
class Admission:
    entered: bool
    workflow_id: str | None
    reason: str | None = None


async def admit(
    pool: asyncpg.Pool,
    *,
    plan: Plan,
    customer_id: str,
    properties: dict[str, Any],
    message_id: str,
) -> Admission:
    """Enter a customer by API call, under the journey's re-entry policy and caps.

    The request is stored as an event (its message id dedupes retries) with its outbox row in
    the same transaction, like any other entry, so nothing accepted is lost.
    """
    async with pool.acquire() as conn, conn.transaction():
        customer_id = await identity.canonical(conn, customer_id)
        event = IncomingEvent(
            message_id=message_id,
            type="track",
            customer_id=customer_id,
            event=API_ENTRY_EVENT,
            properties=properties,
            traits={},
            context={"journey_id": plan.journey_id},
            occurred_at=datetime.now(UTC),
        )
        event_id = await _store_event(conn, event)
        runs = await entry.customer_runs(conn, plan.journey_id, customer_id)
        if event_id is None:
            return Admission(False, None, "duplicate message id: this request was already made")
        if not entry.may_enter(plan, runs, properties, datetime.now(UTC)):
            return Admission(False, None, f"re-entry policy '{plan.entry.reentry.mode}' says no")
        if not await entry.under_cap(conn, plan):
            return Admission(False, None, "the journey's entry cap is reached")
        workflow_id = await entry.enter(conn, plan, customer_id, runs, properties)
        if workflow_id is None:
            return Admission(False, None, "a concurrent request entered this customer first")
        await _to_outbox(
            conn,
            event_id=event_id,
            journey_id=plan.journey_id,
            version=plan.version,
            customer_id=customer_id,
            workflow_id=workflow_id,
            payload={"entry": True, "event": _signal(event)},
        )
        await notify_outbox(conn)
    return Admission(True, workflow_id)
