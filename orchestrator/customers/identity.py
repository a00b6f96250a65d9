"""One identity per person: anonymous and known ids joined, known customers merged.

An ``identify`` or ``alias`` call joins an id to a customer. The joined id becomes an alias
(``customer_aliases``) of the customer it now stands for, and everything stored under it
moves over: events (so behaviour before login counts after it), traits, consent, metrics,
messages sent (so frequency caps see both sides) and journey runs.

Journey runs continue for the merged customer without duplicates: a run of the joined side
is handed over when the merged customer has no run of that journey yet, and is ended (with
the engine's run-ended event, counted as an exit) when the merged customer already has one.
The run's workflow keeps the id it started with; its activities resolve that id through the
aliases, so sends and conditions read the merged profile.

Every merge is recorded in ``customer_merges`` with what moved.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg

MergeReason = Literal["identify", "alias", "api"]


async def canonical(conn: asyncpg.Connection | asyncpg.Pool, customer_id: str) -> str:
    """The customer an id stands for now (itself unless it was joined to another)."""
    found: str | None = await conn.fetchval(
        "SELECT customer_id FROM customer_aliases WHERE alias = $1", customer_id
    )
    return found or customer_id


async def canonical_many(conn: asyncpg.Connection, ids: Iterable[str]) -> dict[str, str]:
    """``canonical`` for several ids in one round trip."""
    wanted = sorted(set(ids))
    rows = await conn.fetch(
        "SELECT alias, customer_id FROM customer_aliases WHERE alias = ANY($1::text[])", wanted
    )
    resolved = {row["alias"]: row["customer_id"] for row in rows}
    return {customer_id: resolved.get(customer_id, customer_id) for customer_id in wanted}


async def aliases_of(conn: asyncpg.Connection | asyncpg.Pool, customer_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT alias FROM customer_aliases WHERE customer_id = $1 ORDER BY alias", customer_id
    )
    return [row["alias"] for row in rows]


async def is_known(conn: asyncpg.Connection, customer_id: str) -> bool:
    """Whether a customer has ever been identified by a ``userId`` (not only anonymous)."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM events WHERE customer_id = $1 AND user_id IS NOT NULL)",
            customer_id,
        )
    )


@dataclass
class RunHandover:
    """What a merge did to the joined side's journey runs."""

    handed_over: list[str] = field(default_factory=list)  # workflow ids now the merged customer's
    ended: list[tuple[str, str, str]] = field(default_factory=list)  # (workflow, journey, version)


@dataclass
class Merge:
    from_id: str
    into_id: str
    moved: dict[str, Any]
    runs: RunHandover


