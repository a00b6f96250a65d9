"""Where a customer's time goes in the engine, read back from the rows the engine wrote.

Every hop leaves a timestamp: the event's ``received_at`` (its ingest transaction), the outbox row's
``delivered_at`` (the dispatcher's Temporal call returned), the ledger row's ``created_at``
(send claimed, inside the activity) and ``updated_at`` (SMTP answered), and the run's
``updated_at`` when the last transition marked it completed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from .stats import percentile

# Per customer: the first of each hop (a re-sent reply counts from the first one).
_HOPS = """
WITH ev AS (
  SELECT customer_id,
    min(received_at) FILTER (WHERE event = $2) AS entry_in,
    min(received_at) FILTER (WHERE event = $3) AS reply_in
  FROM events WHERE event IN ($2, $3) GROUP BY customer_id
), ob AS (
  SELECT customer_id,
    min(delivered_at) FILTER (WHERE entry) AS entry_out,
    min(delivered_at) FILTER (WHERE NOT entry) AS reply_out
  FROM (SELECT customer_id, delivered_at, (payload->>'entry')::boolean AS entry
        FROM outbox WHERE journey_id = $1) o
  GROUP BY customer_id
)
SELECT r.customer_id, r.updated_at AS completed, ev.entry_in, ev.reply_in,
  ob.entry_out, ob.reply_out,
  d1.created_at AS first_claim, d1.updated_at AS first_sent,
  d2.created_at AS second_claim, d2.updated_at AS second_sent
FROM journey_runs r
JOIN ev USING (customer_id)
JOIN ob USING (customer_id)
JOIN deliveries d1 ON d1.customer_id = r.customer_id AND d1.step_id = $4
JOIN deliveries d2 ON d2.customer_id = r.customer_id AND d2.step_id = $5
WHERE r.journey_id = $1 AND r.status = 'completed'
"""

# (label, from column, to column): consecutive hops of one customer's run.
HOPS: list[tuple[str, str, str]] = [
    ("entry: ingested -> delivered to Temporal", "entry_in", "entry_out"),
    ("entry delivered -> first send claimed", "entry_out", "first_claim"),
    ("first send: claim -> SMTP done", "first_claim", "first_sent"),
    ("first email -> reply ingested (bench)", "first_sent", "reply_in"),
    ("reply: ingested -> delivered to Temporal", "reply_in", "reply_out"),
    ("reply delivered -> second send claimed", "reply_out", "second_claim"),
    ("second send: claim -> SMTP done", "second_claim", "second_sent"),
    ("second email -> run completed", "second_sent", "completed"),
]

MILESTONES: list[tuple[str, str]] = [
    ("all entries ingested", "entry_in"),
    ("all entries delivered to Temporal", "entry_out"),
    ("all first emails sent", "first_sent"),
    ("all replies ingested", "reply_in"),
    ("all second emails sent", "second_sent"),
    ("all runs completed", "completed"),
]


async def read(
    conn: asyncpg.Connection,
    *,
    started: datetime,
    journey_id: str,
    entry_event: str,
    reply_event: str,
    first_step: str,
    second_step: str,
) -> dict[str, Any]:
    """Hop latencies (p50/p99, ms) and milestones (s after ``started``) of completed runs."""
    rows = await conn.fetch(_HOPS, journey_id, entry_event, reply_event, first_step, second_step)
    hops: dict[str, dict[str, float]] = {}
    for label, start, end in HOPS:
        ms = [
            (r[end] - r[start]).total_seconds() * 1000
            for r in rows
            if r[start] is not None and r[end] is not None
        ]
        hops[label] = {
            "p50_ms": round(percentile(ms, 0.5), 1),
            "p99_ms": round(percentile(ms, 0.99), 1),
        }
    milestones: dict[str, float] = {}
    for label, column in MILESTONES:
        times = [r[column] for r in rows if r[column] is not None]
        if times:
            milestones[label] = round((max(times) - started).total_seconds(), 2)
    return {"customers": len(rows), "hops": hops, "milestones_s": milestones}
