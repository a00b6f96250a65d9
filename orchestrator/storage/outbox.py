"""The outbox: events bound for Temporal, written with the event and drained by the dispatcher."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

OUTBOX_CHANNEL = "journeyman_outbox"


@dataclass(frozen=True)
class OutboxRow:
    id: int
    journey_id: str
    version: str
    customer_id: str
    workflow_id: str
    payload: dict[str, Any]
    attempts: int
    # When the run this row goes to entered (its journey_runs row), if that row still exists.
    run_entered_at: datetime | None = None


async def notify_outbox(conn: asyncpg.Connection) -> None:
    """Wake the dispatcher; Postgres delivers the notification only if the transaction commits."""
    await conn.execute("SELECT pg_notify($1, '')", OUTBOX_CHANNEL)


async def claim_outbox(
    conn: asyncpg.Connection, *, limit: int, max_attempts: int
) -> list[OutboxRow]:
    """The oldest undelivered rows that are not dead letters, in order (leader only)."""
    rows = await conn.fetch(
        "SELECT o.id, o.journey_id, o.version, o.customer_id, o.workflow_id, o.payload,"
        " o.attempts, r.entered_at AS run_entered_at FROM outbox o"
        " LEFT JOIN journey_runs r USING (workflow_id)"
        " WHERE o.delivered_at IS NULL AND o.attempts < $2 ORDER BY o.id LIMIT $1",
        limit,
        max_attempts,
    )
    return [OutboxRow(**dict(r)) for r in rows]


async def mark_delivered(conn: asyncpg.Connection | asyncpg.Pool, *, ids: list[int]) -> None:
    await conn.execute("UPDATE outbox SET delivered_at = now() WHERE id = any($1::bigint[])", ids)


async def mark_failed(conn: asyncpg.Connection | asyncpg.Pool, *, id: int, error: str) -> None:
    await conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1", id, error[:500]
    )


async def pending_count(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    value = await conn.fetchval("SELECT count(*) FROM outbox WHERE delivered_at IS NULL")
    return int(value)
