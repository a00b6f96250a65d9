"""Scale, parked customers: worker memory and API latency as more customers wait.

The worker runs as a child process (``journeyman worker``), so its resident memory is its own.
For each size (cumulative: the customers of the smaller sizes stay parked) the bench parks the
extra customers over HTTP at the engine's pace (``parking_at_scale``), waits until the worker,
Temporal and Postgres are idle again, checks the count against Temporal's visibility, then
reads the worker's RSS, times 50 funnel calls (``GET /api/journeys/{id}/funnel``) and 50
look-ups of random parked customers (``GET /api/customers/{id}``, which asks each running run
for its position over Temporal). A size that parking could not reach (time limit, memory) is
measured where parking stopped, and is the last.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from temporalio.client import Client

from journeyman.orchestrator.storage import connect
from journeyman.orchestrator.temporal_client import connect_temporal

from . import parking, parking_at_scale, workload
from .api_latency import time_calls
from .cpu import CpuMeter, settle
from .memory import available_mib, rss
from .progress import say
from .stack import Stack, compile_journey
from .stats import Summary

CALLS = 50
FUNNEL_STAGE = "waiting"
# Customers posted ahead of those counted in the stage: enough to keep the dispatcher's
# batches and the worker's task slots full, few enough that no queue builds in Temporal.
WINDOW = 1_000
# Parking stops when the machine has less than this left (the in-memory Temporal server
# grows with every parked run); other people's work on a shared machine needs its share.
MIN_FREE_MIB = 3_072.0
VISIBILITY_SECONDS = 60.0  # for Temporal's visibility to catch up with the count
_ENTERED_SQL = (
    "SELECT coalesce(sum(entered), 0) FROM stage_kpis WHERE journey_id = $1 AND stage = $2"
)


@dataclass(frozen=True)
class ScalePoint:
    parked: int  # customers parked when measured
    size: int  # the size asked for; more than ``parked`` when parking stopped short
    stopped: str  # why parking stopped short of ``size``; empty when it got there
    park_seconds: float  # parking the customers this size added
    park_total_seconds: float  # parking every customer so far
    parked_per_s: float
    settle_seconds: float
    worker_rss_mib: float
    worker_peak_rss_mib: float
    temporal_server_rss_mib: float
    temporal_server_peak_rss_mib: float
    machine_available_mib: float | None
    visibility_parked: int  # runs Temporal's visibility shows at the wait step
    funnel_now: int  # the funnel's "in the stage now": should equal ``parked``
    funnel: dict[str, float]
    lookup: dict[str, float]
    lookup_positions_from_temporal: int  # of the looked-up customers


@dataclass
class ScaleResult:
    sizes: list[int]
    calls: int
    points: list[ScalePoint] = field(default_factory=list)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def run(
    stack: Stack,
    meter: CpuMeter,
    *,
    sizes: list[int],
    clients: int,
    time_limit: float,
    seed: int,
    budget: float | None = None,
) -> ScaleResult:
    """Park ``sizes`` customers in turn, each size within ``time_limit`` seconds and all of
    them within ``budget`` seconds of parking, and measure at each size reached."""
    sizes = sorted(set(sizes))
    say(f"scale: customers parked in a wait_for at {', '.join(f'{s:,}' for s in sizes)}")
    plan = compile_journey(parking.JOURNEY_SOURCE)
    url = await stack.database("bench_scale", plan, parking.JOURNEY_SOURCE)
    task_queue = f"bench-scale-{uuid.uuid4().hex[:8]}"
    temporal = await connect_temporal(stack.temporal_address)
    rng = random.Random(seed)
    result = ScaleResult(sizes=sizes, calls=CALLS)
    assert stack.temporal is not None
    server = stack.temporal
    quiet = {
        "worker": stack.worker_child_pid,
        "temporal": lambda: server.pid,
        "postgres": stack.postmaster_pid,
    }
    async with (
        stack.api(url) as api,
        stack.worker_process(url, task_queue) as worker,
        workload.api_client(api.url, connections=clients) as client,
        workload.admin_client(api.url) as admin,
    ):

        def check() -> None:
            api.check()
            worker.check()

        conn = await connect(url)
        try:

            async def entered() -> int:
                return int(await conn.fetchval(_ENTERED_SQL, plan.journey_id, FUNNEL_STAGE))

            before = meter.snapshot()
            parked, total_seconds = 0, 0.0
            for size in sizes:
                names = [parking.customer_name("park", i) for i in range(parked, size)]
                outcome = await parking_at_scale.park(
                    client,
                    customers=names,
                    already=parked,
                    count=entered,
                    clients=clients,
                    window=WINDOW,
                    time_limit=seconds_for_size(time_limit, budget, total_seconds),
                    min_free_mib=MIN_FREE_MIB,
                    check=check,
                    label=f"parking {size:,}",
                )
                added, parked = outcome.reached - parked, outcome.reached
                total_seconds += outcome.seconds
                if outcome.stopped:
                    say(f"  parking stopped at {parked:,} of {size:,}: {outcome.stopped}")
                waited = await settle(quiet)
                parked = await entered()
                seen = await _visible(temporal, task_queue, parked)
                memory = worker.memory()
                assert server.pid is not None
                server_memory = rss(server.pid)
                funnel, funnel_now, lookup, from_temporal = await _api_latency(
                    admin, plan.journey_id, parked, rng
                )
                point = ScalePoint(
                    parked=parked,
                    size=size,
                    stopped=outcome.stopped,
                    park_seconds=outcome.seconds,
                    park_total_seconds=round(total_seconds, 1),
                    parked_per_s=round(added / outcome.seconds, 1) if outcome.seconds else 0.0,
                    settle_seconds=waited,
                    worker_rss_mib=memory.now_mib,
                    worker_peak_rss_mib=memory.peak_mib,
                    temporal_server_rss_mib=server_memory.now_mib,
                    temporal_server_peak_rss_mib=server_memory.peak_mib,
                    machine_available_mib=available_mib(),
                    visibility_parked=seen,
                    funnel_now=funnel_now,
                    funnel=funnel.as_dict(),
                    lookup=lookup.as_dict(),
                    lookup_positions_from_temporal=from_temporal,
                )
                result.points.append(point)
                for name, count in (("funnel", funnel_now), ("Temporal's visibility", seen)):
                    if count != parked:
                        say(f"  warning: {name} shows {count:,} parked, not {parked:,}")
                say(
                    f"  {parked:,} parked in {total_seconds / 60:,.1f} min: worker RSS"
                    f" {memory.now_mib:,.0f} MiB, Temporal server RSS"
                    f" {server_memory.now_mib:,.0f} MiB, funnel p99 {funnel.p99_ms} ms,"
                    f" look-up p99 {lookup.p99_ms} ms"
                )
                if outcome.stopped:
                    break
        finally:
            await conn.close()
        after = meter.snapshot()
    result.cpu_seconds = CpuMeter.delta(before, after)
    result.seconds = result.cpu_seconds.pop("wall")
    return result


def seconds_for_size(per_size: float, budget: float | None, spent: float) -> float:
    """Seconds this size may spend parking: its own limit, or what is left of the budget."""
    return per_size if budget is None else max(min(per_size, budget - spent), 0.0)


async def _visible(temporal: Client, task_queue: str, parked: int) -> int:
    """Runs at the wait step by Temporal's visibility, once it has caught up (or given up)."""
    deadline = time.monotonic() + VISIBILITY_SECONDS
    while True:
        seen = await parking.parked_count(temporal, task_queue)
        if seen >= parked or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(1.0)


async def _api_latency(
    admin: httpx.AsyncClient, journey_id: str, parked: int, rng: random.Random
) -> tuple[Summary, int, Summary, int]:
    """The funnel's latency and its "now" count; look-ups' latency and positions answered."""
    now: list[int] = []

    def read_funnel(path: str, body: dict[str, Any]) -> None:
        stage = next(s for s in body["stages"] if s["stage"] == FUNNEL_STAGE)
        now.append(int(stage["current"]))

    funnel = await time_calls(
        admin, [f"/api/journeys/{journey_id}/funnel"] * CALLS, check=read_funnel
    )
    from_temporal = 0

    def count_positions(path: str, body: dict[str, Any]) -> None:
        nonlocal from_temporal
        running = body["journeys"]["running"]
        from_temporal += sum(1 for r in running if r["position_source"] == "temporal")

    sample = [
        f"/api/customers/{parking.customer_name('park', rng.randrange(parked))}"
        for _ in range(CALLS)
    ]
    lookup = await time_calls(admin, sample, check=count_positions)
    return funnel, now[-1], lookup, from_temporal
