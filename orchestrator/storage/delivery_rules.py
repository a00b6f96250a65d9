"""What frequency caps and send throttles count: recent rows of the delivery ledger.

Every state in which the customer may have the message counts: ``sending`` and ``unknown``
ones too, and those a provider moved on (delivered, opened, clicked, complained).
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from .delivery_states import MAY_HAVE_REACHED_CUSTOMER

_COUNTED = ("sending", *MAY_HAVE_REACHED_CUSTOMER)


async def lock_customer(conn: asyncpg.Connection, customer_id: str) -> None:
    """Serialise cap checks per customer until the transaction ends, across all journeys."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('cap/' || $1))", customer_id)


async def lock_journey(conn: asyncpg.Connection, journey_id: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('throttle/' || $1))", journey_id)


async def customer_sends_since(
    conn: asyncpg.Connection, *, customer_id: str, channel: str, since: datetime
) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM deliveries WHERE customer_id = $1 AND channel = $2"
        " AND created_at > $3 AND status = ANY($4)",
        customer_id,
        channel,
        since,
        list(_COUNTED),
    )
    return count


async def journey_sends_since(
    conn: asyncpg.Connection, *, journey_id: str, since: datetime
) -> tuple[int, datetime | None]:
    """How many of the journey's messages went out since ``since``, and when the first did."""
    row = await conn.fetchrow(
        "SELECT count(*) AS n, min(created_at) AS first FROM deliveries"
        " WHERE journey_id = $1 AND created_at > $2 AND status = ANY($3)",
        journey_id,
        since,
        list(_COUNTED),
    )
    assert row is not None
    return row["n"], row["first"]
