"""Parking many customers at the pace the engine takes them, counted in Postgres.

The scale phase parks up to 100,000 customers. Posting them all at once would leave a queue
of starts in the outbox and in Temporal, and a count through Temporal's visibility (eventually
consistent, and a query over every run each time) costs the server the CPU that parking needs.
So the customers' entries go out through ``POST /v1/batch`` from several concurrent clients,
kept at most ``window`` customers ahead of those counted in the stage, and the count comes from
the funnel's own counter in Postgres (``stage_kpis.entered``, written in the transaction that
records the entry, one workflow task before the run starts its wait). Parking stops early,
and says why, at the time limit or when the machine runs short of memory (the in-memory
Temporal dev server keeps every run's history in RAM).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from . import parking, workload
from .memory import available_mib
from .progress import Ticker

POLL_SECONDS = 0.5
# After a stop, the customers already posted still enter; wait for them this long at most.
DRAIN_SECONDS = 180.0
RATE_WINDOW_SECONDS = 60.0  # the rate the progress line's ETA uses


@dataclass(frozen=True)
class Parked:
    """How a parking step ended."""

    reached: int  # customers counted in the stage at the end, all steps included
    posted: int  # customers whose entry was accepted, all steps included
    seconds: float
    stopped: str = ""  # why it stopped short of its size; empty when it got there


@dataclass
class _Flow:
    posted: int  # entries handed to a client, accepted or in flight
    accepted: int
    counted: int


async def park(
    client: httpx.AsyncClient,
    *,
    customers: list[str],
    already: int,
    count: Callable[[], Awaitable[int]],
    clients: int,
    window: int,
    time_limit: float,
    min_free_mib: float,
    check: Callable[[], None],
    label: str,
    drain_seconds: float = DRAIN_SECONDS,
) -> Parked:
    """Enter ``customers`` (``already`` are parked) until all are counted or a limit stops it.

    ``count`` returns the customers in the stage now. ``check`` raises if a role has died.
    """
    total = already + len(customers)
    flow = _Flow(posted=already, accepted=already, counted=already)
    room = asyncio.Event()
    starts = iter(range(0, len(customers), parking.CUSTOMERS_PER_REQUEST))

    async def poster() -> None:
        # The clients share one iterator of request starts: each request goes out once.
        for start in starts:
            chunk = customers[start : start + parking.CUSTOMERS_PER_REQUEST]
            while flow.posted + len(chunk) - flow.counted > window:
                room.clear()
                await room.wait()
            flow.posted += len(chunk)
            bodies = parking.entry_bodies(chunk, first_number=already + start)
            await workload.post_all(client, bodies, concurrency=1)
            flow.accepted += len(chunk)

    ticker = Ticker(label, total, unit="parked")
    started = time.monotonic()
    recent: deque[tuple[float, int]] = deque([(started, already)])
    posting = asyncio.gather(*(poster() for _ in range(max(clients, 1))))
    stopped = ""
    try:
        while flow.counted < total:
            await asyncio.sleep(POLL_SECONDS)
            check()
            if posting.done():
                posting.result()  # raises what failed the posts
            flow.counted = await count()
            room.set()
            now = time.monotonic()
            recent.append((now, flow.counted))
            while now - recent[0][0] > RATE_WINDOW_SECONDS and len(recent) > 2:
                recent.popleft()
            ticker.update(flow.counted, _note(flow, recent, total))
            free = available_mib()
            if now - started > time_limit:
                stopped = f"its {time_limit:,.0f} s of parking time were up"
            elif free is not None and free < min_free_mib:
                stopped = f"the machine had {free:,.0f} MiB of memory left"
            if stopped:
                break
    finally:
        if not posting.done():
            posting.cancel()
            await asyncio.gather(posting, return_exceptions=True)
        ticker.close()
    seconds = time.monotonic() - started
    if stopped:
        flow.counted = await _drain(flow, count, check, drain_seconds)
    return Parked(
        reached=flow.counted, posted=flow.accepted, seconds=round(seconds, 2), stopped=stopped
    )


async def _drain(
    flow: _Flow, count: Callable[[], Awaitable[int]], check: Callable[[], None], limit: float
) -> int:
    """Let the customers already accepted enter, so the figures are taken at a settled size."""
    deadline = time.monotonic() + limit
    counted = await count()
    while counted < flow.accepted and time.monotonic() < deadline:
        await asyncio.sleep(POLL_SECONDS)
        check()
        counted = await count()
    return counted


def _note(flow: _Flow, recent: deque[tuple[float, int]], total: int) -> str:
    (t0, c0), (t1, c1) = recent[0], recent[-1]
    rate = (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0
    eta = f"{(total - c1) / rate / 60:,.0f} min left" if rate > 0 else "rate unknown"
    return f"posted {flow.posted:,}; last minute {rate:,.1f}/s; {eta}"
