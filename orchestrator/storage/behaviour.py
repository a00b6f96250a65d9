"""Load what a condition reads: the customer's traits, the event history its calls count, and
their behavioural metrics when it reads any."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from journeyman.orchestrator.customers import metrics
from journeyman.workflows.expressions import Context, Needs, StoredEvent

# The most recent events read per event name. A condition is evaluated in one activity's
# memory, and a customer can have millions of page views: past this, counts and sums see only
# the newest events of that name (a count saturates at this number).
MAX_EVENTS_PER_NAME = 10_000


async def load_context(
    conn: asyncpg.Connection,
    *,
    customer_id: str,
    needs: Needs,
    event: Mapping[str, Any],
    now: datetime,
) -> Context:
    """Read the profile, for each event name ``needs`` counts its window of track events, and
    the metrics row only when a condition reads ``metrics.*``."""
    traits = await conn.fetchval("SELECT traits FROM profiles WHERE customer_id = $1", customer_id)
    history: dict[str, list[StoredEvent]] = {name: [] for name in needs.events}
    if needs.events:
        names = list(needs.events)
        since = [
            None if within is None else now - timedelta(seconds=within)
            for within in needs.events.values()
        ]
        # One round trip for every name; each name keeps its own window and its own cap.
        rows = await conn.fetch(
            "SELECT w.name, e.properties, e.occurred_at"
            " FROM unnest($2::text[], $3::timestamptz[]) AS w(name, since)"
            " CROSS JOIN LATERAL ("
            "   SELECT properties, occurred_at FROM events"
            "   WHERE customer_id = $1 AND type = 'track' AND event = w.name"
            "     AND (w.since IS NULL OR occurred_at > w.since)"
            "   ORDER BY occurred_at DESC, id DESC LIMIT $4"
            " ) AS e",
            customer_id,
            names,
            since,
            MAX_EVENTS_PER_NAME,
        )
        for row in rows:
            properties = row["properties"]
            history[row["name"]].append(
                StoredEvent(
                    name=row["name"],
                    properties=properties if isinstance(properties, Mapping) else {},
                    occurred_at=row["occurred_at"],
                )
            )
    values: dict[str, Any] = {}
    if needs.metrics:
        values = metrics.condition_values(await metrics.load(conn, customer_id))
    return Context(
        traits=traits if isinstance(traits, Mapping) else {},
        event=event,
        history=history,
        now=now,
        metrics=values,
    )
