"""Reaction: from an event's 2xx answer to the next message reaching the provider.

Customers are parked in the journey's ``wait_for`` first (the worker runs as a child process,
as in production). Once the worker, Temporal and Postgres are idle again, their awaited event
is posted one customer at a time to ``POST /v1/track`` at a steady rate (open loop: a slow
answer does not delay the next post). For each customer the clock starts when the 2xx answer
is back (the event is committed) and stops when the SMTP sink, in its own process, receives
the message the run sends next; both are wall-clock times on this machine.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg
import httpx

from journeyman.orchestrator.storage import connect
from journeyman.orchestrator.temporal_client import connect_temporal

from . import parking, workload
from .cpu import CpuMeter, settle
from .progress import Ticker, say
from .stack import Stack, compile_journey
from .stats import percentile, summarize

MAIL_WAIT_SECONDS = 60.0  # after the last post, for the last message
SHOW_MISSING = 10  # missing customers described in the result


@dataclass(frozen=True)
class ReactionResult:
    customers: int
    rate_per_s: float  # asked for
    posted_per_s: float  # achieved
    park_seconds: float
    reaction: dict[str, float]  # 2xx answer -> message at the sink
    min_ms: float
    # Messages that had not arrived MAIL_WAIT_SECONDS after the last post: counted in the
    # percentiles as arriving when the bench stopped waiting (a lower bound), and described.
    missing: int
    missing_detail: list[dict[str, Any]]
    answer: dict[str, float]  # the POST /v1/track itself
    hops: dict[str, dict[str, float]]  # from the engine's own timestamps
    seconds: float
    cpu_seconds: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def run(
    stack: Stack,
    meter: CpuMeter,
    *,
    customers: int,
    rate: float,
    clients: int,
    time_limit: float,
) -> ReactionResult:
    say(f"reaction: {customers} parked customers released at {rate:g}/s, 2xx to SMTP")
    plan = compile_journey(parking.JOURNEY_SOURCE)
    url = await stack.database("bench_reaction", plan, parking.JOURNEY_SOURCE)
    task_queue = f"bench-reaction-{uuid.uuid4().hex[:8]}"
    temporal = await connect_temporal(stack.temporal_address)
    names = [parking.customer_name("react", i) for i in range(customers)]
    assert stack.temporal is not None
    server = stack.temporal
    stack.sink.arrivals.clear()
    async with (
        stack.api(url) as api,
        stack.worker_process(url, task_queue) as worker,
        workload.api_client(api.url, connections=clients) as client,
    ):

        def check() -> None:
            api.check()
            worker.check()
            stack.sink.check()

        park_seconds = await parking.park(
            client,
            temporal,
            customers=names,
            already=0,
            task_queue=task_queue,
            clients=clients,
            time_limit=time_limit,
            check=check,
        )
        await settle(
            {
                "worker": stack.worker_child_pid,
                "temporal": lambda: server.pid,
                "postgres": stack.postmaster_pid,
            }
        )
        before = meter.snapshot()
        answered, answer_seconds, posted_per_s = await _release(client, names, rate, check)
        arrived, gave_up = await _wait_for_mail(stack, set(names), check)
        after = meter.snapshot()
    cpu = CpuMeter.delta(before, after)
    seconds = cpu.pop("wall")
    reaction = [arrived.get(c, gave_up) - answered[c] for c in names]
    missing = [c for c in names if c not in arrived]
    conn = await connect(url)
    try:
        hops = await _hops(conn, plan.journey_id)
        detail = await _describe(conn, plan.journey_id, missing[:SHOW_MISSING])
    finally:
        await conn.close()
    if missing:
        say(
            f"reaction: {len(missing)} of {customers} messages had not arrived"
            f" {MAIL_WAIT_SECONDS:.0f}s after the last post; first ones: {detail}"
        )
    return ReactionResult(
        customers=customers,
        rate_per_s=rate,
        posted_per_s=round(posted_per_s, 1),
        park_seconds=round(park_seconds, 2),
        reaction=summarize(reaction).as_dict(),
        min_ms=round(percentile(reaction, 0) * 1000, 1),
        missing=len(missing),
        missing_detail=detail,
        answer=summarize(answer_seconds).as_dict(),
        hops=hops,
        seconds=round(seconds, 3),
        cpu_seconds=cpu,
    )


async def _release(
    client: httpx.AsyncClient, names: list[str], rate: float, check: Callable[[], None]
) -> tuple[dict[str, float], list[float], float]:
    """Post each customer's awaited event at ``rate``/s; (answer times, latencies, rate)."""
    answered: dict[str, float] = {}
    latencies: list[float] = []
    ticker = Ticker("releasing", len(names), unit="posted")

    async def post(customer: str) -> None:
        message = workload.track(customer, parking.RELEASE_EVENT, {"answer": "yes"})
        started = time.perf_counter()
        response = await client.post(
            "/v1/track",
            content=json.dumps(message).encode(),
            headers={"content-type": "application/json"},
        )
        at = time.time()
        if response.status_code != 200:
            raise workload.PostError(f"/v1/track answered {response.status_code}: {response.text}")
        latencies.append(time.perf_counter() - started)
        answered[customer] = at
        ticker.update(len(answered))

    loop = asyncio.get_running_loop()
    start = loop.time()
    posts: list[asyncio.Task[None]] = []
    try:
        for number, customer in enumerate(names):
            delay = start + number / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            check()
            posts.append(asyncio.create_task(post(customer)))
        await asyncio.gather(*posts)
    finally:
        for task in posts:
            task.cancel()
        await asyncio.gather(*posts, return_exceptions=True)
        ticker.close()
    window = max(loop.time() - start, 1e-6)
    return answered, latencies, len(names) / window


