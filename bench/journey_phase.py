"""Engine journeys: customers completed per second through the whole engine.

Entry events go over HTTP (identify + track per customer) -> ingest -> outbox -> dispatcher ->
signal-with-start -> the journey worker -> SMTP into the sink. ``think_time`` after a
customer's first email reaches the sink, the bench posts their reply over HTTP; the worker
then sends the second email and the run completes. Done when every run is ``completed`` in
``journey_runs``.

A reply that reaches the run before its ``wait_for`` has started is not matched by it; the
bench detects such runs and posts the reply again (see ``replies``), and reports how many.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg
from temporalio.client import Client

from journeyman.orchestrator.ingest import workflow_id_for
from journeyman.orchestrator.storage import connect
from journeyman.orchestrator.temporal_client import connect_temporal

from . import timeline, workload
from .cpu import CpuMeter
from .progress import Ticker, say
from .replies import Replies
from .run_history import fetch_shape
from .stack import Stack, compile_journey

POLL_SECONDS = 0.1
CUSTOMERS_PER_ENTRY_BATCH = 50  # identify + track each: 100 messages per request


@dataclass(frozen=True)
class EngineResult:
    customers: int
    seconds: float
    journeys_per_s: float
    replies_reposted: int
    lost_reply_checks: int
    retried_5xx: int
    emails: int
    history_events_per_run: int
    timeline: dict[str, Any]
    cpu_seconds: dict[str, float]
    history: dict[str, int] = field(default_factory=dict)  # ``run_history.shape``

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _entry_bodies(customers: list[str]) -> list[tuple[bytes, int]]:
    out = []
    for start in range(0, len(customers), CUSTOMERS_PER_ENTRY_BATCH):
        messages = []
        for number, customer in enumerate(customers[start : start + CUSTOMERS_PER_ENTRY_BATCH]):
            messages.append(workload.identify(customer, start + number))
            messages.append(workload.track(customer, workload.ENTRY_EVENT, {"plan": "basic"}))
        out.append((workload.body(messages), len(messages)))
    return out


def _reply_bodies(customers: list[str]) -> list[tuple[bytes, int]]:
    out = []
    for start in range(0, len(customers), 100):
        chunk = customers[start : start + 100]
        replies = [workload.track(c, workload.REPLY_EVENT, {"answer": "yes"}) for c in chunk]
        out.append((workload.body(replies), len(replies)))
    return out


async def run(
    stack: Stack,
    meter: CpuMeter,
    *,
    customers: int,
    clients: int,
    time_limit: float,
    think_time: float,
) -> EngineResult:
    say(f"engine: {customers} customers through send -> wait_for -> send, end to end")
    plan = compile_journey(workload.JOURNEY_SOURCE)
    url = await stack.database("bench_journeys", plan, workload.JOURNEY_SOURCE)
    task_queue = f"bench-journeys-{uuid.uuid4().hex[:8]}"
    names = [f"jrn-{i:06d}" for i in range(customers)]
    entries = _entry_bodies(names)
    stack.sink.arrivals.clear()
    replies = Replies(plan.journey_id, first_subject="Welcome", think_time=think_time)
    temporal = await connect_temporal(stack.temporal_address)
    ticker = Ticker("engine journeys", customers, unit="done")
    posts: set[asyncio.Task[workload.PostStats]] = set()
    stats = workload.PostStats()
    conn = await connect(url)
    try:
        async with (
            stack.api(url) as api,
            stack.worker(url, task_queue) as worker,
            workload.api_client(api.url, connections=clients) as client,
        ):

            def post(bodies: list[tuple[bytes, int]]) -> None:
                task = asyncio.create_task(
                    workload.post_all(client, bodies, concurrency=clients, stats=stats)
                )
                posts.add(task)

            def check() -> None:
                stack.sink.check()
                api.check()
                worker.check()
                for task in [t for t in posts if t.done()]:
                    posts.discard(task)
                    task.result()

            started_db = await conn.fetchval("SELECT clock_timestamp()")
            before = meter.snapshot()
            try:
                post(entries)
                await _drive(stack, conn, temporal, replies, ticker, post, check, time_limit)
            finally:
                for task in posts:
                    task.cancel()
                await asyncio.gather(*posts, return_exceptions=True)
            after = meter.snapshot()
            ticker.close()
        cpu = CpuMeter.delta(before, after)
        seconds = cpu.pop("wall")
        shape = await fetch_shape(temporal, workflow_id_for(plan.journey_id, names[0]))
        hops = await timeline.read(
            conn,
            started=started_db,
            journey_id=plan.journey_id,
            entry_event=workload.ENTRY_EVENT,
            reply_event=workload.REPLY_EVENT,
            first_step=workload.FIRST_STEP,
            second_step=workload.SECOND_STEP,
        )
    finally:
        await conn.close()
    return EngineResult(
        customers=customers,
        seconds=round(seconds, 3),
        journeys_per_s=round(customers / seconds, 2),
        replies_reposted=replies.reposted,
        lost_reply_checks=replies.described,
        retried_5xx=stats.retried,
        emails=len(stack.sink.arrivals),
        history_events_per_run=shape["events"],
        timeline=hops,
        cpu_seconds=cpu,
        history=shape,
    )


async def _drive(
    stack: Stack,
    conn: asyncpg.Connection,
    temporal: Client,
    replies: Replies,
    ticker: Ticker,
    post: Callable[[list[tuple[bytes, int]]], None],
    check: Callable[[], None],
    time_limit: float,
) -> None:
    """Reply to first emails, re-post lost replies, until every run has completed."""
    deadline = time.monotonic() + time_limit
    completed = 0
    while completed < ticker.total:
        await asyncio.sleep(POLL_SECONDS)
        check()
        to_reply = replies.from_mail(stack.sink.arrivals)
        to_reply += await replies.lost(conn, temporal)
        if to_reply:
            post(_reply_bodies(to_reply))
        completed = await conn.fetchval(
            "SELECT count(*) FROM journey_runs WHERE journey_id = $1 AND status = 'completed'",
            replies.journey_id,
        )
        ticker.update(completed, f"replied {len(replies.posted)}")
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"engine: {completed} of {ticker.total} runs completed after {time_limit:.0f}s"
                f" ({len(replies.posted)} replied, {len(replies.done)} second emails)"
            )
