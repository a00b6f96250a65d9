"""Storing a run of messages in a handful of statements, with everything that follows from them.

A chunk is the messages of a transaction between two identity merges (``store`` cuts the
batch there). For the whole chunk at once: the events are inserted (duplicates skipped, each
for the customer its id stands for now), the customers' metrics are read under lock and
moved on (``metrics.fold_events``), the recency changes are recorded as engine events, the
runs the events concern are read and the events routed (``journey_routing``), and then
profiles, metrics, new runs and outbox rows are written in one statement
(``writes.write``). Each customer's messages keep their order: every step applies them in
the order they came, as storing them one at a time would; only the writes are gathered.

Statements for a chunk of track messages: insert the events, lock the metrics, read the
runs (when a journey cares about one of the events), write the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import asyncpg

from journeyman.orchestrator.customers import metrics
from journeyman.orchestrator.customers.events import ENGINE_SOURCE
from journeyman.orchestrator.customers.settings import CustomerDataSettings
from journeyman.orchestrator.storage.satisfaction import SatisfactionTally

from .journey_routing import EntryCaps, Router
from .routing import TriggerIndex
from .segment import IncomingEvent
from .writes import Writes, insert_events, write


@dataclass
class Transaction:
    """What one ingest transaction has done so far."""

    index: TriggerIndex
    settings: CustomerDataSettings
    # "skip" on the last attempt: an entry that lost a race is dropped (``writes.write``).
    conflicts: Literal["raise", "skip"] = "raise"
    accepted: int = 0
    duplicates: int = 0
    routed: int = 0
    merges: int = 0
    # Message ids stored (or found stored) by this transaction: a repeat is a duplicate
    # without asking Postgres.
    seen: set[str] = field(default_factory=set)
    # canonical customer -> ids of the segments to re-evaluate for them at the end
    touched: dict[str, set[str]] = field(default_factory=dict)
    # satisfaction answers per journey stage and touchpoint, written at the end
    satisfaction: SatisfactionTally = field(default_factory=SatisfactionTally)
    caps: EntryCaps = field(default_factory=EntryCaps)

    def touch(self, customer_id: str, segment_ids: set[str]) -> None:
        if segment_ids:
            self.touched.setdefault(customer_id, set()).update(segment_ids)


# What any message but ``identify`` sets on a profile: shared, so never changed (a plain dict
# all the same, as the rows written are JSON).
_NOTHING: Final[Mapping[str, Any]] = {}


def profile_update(event: IncomingEvent) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """Traits and consent an event sets on its customer's profile.

    Only ``identify`` describes the customer (``group`` traits describe their account).
    A ``consent`` trait that maps channels to true/false is the customer's consent per
    channel, kept apart from free-form traits so no template or export mistakes it for one.
    """
    if event.type != "identify":
        return _NOTHING, _NOTHING
    traits = dict(event.traits)
    consent = traits.pop("consent", None)
    if isinstance(consent, dict) and all(isinstance(v, bool) for v in consent.values()):
        return traits, consent
    if consent is not None:
        traits["consent"] = consent
    return traits, {}


async def _insert(
    conn: asyncpg.Connection, events: Sequence[IncomingEvent], tx: Transaction, writes: Writes
) -> list[tuple[IncomingEvent, int]]:
    """Insert the events not seen yet by this transaction and note their profile updates;
    (event, event id) of those stored now (the others are duplicates)."""
    fresh: list[IncomingEvent] = []
    for event in events:
        if event.message_id not in tx.seen:
            tx.seen.add(event.message_id)
            fresh.append(event)
    stored = await insert_events(conn, fresh)
    for event, _ in stored:
        writes.profile(event.customer_id, *profile_update(event))
    return stored


async def store_messages(
    conn: asyncpg.Connection, events: Sequence[IncomingEvent], tx: Transaction
) -> None:
    """Store a chunk of accepted messages and everything that follows from them.

    Satisfaction answers are counted, metrics move on (a recency change is recorded and
    routed right after the event that made it), events are routed, and the segments each
    message can change are marked for re-evaluation at the end of the transaction.
    """
    if not events:
        return
    writes = Writes()
    stored = await _insert(conn, events, tx, writes)
    tx.accepted += len(stored)
    tx.duplicates += len(events) - len(stored)
    if not stored:
        return
    settings = tx.settings
    for event, _ in stored:
        if event.type == "track" and event.context.get("source") != ENGINE_SOURCE:
            # Before routing: an answer that enters the customer into a journey is no answer
            # to that new run, which has not reached a stage yet anyway (entered runs are
            # not active yet, so nothing routed in this chunk changes what is counted).
            await tx.satisfaction.add(
                conn,
                customer_id=event.customer_id,
                event=event.event,
                properties=event.properties,
                occurred_at=event.occurred_at,
                survey_event=settings.satisfaction.event,
                score_property=settings.satisfaction.score,
            )
    update = await metrics.fold_events(
        conn, [(event.customer_id, event) for event, _ in stored], settings=settings
    )
    writes.metrics = update.rows
    # The engine's recency events, each routed right after the event that made it.
    made: dict[int, IncomingEvent] = {
        position: change.event(occurred_at=stored[position][0].occurred_at)
        for position, change in update.changes
    }
    recorded: dict[str, int] = {}
    if made:
        kept = await _insert(conn, list(made.values()), tx, writes)
        recorded = {event.message_id: event_id for event, event_id in kept}
    segments = tx.index.segments
    router = Router(tx.index, tx.caps, writes)
    await router.load(conn, [event for event, _ in stored] + list(made.values()))
    for position, (event, event_id) in enumerate(stored):
        await router.route(conn, event, event_id)
        change = made.get(position)
        if change is not None and change.message_id in recorded:
            await router.route(conn, change, recorded[change.message_id])
        if segments:
            engine = event.context.get("source") == ENGINE_SOURCE
            found = segments.affected_by(
                kind=event.type,
                name=event.event,
                engine=engine,
                moved=None if engine else update.moved.get(event.customer_id),
            )
            tx.touch(event.customer_id, found)
    tx.routed += await write(conn, writes, conflicts=tx.conflicts)


async def record(
    conn: asyncpg.Connection, events: Sequence[IncomingEvent], tx: Transaction
) -> None:
    """Store engine events and route them; an id seen before (a rerun) is skipped.

    Unlike messages, they are not customer activity (no metrics, no satisfaction) and mark
    no segments: they are what a merge or a segment evaluation concluded.
    """
    writes = Writes()
    stored = await _insert(conn, events, tx, writes)
    if not stored:
        return
    router = Router(tx.index, tx.caps, writes)
    await router.load(conn, [event for event, _ in stored])
    for event, event_id in stored:
        await router.route(conn, event, event_id)
    tx.routed += await write(conn, writes, conflicts=tx.conflicts)


async def store_event(conn: asyncpg.Connection, event: IncomingEvent) -> int | None:
    """Store one event and merge it into its customer's profile; its id, None when its
    message id was stored before."""
    stored = await insert_events(conn, [event])
    if not stored:
        return None
    writes = Writes()
    writes.profile(event.customer_id, *profile_update(event))
    await write(conn, writes, conflicts="skip")
    return stored[0][1]
