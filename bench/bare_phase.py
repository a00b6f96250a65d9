"""The journeys ceiling: the journey's shape as a bare Temporal workflow on the same server.

One worker in this process, trivial activities, no Postgres, HTTP or SMTP. The first activity
tells the driver the customer is waiting, and the driver signals the reply, as the engine phase
does when the first email arrives.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from .bare_workflow import (
    ENTER_SIGNAL,
    FIRST_ACTIVITY,
    REPLY_SIGNAL,
    SECOND_ACTIVITY,
    BareWorkflow,
)
from .cpu import CpuMeter
from .progress import Ticker, say
from .run_history import fetch_shape
from .stack import Stack

START_CONCURRENCY = 100


@dataclass(frozen=True)
class BareResult:
    customers: int
    seconds: float
    journeys_per_s: float
    starts_seconds: float
    starts_per_s: float
    history_events_per_run: int
    cpu_seconds: dict[str, float]
    history: dict[str, int] = field(default_factory=dict)  # ``run_history.shape``

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Activities:
    def __init__(self) -> None:
        self.waiting: asyncio.Queue[str] = asyncio.Queue()

    @activity.defn(name=FIRST_ACTIVITY)
    async def first(self, customer: str) -> str:
        workflow_id = activity.info().workflow_id
        assert workflow_id is not None
        self.waiting.put_nowait(workflow_id)
        return "sent"

    @activity.defn(name=SECOND_ACTIVITY)
    async def second(self, customer: str) -> str:
        return "sent"


async def run(
    stack: Stack, meter: CpuMeter, *, customers: int, time_limit: float, think_time: float
) -> BareResult:
    say(f"bare Temporal: {customers} workflows (activity, wait for a signal, activity)")
    client = await Client.connect(stack.temporal_address)
    task_queue = f"bench-bare-{uuid.uuid4().hex[:8]}"
    acts = _Activities()
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[BareWorkflow],
        activities=[acts.first, acts.second],
        max_concurrent_activities=100,
    )
    ticker = Ticker("bare workflows", customers, unit="done")
    gate = asyncio.Semaphore(START_CONCURRENCY)
    loop = asyncio.get_running_loop()
    started = completed = 0
    starts_done_at = 0.0

    async def customer(number: int) -> None:
        nonlocal started, completed, starts_done_at
        name = f"bare-{number:06d}"
        async with gate:
            handle = await client.start_workflow(
                BareWorkflow.run,
                name,
                id=f"bench-bare/{task_queue}/{name}",
                task_queue=task_queue,
                start_signal=ENTER_SIGNAL,
                start_signal_args=[name],
            )
        started += 1
        if started == customers:
            starts_done_at = loop.time()
        await handle.result()
        completed += 1
        ticker.update(completed)

    async def reply(workflow_id: str) -> None:
        await asyncio.sleep(think_time)
        try:
            await client.get_workflow_handle(workflow_id).signal(REPLY_SIGNAL)
        except Exception as exc:  # the customer then never completes: the phase times out
            say(f"bare: signal to {workflow_id} failed: {exc!r}")

    async def replier() -> None:
        pending: set[asyncio.Task[None]] = set()
        try:
            while True:
                task = asyncio.create_task(reply(await acts.waiting.get()))
                pending.add(task)
                task.add_done_callback(pending.discard)
        finally:
            for task in pending:
                task.cancel()

    async with worker:
        before = meter.snapshot()
        start = loop.time()
        replying = asyncio.create_task(replier())
        runs = [asyncio.create_task(customer(i)) for i in range(customers)]
        try:
            async with asyncio.timeout(time_limit):
                await asyncio.gather(*runs)
        except TimeoutError:
            raise TimeoutError(
                f"bare: {completed} of {customers} completed after {time_limit:.0f}s"
            ) from None
        finally:
            for task in [*runs, replying]:
                task.cancel()
            await asyncio.gather(*runs, replying, return_exceptions=True)
        after = meter.snapshot()
    ticker.close()
    shape = await fetch_shape(client, f"bench-bare/{task_queue}/bare-{0:06d}")
    cpu = CpuMeter.delta(before, after)
    seconds = cpu.pop("wall")
    starts = starts_done_at - start
    return BareResult(
        customers=customers,
        seconds=round(seconds, 3),
        journeys_per_s=round(customers / seconds, 2),
        starts_seconds=round(starts, 3),
        starts_per_s=round(customers / starts, 1),
        history_events_per_run=shape["events"],
        cpu_seconds=cpu,
        history=shape,
    )
