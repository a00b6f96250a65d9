"""Ingest: events/s accepted by ``POST /v1/batch`` and committed to Postgres.

The bench journey is deployed, so routing runs for real: entry events create runs and outbox
rows, replies of customers already in the journey add signal rows. No worker or dispatcher runs
in this phase, so the outbox only grows (delivery is measured in the journeys phase).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from journeyman.orchestrator.storage import connect

from . import workload
from .cpu import CpuMeter
from .progress import Ticker, say
from .stack import Stack, compile_journey
from .stats import percentile

DATABASE = "bench_ingest"
# The timed events (the warm-up's customers are named "warm-..."), for the ceilings to reuse.
TIMED_EVENTS = "customer_id LIKE 'ing-%'"


@dataclass(frozen=True)
class IngestResult:
    events: int
    batch_size: int
    clients: int
    requests: int
    seconds: float
    events_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    shared_customers: bool
    retried_5xx: int
    first_errors: list[str]
    stored_events: int
    outbox_rows: int
    journey_runs: int
    cpu_seconds: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def run(
    stack: Stack,
    meter: CpuMeter,
    *,
    events: int,
    batch_size: int,
    clients: int,
    seed: int,
    shared_customers: bool = False,
) -> IngestResult:
    say(f"ingest: {events} track events, {batch_size} per batch, {clients} concurrent clients")
    plan = compile_journey(workload.JOURNEY_SOURCE)
    url = await stack.database(DATABASE, plan, workload.JOURNEY_SOURCE)
    partitions = 1 if shared_customers else clients
    bodies = workload.ingest_bodies(events, batch_size=batch_size, seed=seed, partitions=partitions)
    # Warm-up: opens the pool's connections and the HTTP keep-alive connections, untimed.
    warmup = workload.ingest_bodies(
        clients * 2 * batch_size,
        batch_size=batch_size,
        seed=seed + 1,
        partitions=partitions,
        prefix="warm",
    )
    ticker = Ticker("POST /v1/batch", events, unit="events")
    accepted = 0

    def count(n: int) -> None:
        nonlocal accepted
        accepted += n
        ticker.update(accepted)

    async with stack.api(url) as api, workload.api_client(api.url, connections=clients) as client:
        await workload.post_all(client, warmup, concurrency=clients)
        before = meter.snapshot()
        stats = await workload.post_all(client, bodies, concurrency=clients, on_accepted=count)
        after = meter.snapshot()
        api.check()
    ticker.close()
    cpu = CpuMeter.delta(before, after)
    seconds = cpu.pop("wall")
    conn = await connect(url)
    try:
        stored = await conn.fetchval(f"SELECT count(*) FROM events WHERE {TIMED_EVENTS}")
        outbox = await conn.fetchval("SELECT count(*) FROM outbox WHERE customer_id LIKE 'ing-%'")
        runs = await conn.fetchval(
            "SELECT count(*) FROM journey_runs WHERE customer_id LIKE 'ing-%'"
        )
    finally:
        await conn.close()
    if stored != events:
        raise RuntimeError(f"{events} events accepted but {stored} stored")
    return IngestResult(
        events=events,
        batch_size=batch_size,
        clients=clients,
        requests=len(stats.latencies),
        seconds=round(seconds, 3),
        events_per_s=round(events / seconds, 1),
        p50_ms=round(percentile(stats.latencies, 0.50) * 1000, 1),
        p99_ms=round(percentile(stats.latencies, 0.99) * 1000, 1),
        max_ms=round(max(stats.latencies) * 1000, 1),
        shared_customers=shared_customers,
        retried_5xx=stats.retried,
        first_errors=stats.errors[:3],
        stored_events=int(stored),
        outbox_rows=int(outbox),
        journey_runs=int(runs),
        cpu_seconds=cpu,
    )
