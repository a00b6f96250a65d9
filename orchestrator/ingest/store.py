"""Store accepted messages and route the relevant ones to the outbox, in one transaction.

The batch is taken in customer order and cut where a message joins two customers
(``identify`` of an anonymous visitor, ``alias``): each run of messages between two merges
is stored by ``chunk.store_messages`` in a few statements, the merge itself on its own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from journeyman.orchestrator.customers import identity, membership, metrics
from journeyman.orchestrator.customers.events import ENGINE_SOURCE, RUN_ENDED
from journeyman.orchestrator.customers.identity import MergeReason
from journeyman.orchestrator.customers.membership import change_event_fields
from journeyman.orchestrator.customers.settings import CustomerDataSettings

from .chunk import Transaction, record, store_event, store_messages
from .journey_routing import signal_of
from .routing import TriggerIndex
from .segment import IncomingEvent
from .writes import ConcurrentEntry, OutboxRow, insert_outbox


@dataclass(frozen=True)
class IngestResult:
    accepted: int  # new messages stored
    duplicates: int  # messages whose messageId was already stored (accepted, ignored)
    routed: int  # outbox rows written
    merges: int = 0  # customers joined into others by identify or alias


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

    The messages are stored a chunk at a time (``chunk.store_messages``): a few statements
    for the whole batch, however many messages, split only where a message joins two
    customers.
    """
    settings = settings or DEFAULT_SETTINGS
    # Rows are locked in customer order (stable, so each customer's events keep theirs), so
    # concurrent batches touching the same customers rarely wait on each other; a merge
    # joins two customers, so a deadlock remains possible: the whole batch is then retried
    # (nothing of it was committed). So is a batch that entered a customer into a journey
    # that a concurrent one had just entered them into: the retry routes to that run.
    ordered = sorted(events, key=lambda e: e.customer_id)
    for attempt in range(1, ATTEMPTS + 1):
        tx = Transaction(index, settings, conflicts="skip" if attempt == ATTEMPTS else "raise")
        try:
            async with pool.acquire() as conn:
                return await _transaction(conn, ordered, tx)
        except (asyncpg.DeadlockDetectedError, ConcurrentEntry):
            if attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def _transaction(
    conn: asyncpg.Connection, ordered: list[IncomingEvent], tx: Transaction
) -> IngestResult:
    """``_ingest`` in a transaction of its own; a connection lost on the way raises
    ``ConnectionDoesNotExistError`` (Postgres rolled the transaction back)."""
    try:
        async with conn.transaction():
            return await _ingest(conn, ordered, tx)
    except asyncpg.InterfaceError as exc:
        # A backend terminated (restart, failover) fails the statement at work, and then the
        # rollback with an InterfaceError that hides why: say what happened instead, so the
        # caller answers "retry later" rather than a server error.
        if conn.is_closed():
            raise asyncpg.ConnectionDoesNotExistError(
                "the connection to Postgres was lost during the ingest transaction"
            ) from exc
        raise


ATTEMPTS = 3
DEFAULT_SETTINGS = CustomerDataSettings()


def _joins(event: IncomingEvent) -> tuple[str, str, MergeReason] | None:
    """(id joined, id it joins) when the message may join two customers, else None.

    ``identify`` joins an anonymous id to the user id when that anonymous id is still a
    customer of its own (an anonymous id already joined to someone else, as on a shared
    device, is left with them); ``alias`` joins ``previousId`` into ``userId`` whatever it
    is: the caller says outright that the two are one person.
    """
    if (
        event.type == "identify"
        and event.user_id is not None
        and event.anonymous_id is not None
        and event.anonymous_id != event.user_id
    ):
        return event.anonymous_id, event.user_id, "identify"
    if event.type == "alias" and event.previous_id and event.previous_id != event.customer_id:
        return event.previous_id, event.customer_id, "alias"
    return None