async def merge(
    conn: asyncpg.Connection,
    *,
    from_id: str,
    into_id: str,
    reason: MergeReason,
    message_id: str | None = None,
) -> Merge | None:
    """Join ``from_id``'s customer into ``into_id``'s, inside the caller's transaction.

    Both ids are resolved first; None when they already are one customer. The caller emits
    the run-ended events for ``Merge.runs.ended`` (through the outbox, in the same
    transaction) and re-evaluates the merged customer's segments.
    """
    source = await canonical(conn, from_id)
    target = await canonical(conn, into_id)
    if source == target:
        return None
    # Both customers are locked in a fixed order, so two merges touching the same pair (or
    # an ingest for either side) wait for each other instead of deadlocking.
    for customer_id in sorted((source, target)):
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", customer_id)
    moved: dict[str, Any] = {}
    await conn.execute(
        "INSERT INTO customer_aliases (alias, customer_id) VALUES ($1, $2)"
        " ON CONFLICT (alias) DO UPDATE SET customer_id = excluded.customer_id",
        source,
        target,
    )
    # Aliases always point at the final customer, so resolving is one lookup.
    await conn.execute(
        "UPDATE customer_aliases SET customer_id = $2 WHERE customer_id = $1", source, target
    )
    moved["events"] = _count(
        await conn.execute(
            "UPDATE events SET customer_id = $2 WHERE customer_id = $1", source, target
        )
    )
    moved["profile"] = await _merge_profiles(conn, source, target)
    moved["messages"] = _count(
        await conn.execute(
            "UPDATE deliveries SET customer_id = $2 WHERE customer_id = $1", source, target
        )
    )
    # Experiment variants: the merged customer keeps theirs where both were assigned.
    await conn.execute(
        "UPDATE experiment_assignments a SET customer_id = $2 WHERE customer_id = $1"
        " AND NOT EXISTS (SELECT 1 FROM experiment_assignments b WHERE b.journey_id = a.journey_id"
        " AND b.step_id = a.step_id AND b.customer_id = $2)",
        source,
        target,
    )
    await conn.execute("DELETE FROM experiment_assignments WHERE customer_id = $1", source)
    # Memberships move over (the person was in the segment already, under another id: no
    # second "entered"); the caller re-evaluates the merged customer, who may now leave some.
    await conn.execute(
        "UPDATE segment_memberships m SET customer_id = $2 WHERE customer_id = $1"
        " AND NOT EXISTS (SELECT 1 FROM segment_memberships n"
        " WHERE n.segment_id = m.segment_id AND n.customer_id = $2)",
        source,
        target,
    )
    await conn.execute("DELETE FROM segment_memberships WHERE customer_id = $1", source)
    runs = await _hand_over_runs(conn, source, target)
    moved["runs_handed_over"] = len(runs.handed_over)
    moved["runs_ended"] = len(runs.ended)
    await conn.execute(
        "UPDATE outbox SET customer_id = $2 WHERE customer_id = $1 AND delivered_at IS NULL",
        source,
        target,
    )
    await conn.execute(
        "INSERT INTO customer_merges (from_id, into_id, reason, message_id, moved)"
        " VALUES ($1, $2, $3, $4, $5)",
        source,
        target,
        reason,
        message_id,
        moved,
    )
    return Merge(from_id=source, into_id=target, moved=moved, runs=runs)


async def _merge_profiles(conn: asyncpg.Connection, source: str, target: str) -> bool:
    """The merged customer's traits and consent win; the joined side fills the gaps."""
    row = await conn.fetchrow(
        "DELETE FROM profiles WHERE customer_id = $1 RETURNING traits, consent", source
    )
    if row is None:
        return False
    await conn.execute(
        "INSERT INTO profiles (customer_id, traits, consent) VALUES ($1, $2, $3)"
        " ON CONFLICT (customer_id) DO UPDATE SET traits = $2 || profiles.traits,"
        " consent = $3 || profiles.consent, updated_at = now()",
        target,
        row["traits"],
        row["consent"],
    )
    return True


async def _hand_over_runs(conn: asyncpg.Connection, source: str, target: str) -> RunHandover:
    handover = RunHandover()
    rows = await conn.fetch(
        "SELECT workflow_id, journey_id, version, status FROM journey_runs"
        " WHERE customer_id = $1 ORDER BY workflow_id FOR UPDATE",
        source,
    )
    running_journeys = {
        row["journey_id"]
        for row in await conn.fetch(
            "SELECT journey_id FROM journey_runs WHERE customer_id = $1"
            " AND status IN ('entering', 'active')",
            target,
        )
    }
    for row in rows:
        if row["status"] in ("entering", "active"):
            if row["journey_id"] in running_journeys:
                # The merged customer is already on this journey: one run is enough.
                handover.ended.append((row["workflow_id"], row["journey_id"], row["version"]))
                continue
            running_journeys.add(row["journey_id"])
            handover.handed_over.append(row["workflow_id"])
    # Every run moves over (finished ones too, so re-entry rules see the whole history);
    # the ended ones finish on their own once their run-ended event arrives.
    await conn.execute(
        "UPDATE journey_runs SET customer_id = $2, updated_at = now() WHERE customer_id = $1",
        source,
        target,
    )
    if handover.ended:
        # Routing skips them from now on, so no event reaches both runs meanwhile.
        await conn.execute(
            "UPDATE journey_runs SET status = 'exited' WHERE workflow_id = ANY($1::text[])",
            [workflow_id for workflow_id, _, _ in handover.ended],
        )
    return handover


def _count(status: str) -> int:
    """Rows affected, from asyncpg's command status (``UPDATE 3``)."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