async def _wait_for_mail(
    stack: Stack, customers: set[str], check: Callable[[], None]
) -> tuple[dict[str, float], float]:
    """Arrival time of each customer's message, and when the bench stopped waiting.

    Returns once all are in, or ``MAIL_WAIT_SECONDS`` after the call with those that are.
    """
    deadline = time.monotonic() + MAIL_WAIT_SECONDS
    arrived: dict[str, float] = {}
    seen = 0
    while True:
        for mail in stack.sink.arrivals[seen:]:
            customer = mail.recipient.split("@", 1)[0]
            if customer in customers and mail.subject.startswith(parking.RELEASED_SUBJECT):
                arrived.setdefault(customer, mail.at)
        seen = len(stack.sink.arrivals)
        if len(arrived) == len(customers) or time.monotonic() > deadline:
            return arrived, time.time()
        check()
        await asyncio.sleep(0.05)


# Per customer, from the engine's own rows: the event reaching the API, the dispatcher's
# signal, the send claimed in the ledger, the provider's answer.
_HOPS_SQL = """
SELECT e.received_at AS ingested, o.delivered_at AS signalled,
       d.created_at AS claimed, d.updated_at AS sent
FROM events e
JOIN outbox o ON o.event_id = e.id AND o.journey_id = $1
JOIN deliveries d ON d.customer_id = e.customer_id AND d.journey_id = $1
WHERE e.event = $2
"""
HOPS = [
    ("event received by the API -> signalled to the run", "ingested", "signalled"),
    ("signalled -> send claimed (workflow task, activity start)", "signalled", "claimed"),
    ("send claimed -> SMTP accepted", "claimed", "sent"),
]


async def _hops(conn: asyncpg.Connection, journey_id: str) -> dict[str, dict[str, float]]:
    rows = await conn.fetch(_HOPS_SQL, journey_id, parking.RELEASE_EVENT)
    out: dict[str, dict[str, float]] = {}
    for label, start, end in HOPS:
        seconds = [
            (r[end] - r[start]).total_seconds()
            for r in rows
            if r[start] is not None and r[end] is not None
        ]
        summary = summarize(seconds)
        out[label] = {"p50_ms": summary.p50_ms, "p99_ms": summary.p99_ms}
    return out


async def _describe(
    conn: asyncpg.Connection, journey_id: str, customers: list[str]
) -> list[dict[str, Any]]:
    """Where each customer's event got to: outbox row, ledger row, run status."""
    rows = await conn.fetch(
        "SELECT c AS customer_id, r.status AS run,"
        " (SELECT CASE WHEN o.delivered_at IS NOT NULL THEN 'delivered'"
        "   ELSE 'pending, ' || o.attempts || ' attempts' || coalesce(': ' || o.last_error, '')"
        "   END FROM outbox o JOIN events e ON e.id = o.event_id"
        "   WHERE o.customer_id = c AND o.journey_id = $1 AND e.event = $3"
        "   ORDER BY o.id DESC LIMIT 1) AS signal,"
        " (SELECT d.status FROM deliveries d WHERE d.customer_id = c AND d.journey_id = $1"
        "   ORDER BY d.created_at DESC LIMIT 1) AS send"
        " FROM unnest($2::text[]) AS c"
        " LEFT JOIN journey_runs r ON r.customer_id = c AND r.journey_id = $1",
        journey_id,
        customers,
        parking.RELEASE_EVENT,
    )
    return [dict(r) for r in rows]