def _merges_now(event: IncomingEvent, resolved: dict[str, str]) -> bool:
    """Whether the message joins two customers, by the ids as resolved now."""
    joins = _joins(event)
    if joins is None:
        return False
    joined, into, reason = joins
    source = resolved[joined]
    if reason == "identify" and source != joined:
        return False  # joined to someone already: left with them
    return source != resolved[into]


async def _ingest(
    conn: asyncpg.Connection, ordered: list[IncomingEvent], tx: Transaction
) -> IngestResult:
    ids: set[str] = set()
    for event in ordered:
        joins = _joins(event)
        if joins is not None:
            ids.update((event.customer_id, *joins[:2]))
    # Only a batch that may join customers needs its ids resolved up front (to tell which
    # messages join whom); otherwise inserting the events resolves them.
    resolved = await identity.canonical_many(conn, ids) if ids else {}
    chunk: list[IncomingEvent] = []
    for message in ordered:
        if ids and _merges_now(message, resolved):
            # What came before is stored first: the merge moves it over with the rest.
            await store_messages(conn, chunk, tx)
            chunk = []
            await _merge(conn, message, tx)
            resolved = await identity.canonical_many(conn, ids)
        chunk.append(message)
    await store_messages(conn, chunk, tx)
    await _update_segments(conn, tx)
    # Last: the shared counter rows stay locked for the shortest time, taken in key order.
    await tx.satisfaction.flush(conn)
    return IngestResult(
        accepted=tx.accepted, duplicates=tx.duplicates, routed=tx.routed, merges=tx.merges
    )


async def _merge(conn: asyncpg.Connection, event: IncomingEvent, tx: Transaction) -> None:
    """Join the customers the message names as one (``_joins``), inside the transaction."""
    joins = _joins(event)
    assert joins is not None
    joined, into, reason = joins
    merged = await identity.merge(
        conn, from_id=joined, into_id=into, reason=reason, message_id=event.message_id
    )
    if merged is None:
        return  # joined by a concurrent transaction meanwhile
    tx.merges += 1
    change = await metrics.merge(
        conn, from_id=merged.from_id, into_id=merged.into_id, settings=tx.settings
    )
    if change is not None:
        await record(conn, [change.event(occurred_at=event.occurred_at)], tx)
    tx.routed += await end_runs(
        conn, customer_id=merged.into_id, runs=merged.runs.ended, reason="merged"
    )
    # The joined side's memberships are gone; the merged customer's may have changed.
    tx.touched.pop(merged.from_id, None)
    tx.touch(merged.into_id, tx.index.segments.every_id())


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
    event_id = await store_event(conn, ended)
    assert event_id is not None  # a fresh message id
    signal = signal_of(ended)
    return await insert_outbox(
        conn,
        [
            OutboxRow(
                event_id=event_id,
                journey_id=journey_id,
                version=version,
                customer_id=customer_id,
                workflow_id=workflow_id,
                payload={"entry": False, "event": signal},
            )
            for workflow_id, journey_id, version in runs
        ],
    )


async def _update_segments(conn: asyncpg.Connection, tx: Transaction) -> None:
    """Re-evaluate the touched customers' segments; store and route who entered and left."""
    if tx.touched and len(tx.index.segments):
        await _refresh(conn, tx, customers=tx.touched, now=datetime.now(UTC), silent=False)


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
    # Not retried by a caller: an entry that loses a race is dropped, as it always was.
    tx = Transaction(index, DEFAULT_SETTINGS, conflicts="skip")
    await _refresh(conn, tx, customers=customers, now=now, silent=silent)
    return tx.routed


async def _refresh(
    conn: asyncpg.Connection,
    tx: Transaction,
    *,
    customers: dict[str, set[str]],
    now: datetime,
    silent: bool,
) -> None:
    wanted = {customer: tx.index.segments.pick(ids) for customer, ids in customers.items()}
    changes = await membership.reevaluate_many(conn, wanted, now=now)
    if changes and not silent:
        events = [IncomingEvent(**change_event_fields(c), occurred_at=now) for c in changes]
        await record(conn, events, tx)
