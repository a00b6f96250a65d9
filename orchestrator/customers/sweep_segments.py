"""The segment half of the customer sweep: fill new segments, and catch what time changes.

Ingest keeps membership live as events arrive. Two things need a pass over every customer:

- A segment deployed new or changed is filled once for everyone. The fill is silent (no
  ``Segment Entered`` events): customers who matched before the deploy did not just start
  matching, and a journey entered on the segment should not fire for all of them at once.
  Ingest leaves a segment alone until its fill is done, and the fill resumes from its cursor
  after a crash.
- A filled segment whose answer can change with time alone (a ``within`` window sliding,
  days since the last order, a recency class) is re-evaluated, and those changes are real:
  they are stored and routed like any other.

Customers are read in pages of ``batch_size`` ids, one transaction per page.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from journeyman.orchestrator.ingest import TriggerIndex
from journeyman.orchestrator.ingest.store import refresh_memberships
from journeyman.orchestrator.storage import notify_outbox
from journeyman.orchestrator.storage.journeys import DEPLOY_CHANNEL

from .definitions import SegmentDefinition
from .membership import SegmentIndex

Progress = Callable[[str, int], None]  # (segment or "time-dependent", customers done)


@dataclass
class SegmentSweepReport:
    filled: list[str] = field(default_factory=list)  # segments filled in this pass
    customers: int = 0  # customers re-evaluated for time-dependent segments
    routed: int = 0  # outbox rows the changes wrote


async def load_segments(
    conn: asyncpg.Connection | asyncpg.Pool,
) -> tuple[list[SegmentDefinition], list[SegmentDefinition]]:
    """Active segments whose membership is filled (kept live), and those still to fill."""
    rows = await conn.fetch(
        "SELECT segment_id, version, name, kind, definition, filled_version FROM segments"
        " WHERE status = 'active' ORDER BY segment_id"
    )
    live: list[SegmentDefinition] = []
    pending: list[SegmentDefinition] = []
    for row in rows:
        definition = SegmentDefinition.model_validate(
            {
                **row["definition"],
                "segment_id": row["segment_id"],
                "version": row["version"],
                "name": row["name"],
                "kind": row["kind"],
            }
        )
        (live if row["filled_version"] == row["version"] else pending).append(definition)
    return live, pending


async def sweep_segments(
    pool: asyncpg.Pool,
    *,
    index: TriggerIndex,
    now: datetime,
    batch_size: int = 500,
    progress: Progress | None = None,
) -> SegmentSweepReport:
    """Fill pending segments, then re-evaluate the time-dependent live ones for everyone.

    ``index`` routes the changes to journeys; its own segments are ignored: the ones to
    evaluate are read afresh, so a deploy during the sweep is picked up by the next one.
    """
    report = SegmentSweepReport()
    live, pending = await load_segments(pool)
    for definition in pending:
        await _fill(pool, definition, now=now, batch_size=batch_size, progress=progress)
        report.filled.append(definition.segment_id)
    timed = [s for s in SegmentIndex.build(live).segments if s.time_dependent]
    if timed:
        sweep_index = index.with_segments(SegmentIndex.build(s.definition for s in timed))
        ids = {s.segment_id for s in timed}
        async for page in _customer_pages(pool, batch_size=batch_size):
            async with pool.acquire() as conn, conn.transaction():
                routed = await refresh_memberships(
                    conn, index=sweep_index, customers={c: ids for c in page}, now=now
                )
                if routed:
                    await notify_outbox(conn)
            report.customers += len(page)
            report.routed += routed
            if progress is not None:
                progress("time-dependent", report.customers)
    return report


async def _fill(
    pool: asyncpg.Pool,
    definition: SegmentDefinition,
    *,
    now: datetime,
    batch_size: int,
    progress: Progress | None,
) -> None:
    # The fill is silent, so it routes nothing: no journeys in its index.
    one = TriggerIndex(segments=SegmentIndex.build([definition]))
    cursor: str | None = await pool.fetchval(
        "SELECT fill_cursor FROM segments WHERE segment_id = $1 AND version = $2"
        " AND filled_version IS DISTINCT FROM version",
        definition.segment_id,
        definition.version,
    )
    done = 0
    async for page in _customer_pages(pool, batch_size=batch_size, after=cursor):
        async with pool.acquire() as conn, conn.transaction():
            await refresh_memberships(
                conn,
                index=one,
                customers={c: {definition.segment_id} for c in page},
                now=now,
                silent=True,
            )
            # Progress is saved with the page, so a crash resumes after the last full page.
            await conn.execute(
                "UPDATE segments SET fill_cursor = $3 WHERE segment_id = $1 AND version = $2",
                definition.segment_id,
                definition.version,
                page[-1],
            )
        done += len(page)
        if progress is not None:
            progress(definition.segment_id, done)
    async with pool.acquire() as conn, conn.transaction():
        # Members left over from an earlier version who are no customers any more (erased,
        # merged away) have no profile to page through: drop them.
        await conn.execute(
            "DELETE FROM segment_memberships m WHERE segment_id = $1"
            " AND NOT EXISTS (SELECT 1 FROM profiles p WHERE p.customer_id = m.customer_id)",
            definition.segment_id,
        )
        await conn.execute(
            "UPDATE segments SET filled_version = version, fill_cursor = NULL"
            " WHERE segment_id = $1 AND version = $2",
            definition.segment_id,
            definition.version,
        )
        # Ingest processes start keeping the segment live when they hear of it.
        await conn.execute(
            "SELECT pg_notify($1, $2)",
            DEPLOY_CHANNEL,
            json.dumps({"segment_id": definition.segment_id, "filled": definition.version}),
        )


async def _customer_pages(
    pool: asyncpg.Pool, *, batch_size: int, after: str | None = None
) -> AsyncIterator[Sequence[str]]:
    while True:
        rows = await pool.fetch(
            "SELECT customer_id FROM profiles WHERE $1::text IS NULL OR customer_id > $1"
            " ORDER BY customer_id LIMIT $2",
            after,
            batch_size,
        )
        if not rows:
            return
        page = [row["customer_id"] for row in rows]
        yield page
        after = page[-1]
