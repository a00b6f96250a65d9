"""Store accepted messages and route the relevant ones to the outbox, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from journeyman.orchestrator.storage.outbox import notify_outbox
from journeyman.workflows.conditions import matches
from journeyman.workflows.inputs import JourneyEvent

from .routing import TriggerIndex
from .segment import IncomingEvent


@dataclass(frozen=True)
class IngestResult:
    accepted: int  # new messages stored
    duplicates: int  # messages whose messageId was already stored (accepted, ignored)
    routed: int  # outbox rows written


def workflow_id_for(journey_id: str, customer_id: str) -> str:
    """One run per customer per journey: the id Temporal dedupes starts on."""
    return f"journey/{journey_id}/{customer_id}"


async def _store_event(conn: asyncpg.Connection, event: IncomingEvent) -> int | None:
    event_id: int | None = await conn.fetchval(
        "INSERT INTO events"
        " (message_id, type, customer_id, event, properties, traits, context, occurred_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (message_id) DO NOTHING RETURNING id",
        event.message_id,
        event.type,
        event.customer_id,
        event.event,
        event.properties,
        event.traits,
        event.context,
        event.occurred_at,
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
    routed = 0
    concerned = index.journeys_for(event.event)
    if not concerned:
        return 0  # most traffic: stored, and nothing more to do
    signal = JourneyEvent(
        message_id=event.message_id,
        name=event.event,
        properties=event.properties,
        occurred_at=event.occurred_at,
    ).model_dump(mode="json")
    for journey_id in concerned:
        workflow_id = workflow_id_for(journey_id, event.customer_id)
        run = await conn.fetchrow(
            "SELECT version, status FROM journey_runs WHERE journey_id = $1 AND customer_id = $2",
            journey_id,
            event.customer_id,
        )
        if run is None:
            plan = index.active.get(journey_id)
            entry_match = plan.entry.match if plan is not None else None
            if (
                plan is None
                or entry_match is None
                or not matches(entry_match, event.event, event.properties)
            ):
                continue
            # The run row exists from this moment, so the customer's next events route to it
            # even before the workflow has started; the run is pinned to today's version.
            inserted = await conn.fetchval(
                "INSERT INTO journey_runs (journey_id, customer_id, version, workflow_id)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING version",
                journey_id,
                event.customer_id,
                plan.version,
                workflow_id,
            )
            if inserted is None:
                continue  # a concurrent request entered this customer first; it signals the run
            version, entry = plan.version, True
        elif run["status"] in ("entering", "active"):
            version, entry = run["version"], False
        else:
            continue  # finished runs; re-entry policies come with the full journey language
        await conn.execute(
            "INSERT INTO outbox (event_id, journey_id, version, customer_id, workflow_id, payload)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            event_id,
            journey_id,
            version,
            event.customer_id,
            workflow_id,
            {"entry": entry, "event": signal},
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
