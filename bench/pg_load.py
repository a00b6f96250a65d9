"""Loading generated customers into the engine's tables with COPY, and their KPI counters.

Rows are generated a chunk of customers at a time in a thread, while the previous chunk is
COPYed (one connection per table, all tables at once), so Python and Postgres work side by
side on two cores. The KPI counters are then added in one statement per table, as the engine
would have counted the transitions one by one.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from . import pg_data

CHUNK = 5_000  # customers generated and copied at a time


@dataclass(frozen=True)
class Loaded:
    rows: int
    seconds: float
    vacuum_seconds: float


async def load(
    url: str,
    *,
    start: int,
    stop: int,
    journey_id: str,
    version: str,
    now: datetime,
    seed: int,
    on_progress: Callable[[int], None] | None = None,
) -> Loaded:
    """Customers ``start`` to ``stop - 1``, their counters, then VACUUM ANALYZE."""
    started = time.monotonic()
    conns = {table: await asyncpg.connect(url) for table in pg_data.COLUMNS}
    rows = 0
    totals = pg_data.Counters()
    try:

        def make(first: int) -> pg_data.Chunk:
            last = min(first + CHUNK, stop)
            return pg_data.generate(
                first, last, journey_id=journey_id, version=version, now=now, seed=seed
            )

        firsts = list(range(start, stop, CHUNK))
        pending = asyncio.create_task(asyncio.to_thread(make, firsts[0])) if firsts else None
        for index in range(len(firsts)):
            assert pending is not None
            chunk = await pending
            # Generate the next chunk while this one is copied.
            if index + 1 < len(firsts):
                pending = asyncio.create_task(asyncio.to_thread(make, firsts[index + 1]))
            await asyncio.gather(
                *(_copy(conns[table], table, lines) for table, lines in chunk.lines.items())
            )
            rows += sum(len(lines) for lines in chunk.lines.values())
            totals.add(chunk.counters)
            if on_progress is not None:
                on_progress(firsts[index] + chunk.customers)
        await add_counters(conns["events"], totals, journey_id=journey_id, version=version)
        loaded = time.monotonic()
        # As autovacuum would have done on a database that grew slowly: visibility maps set
        # (index-only scans) and statistics current, so the plans are the ones users get.
        await conns["events"].execute(
            "VACUUM (ANALYZE) " + ", ".join(pg_data.COLUMNS) + ", stage_kpis, stage_exit_kpis"
        )
    finally:
        for conn in conns.values():
            await conn.close()
    return Loaded(
        rows=rows,
        seconds=round(loaded - started, 2),
        vacuum_seconds=round(time.monotonic() - loaded, 2),
    )


async def _copy(conn: asyncpg.Connection, table: str, lines: list[str]) -> None:
    if lines:
        data = io.BytesIO("".join(lines).encode())
        await conn.copy_to_table(table, source=data, columns=pg_data.COLUMNS[table], format="text")


async def add_counters(
    conn: asyncpg.Connection, counters: pg_data.Counters, *, journey_id: str, version: str
) -> None:
    """Add the counters to ``stage_kpis`` and ``stage_exit_kpis`` (reason ``timeout``)."""
    stages = sorted({stage for stage, _ in counters.stages})
    columns = ("entered", "converted", "exited")
    await conn.executemany(
        "INSERT INTO stage_kpis (journey_id, version, stage, entered, converted, exited)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (journey_id, version, stage) DO UPDATE"
        " SET entered = stage_kpis.entered + excluded.entered,"
        " converted = stage_kpis.converted + excluded.converted,"
        " exited = stage_kpis.exited + excluded.exited",
        [(journey_id, version, s, *(counters.stages[(s, c)] for c in columns)) for s in stages],
    )
    await conn.executemany(
        "INSERT INTO stage_exit_kpis"
        " (journey_id, version, stage, outcome, reason, detail, holdout, customers)"
        " VALUES ($1, $2, $3, 'exited', 'timeout', '', false, $4)"
        " ON CONFLICT (journey_id, version, stage, outcome, reason, detail, holdout)"
        " DO UPDATE SET customers = stage_exit_kpis.customers + excluded.customers",
        [(journey_id, version, s, n) for s, n in sorted(counters.timeouts.items())],
    )
