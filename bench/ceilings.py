"""The ceilings of ingest: the same rows written straight into Postgres.

The rows the ingest phase stored are read back, every column but the generated id, and
written again into the ``events`` table of fresh databases migrated like the engine's own
(same indexes), by as many asyncpg connections as ingest had HTTP clients:

- **COPY, per batch**: ``copy_records_to_table`` with ingest's batch size, one transaction per
  batch, as ingest commits one per request before it answers;
- **batched upsert**: one ``INSERT ... SELECT FROM unnest(...) ON CONFLICT (message_id) DO
  NOTHING`` per batch (its own transaction), the statement a set-based ingest would run;
- **COPY, bulk**: one COPY of all its rows per connection, one commit: what the disk and the
  indexes allow when commits cost nothing, which no ingest that answers per request can reach.

Ingest also writes profiles, metrics and routing rows; the ceilings write events only, so
they bound what any ingest of these events can reach on this machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

from journeyman.orchestrator.roles import prepare_database

from .cpu import CpuMeter
from .progress import say
from .stack import Stack

Batch = list[tuple[Any, ...]]


@dataclass(frozen=True)
class Ceiling:
    events: int
    seconds: float
    events_per_s: float
    cpu_seconds: dict[str, float]


@dataclass(frozen=True)
class CeilingsResult:
    rows: int
    batch_size: int
    clients: int
    columns: list[str]
    copy: Ceiling
    upsert: Ceiling
    bulk_copy: Ceiling

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def event_columns(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(name, SQL type) of the events table's columns, but the generated ``id``."""
    rows = await conn.fetch(
        "SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute"
        " WHERE attrelid = 'events'::regclass AND attnum > 0 AND NOT attisdropped"
        " AND attname <> 'id' ORDER BY attnum"
    )
    return [(r["attname"], r["type"]) for r in rows]


def upsert_sql(columns: Sequence[tuple[str, str]]) -> str:
    """One statement per batch: every column as an array parameter, deduped on message_id."""
    names = ", ".join(name for name, _ in columns)
    arrays = ", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate(columns, start=1))
    return (
        f"INSERT INTO events ({names}) SELECT * FROM unnest({arrays})"
        " ON CONFLICT (message_id) DO NOTHING"
    )


def batches(rows: Sequence[tuple[Any, ...]], size: int) -> list[Batch]:
    return [list(rows[start : start + size]) for start in range(0, len(rows), size)]


async def read_rows(url: str, where: str) -> tuple[list[tuple[str, str]], list[tuple[Any, ...]]]:
    """The columns and stored rows of the events matching ``where``, in the order stored.

    A plain connection (no JSON codec): jsonb values stay text and go back in unchanged.
    """
    conn = await asyncpg.connect(url)
    try:
        columns = await event_columns(conn)
        names = ", ".join(name for name, _ in columns)
        records = await conn.fetch(f"SELECT {names} FROM events WHERE {where} ORDER BY id")
    finally:
        await conn.close()
    return columns, [tuple(r) for r in records]


async def run(
    stack: Stack,
    meter: CpuMeter,
    *,
    source_url: str,
    where: str,
    clients: int,
    batch_size: int,
) -> CeilingsResult:
    columns, rows = await read_rows(source_url, where)
    say(
        f"ingest ceilings: the same {len(rows):,} rows by COPY and by batched upsert,"
        f" {clients} connections, {batch_size} per transaction"
    )
    work = batches(rows, batch_size)
    names = [name for name, _ in columns]
    statement = upsert_sql(columns)

    async def copy(conn: asyncpg.Connection, batch: Batch) -> None:
        await copy_batch(conn, names, batch)

    async def upsert(conn: asyncpg.Connection, batch: Batch) -> None:
        await upsert_batch(conn, statement, batch)

    # Bulk: connection k gets one unit, the rows it would have had batch by batch.
    bulk = [[row for batch in work[k::clients] for row in batch] for k in range(clients)]
    results = {}
    for label, write, units in (
        ("copy", copy, work),
        ("upsert", upsert, work),
        ("bulk_copy", copy, bulk),
    ):
        url = await _fresh_database(stack, f"bench_ceiling_{label}")
        results[label] = await _timed(meter, url, units, clients, write, expected=len(rows))
    return CeilingsResult(
        rows=len(rows),
        batch_size=batch_size,
        clients=clients,
        columns=names,
        copy=results["copy"],
        upsert=results["upsert"],
        bulk_copy=results["bulk_copy"],
    )


async def copy_batch(conn: asyncpg.Connection, names: list[str], batch: Batch) -> None:
    """COPY the rows into ``events`` (one transaction)."""
    await conn.copy_records_to_table("events", records=batch, columns=names)


async def upsert_batch(conn: asyncpg.Connection, statement: str, batch: Batch) -> None:
    """Run ``upsert_sql`` over the rows (one statement, one transaction)."""
    # Column-wise arrays: parameter n holds every row's n-th value.
    await conn.execute(statement, *(list(column) for column in zip(*batch, strict=True)))


async def _fresh_database(stack: Stack, name: str) -> str:
    assert stack.pg is not None
    url = await stack.pg.create_database(name)
    await prepare_database(url)  # the engine's migrations: the same table and indexes
    return url


async def _timed(
    meter: CpuMeter,
    url: str,
    work: list[Batch],
    clients: int,
    write: Callable[[asyncpg.Connection, Batch], Awaitable[None]],
    *,
    expected: int,
) -> Ceiling:
    conns = [await asyncpg.connect(url) for _ in range(clients)]
    try:

        async def one_client(conn: asyncpg.Connection, mine: list[Batch]) -> None:
            for batch in mine:
                await write(conn, batch)

        before = meter.snapshot()
        await asyncio.gather(*(one_client(conn, work[k::clients]) for k, conn in enumerate(conns)))
        after = meter.snapshot()
        stored = await conns[0].fetchval("SELECT count(*) FROM events")
    finally:
        for conn in conns:
            await conn.close()
    if stored != expected:
        raise RuntimeError(f"ceiling: {expected} rows written but {stored} stored")
    cpu = CpuMeter.delta(before, after)
    seconds = cpu.pop("wall")
    return Ceiling(
        events=expected,
        seconds=round(seconds, 3),
        events_per_s=round(expected / seconds, 1),
        cpu_seconds=cpu,
    )
