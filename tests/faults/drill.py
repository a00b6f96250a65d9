"""Running a drill: customers play their scripts through the retrying client while the faults
happen, then everything is given time to settle."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from .chaos import Fault, inflict
from .client import RetryingClient
from .cluster import WRITE_KEY, Cluster
from .traffic import JOURNEY, Customer, Gate, Move, expected_place, expected_sends, moves

POLL_SECONDS = 0.5
# What asyncpg raises while Postgres restarts, depending on the moment it is caught in.
DATABASE_AWAY = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
FINAL_STATUSES = frozenset({"sent", "unknown", "failed", "skipped", "capped", "suppressed"})


@dataclass
class LedgerWatch:
    """The drill journey's delivery ledger, re-read a few times a second (through outages)."""

    database_url: str
    # customer -> send step -> status
    rows: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def run(self) -> None:
        conn: asyncpg.Connection | None = None
        try:
            while True:
                try:
                    if conn is None or conn.is_closed():
                        conn = None
                        conn = await asyncpg.connect(self.database_url, timeout=5)
                    found = await conn.fetch(
                        "SELECT customer_id, step_id, status FROM deliveries WHERE journey_id = $1",
                        JOURNEY,
                    )
                except DATABASE_AWAY:
                    # Postgres is restarting: read again, on a new connection, once it is back.
                    if conn is not None:
                        conn.terminate()
                        conn = None
                else:
                    async with self.changed:
                        news = False
                        for row in found:
                            steps = self.rows[row["customer_id"]]
                            news |= steps.get(row["step_id"]) != row["status"]
                            steps[row["step_id"]] = row["status"]
                        if news:  # waking hundreds of waiters for nothing costs CPU
                            self.changed.notify_all()
                await asyncio.sleep(POLL_SECONDS)
        finally:
            if conn is not None:
                conn.terminate()

    def passed(self, customer: str, gate: Gate) -> bool:
        status = self.rows[customer].get(gate.step)
        return status is not None and (not gate.final or status in FINAL_STATUSES)

    async def wait(self, customer: str, gate: Gate) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: self.passed(customer, gate))


async def _play(
    customer: Customer, script: list[Move], client: RetryingClient, ledger: LedgerWatch
) -> None:
    await asyncio.sleep(customer.start)
    for move in script:
        if move.gate is not None:
            await ledger.wait(customer.user_id, move.gate)
        client.enqueue(move.messages)


async def _alongside(work: Awaitable[Any], background: list[asyncio.Task[None]]) -> None:
    """Await ``work``, unless a background task (which never ends by itself) fails first."""
    task = asyncio.ensure_future(work)
    await asyncio.wait([task, *background], return_when=asyncio.FIRST_COMPLETED)
    for helper in background:
        if helper.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            helper.result()  # raises what stopped it
            raise AssertionError(f"{helper!r} stopped")
    task.result()


@dataclass
class Outcome:
    client: RetryingClient
    sent_ids: set[str]
    seconds: float
    settled: bool


async def run_drill(
    cluster: Cluster,
    group: list[Customer],
    faults: list[Fault],
    rng: random.Random,
    *,
    first_fault_after: float,
    settle_timeout: float = 150.0,
) -> Outcome:
    """Play every customer's script through the faults; return once all has settled."""
    started = time.monotonic()
    client = RetryingClient(cluster.api_urls(), WRITE_KEY, random.Random(rng.random()))
    ledger = LedgerWatch(cluster.database_url)
    scripts = {c.user_id: moves(c, rng) for c in group}
    sent_ids = {m["messageId"] for s in scripts.values() for mv in s for m in mv.messages}
    background = [asyncio.create_task(client.run()), asyncio.create_task(ledger.run())]
    try:
        players = asyncio.gather(*(_play(c, scripts[c.user_id], client, ledger) for c in group))
        chaos = inflict(cluster, faults, first_after=first_fault_after)
        # Both to the end; a failing client (a batch refused for good) ends it at once.
        await _alongside(asyncio.gather(players, chaos), background)
        cluster.note("every customer has played their part")
        await _alongside(client.drain(), background)
        cluster.note("every message accepted")
        settled = await _settle(cluster, group, within=settle_timeout)
        cluster.note("settled" if settled else "did not settle in time")
    finally:
        for task in background:
            task.cancel()
            # A helper that failed has already raised its error through _alongside.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    return Outcome(client, sent_ids, time.monotonic() - started, settled)


async def _settle(cluster: Cluster, group: list[Customer], *, within: float) -> bool:
    """Until every due send is handled, everyone is where the script says, and the outbox is
    empty; False if that takes longer than ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(*DATABASE_AWAY):
            if await _all_done(cluster.database_url, group):
                return True
        await asyncio.sleep(1.0)
    return False


async def _all_done(database_url: str, group: list[Customer]) -> bool:
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        handled = {
            (r["customer_id"], r["step_id"])
            for r in await conn.fetch(
                "SELECT customer_id, step_id FROM deliveries"
                " WHERE journey_id = $1 AND status <> 'sending'",
                JOURNEY,
            )
        }
        places = {
            r["customer_id"]: (r["status"], r["stage"])
            for r in await conn.fetch(
                "SELECT customer_id, status, stage FROM journey_runs WHERE journey_id = $1",
                JOURNEY,
            )
        }
        backlog = await conn.fetchval("SELECT count(*) FROM outbox WHERE delivered_at IS NULL")
    finally:
        await conn.close()
    return backlog == 0 and all(
        places.get(c.user_id) == expected_place(c)
        and all((c.user_id, step) in handled for step in expected_sends(c))
        for c in group
    )
