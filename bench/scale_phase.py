"""Scale, parked customers: worker memory and API latency as more customers wait.

The worker runs as a child process (``journeyman worker``), so its resident memory is its own.
For each size (cumulative: the customers of the smaller sizes stay parked) the bench parks the
extra customers over HTTP, waits until the worker, Temporal and Postgres are idle again, then
reads the worker's RSS, times 50 funnel calls (``GET /api/journeys/{id}/funnel``) and 50
look-ups of random parked customers (``GET /api/customers/{id}``, which asks each running run
for its position over Temporal).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from journeyman.orchestrator.temporal_client import connect_temporal

from . import parking, workload
from .api_latency import time_calls
from .cpu import CpuMeter, settle
from .memory import rss
from .progress import say
from .stack import Stack, compile_journey
from .stats import Summary

CALLS = 50
FUNNEL_STAGE = "waiting"


@dataclass(frozen=True)
class ScalePoint:
    parked: int
    park_seconds: float  # parking the customers this size added
    parked_per_s: float
    settle_seconds: float
    worker_rss_mib: float
    worker_peak_rss_mib: float
    temporal_server_rss_mib: float
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
) -> ScaleResult:
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

        before = meter.snapshot()
        parked = 0
        for size in sizes:
            names = [parking.customer_name("park", i) for i in range(parked, size)]
            seconds = await parking.park(
                client,
                temporal,
                customers=names,
                already=parked,
                task_queue=task_queue,
                clients=clients,
                time_limit=time_limit,
                check=check,
                label=f"parking {size:,}",
            )
            parked = size
            waited = await settle(quiet)
            memory = worker.memory()
            assert server.pid is not None
            funnel, funnel_now, lookup, from_temporal = await _api_latency(
                admin, plan.journey_id, size, rng
            )
            point = ScalePoint(
                parked=size,
                park_seconds=round(seconds, 2),
                parked_per_s=round(len(names) / seconds, 1),
                settle_seconds=waited,
                worker_rss_mib=memory.now_mib,
                worker_peak_rss_mib=memory.peak_mib,
                temporal_server_rss_mib=rss(server.pid).now_mib,
                funnel_now=funnel_now,
                funnel=funnel.as_dict(),
                lookup=lookup.as_dict(),
                lookup_positions_from_temporal=from_temporal,
            )
            result.points.append(point)
            if funnel_now != size:
                say(f"  warning: the funnel shows {funnel_now:,} in the stage, not {size:,}")
            say(
                f"  {size:,} parked: worker RSS {memory.now_mib:,.0f} MiB, funnel p99"
                f" {funnel.p99_ms} ms, look-up p99 {lookup.p99_ms} ms"
            )
        after = meter.snapshot()
    result.cpu_seconds = CpuMeter.delta(before, after)
    result.seconds = result.cpu_seconds.pop("wall")
    return result


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
