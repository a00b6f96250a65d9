"""Store accepted messages and route the relevant ones to the outbox, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from journeyman.orchestrator.storage.outbox import notify_outbox
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


async def _store_event(conn: asyncpg.Connection, event: IncomingEvent) -> int | None:
    event_id: int | None = await conn.fetchval(
        "INSERT INTO events (message_id, type, customer_id, event, properties, traits, context,"
        " occurred_at, user_id, anonymous_id, sent_at, source_id, received_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, coalesce($13, now()))"
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
    )
    if event_id is None:
        return None
    await conn.execute(
        "INSERT INTO profiles (customer_id, traits) VALUES ($1, $2)"
        " ON CONFLICT (customer_id) DO UPDATE"
        " SET traits = profiles.traits || excluded.traits, updated_at = now()",
        event.customer_id,
        event.traits,
    )
    return event_id


async def _route(
    conn: asyncpg.Connection, event: IncomingEvent, event_id: int, index: TriggerIndex
) -> int:
    assert event.event is not None
    concerned = index.journeys_for(event.event)
    if not concerned:
        return 0  # most traffic: stored, and nothing more to do
    signal = JourneyEvent(
        message_id=event.message_id,
        name=event.event,
        properties=event.properties,
        occurred_at=event.occurred_at,
    ).model_dump(mode="json")
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
            await conn.execute(
                "INSERT INTO outbox"
                " (event_id, journey_id, version, customer_id, workflow_id, payload)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                event_id,
                journey_id,
                version,
                event.customer_id,
                workflow_id,
                {"entry": is_entry, "event": signal},
            )
            routed += 1
    return routed


async def ingest(
    pool: asyncpg.Pool, *, events: list[IncomingEvent], index: TriggerIndex
) -> IngestResult:
    """Commit every new message (and its outbox rows) before returning; duplicates are skipped."""
    accepted = duplicates = routed = 0
    # Rows are locked in customer order (stable, so each customer's events keep theirs), so
    # concurrent batches touching the same customers cannot deadlock on profiles and runs.
    ordered = sorted(events, key=lambda e: e.customer_id)
    async with pool.acquire() as conn, conn.transaction():
        for event in ordered:
            event_id = await _store_event(conn, event)
            if event_id is None:
                duplicates += 1
                continue
            accepted += 1
            if event.type == "track":
                routed += await _route(conn, event, event_id, index)
        if routed:
            await notify_outbox(conn)
    return IngestResult(accepted=accepted, duplicates=duplicates, routed=routed)


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
    async with pool.acquire() as conn, conn.transaction():
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
        signal = JourneyEvent(
            message_id=message_id,
            name=API_ENTRY_EVENT,
            properties=properties,
            occurred_at=event.occurred_at,
        ).model_dump(mode="json")
        await conn.execute(
            "INSERT INTO outbox (event_id, journey_id, version, customer_id, workflow_id, payload)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            event_id,
            plan.journey_id,
            plan.version,
            customer_id,
            workflow_id,
            {"entry": True, "event": signal},
        )
        await notify_outbox(conn)
    return Admission(True, workflow_id)
