"""Scale, Postgres alone: generated customers at growing sizes, and the API's latency.

A fresh database is migrated like the engine's own and a five-stage journey deployed; then,
size after size (cumulative), generated customers with ten events each, a finished run with
its transitions, metrics, merges and the KPI counters are COPYed straight into the engine's
tables (``pg_data``, ``pg_load``). At each size the bench times 50 funnel calls
(``GET /api/journeys/{id}/funnel``) and 50 look-ups of random customers
(``GET /api/customers/{id}``) through the real API. No worker runs: the runs are finished, so
a look-up reads Postgres only.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from . import pg_data, pg_load, workload
from .api_latency import time_calls
from .cpu import CpuMeter
from .progress import Ticker, say
from .stack import Stack, compile_journey

CALLS = 50
MIB = 1024 * 1024


@dataclass(frozen=True)
class PgPoint:
    customers: int
    events: int
    rows_loaded: int  # by this size's step, all tables
    load_seconds: float
    rows_per_s: float
    vacuum_seconds: float
    database_mib: float
    funnel: dict[str, float]
    lookup: dict[str, float]


@dataclass
class PgResult:
    sizes: list[int]
    calls: int
    events_per_customer: int
    points: list[PgPoint] = field(default_factory=list)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def run(stack: Stack, meter: CpuMeter, *, sizes: list[int], seed: int) -> PgResult:
    sizes = sorted(set(sizes))
    say(
        f"postgres scale: {', '.join(f'{s:,}' for s in sizes)} generated customers,"
        f" {pg_data.EVENTS_PER_CUSTOMER} events each"
    )
    plan = compile_journey(pg_data.JOURNEY_SOURCE)
    url = await stack.database("bench_pg", plan, pg_data.JOURNEY_SOURCE)
    rng = random.Random(seed)
    now = datetime.now(UTC)
    result = PgResult(sizes=sizes, calls=CALLS, events_per_customer=pg_data.EVENTS_PER_CUSTOMER)
    before = meter.snapshot()
    loaded = 0
    async with stack.api(url) as api, workload.admin_client(api.url) as admin:
        for size in sizes:
            ticker = Ticker(f"loading {size:,}", size, unit="customers")
            ticker.update(loaded)
            step = await pg_load.load(
                url,
                start=loaded,
                stop=size,
                journey_id=plan.journey_id,
                version=plan.version,
                now=now,
                seed=seed,
                on_progress=ticker.update,
            )
            ticker.close()
            loaded = size
            api.check()
            funnel = await time_calls(admin, [f"/api/journeys/{plan.journey_id}/funnel"] * CALLS)
            wanted = [pg_data.customer_id(rng.randrange(size)) for _ in range(CALLS)]

            def same_customer(path: str, body: dict[str, Any]) -> None:
                if not path.endswith(body["customer_id"]) or len(body["journeys"]["finished"]) != 1:
                    raise RuntimeError(f"GET {path} did not show the generated customer: {body}")

            lookup = await time_calls(
                admin, [f"/api/customers/{c}" for c in wanted], check=same_customer
            )
            point = PgPoint(
                customers=size,
                events=size * pg_data.EVENTS_PER_CUSTOMER,
                rows_loaded=step.rows,
                load_seconds=step.seconds,
                rows_per_s=round(step.rows / step.seconds) if step.seconds else 0.0,
                vacuum_seconds=step.vacuum_seconds,
                database_mib=await _database_mib(url),
                funnel=funnel.as_dict(),
                lookup=lookup.as_dict(),
            )
            result.points.append(point)
            say(
                f"  {size:,} customers: funnel p99 {funnel.p99_ms} ms,"
                f" look-up p99 {lookup.p99_ms} ms, {point.database_mib:,.0f} MiB"
            )
    after = meter.snapshot()
    result.cpu_seconds = CpuMeter.delta(before, after)
    result.seconds = result.cpu_seconds.pop("wall")
    return result


async def _database_mib(url: str) -> float:
    conn = await asyncpg.connect(url)
    try:
        size: int = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    return round(size / MIB, 1)
