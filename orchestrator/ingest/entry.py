"""Who enters a journey, and which runs an event goes to: re-entry policies and entry caps.

- ``once``: one run per customer, ever (workflow id ``journey/<journey>/<customer>``).
- ``after``: again once the previous run has ended and the cool-down has passed.
- ``concurrent``: one run per value of an entry event property (one per cart); events that
  carry the property go to the run with that value, events without it to every active run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from journeyman.workflows.conditions import MISSING, lookup
from journeyman.workflows.plan import Plan

ACTIVE = ("entering", "active")


@dataclass(frozen=True)
class Run:
    workflow_id: str
    version: str
    status: str
    entry_key: str | None
    updated_at: datetime

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


def workflow_id_for(journey_id: str, customer_id: str, sequence: int = 1) -> str:
    """The run's workflow id: Temporal dedupes starts on it. Later runs get a sequence number."""
    base = f"journey/{journey_id}/{customer_id}"
    return base if sequence == 1 else f"{base}/{sequence}"


def entry_key(plan: Plan, properties: Mapping[str, Any]) -> str | None:
    """The concurrency key of an entry event, as text; None when the event lacks it."""
    path = plan.entry.reentry.key
    if path is None:
        return None
    value = lookup(properties, path)
    if value is None or value is MISSING or isinstance(value, dict | list):
        return None
    return str(value)


async def customer_runs(conn: asyncpg.Connection, journey_id: str, customer_id: str) -> list[Run]:
    rows = await conn.fetch(
        "SELECT workflow_id, version, status, entry_key, updated_at FROM journey_runs"
        " WHERE journey_id = $1 AND customer_id = $2 ORDER BY entered_at",
        journey_id,
        customer_id,
    )
    return [Run(**dict(row)) for row in rows]


def targets(plan: Plan | None, runs: Sequence[Run], properties: Mapping[str, Any]) -> list[Run]:
    """The active runs an event goes to."""
    active = [run for run in runs if run.active]
    if plan is not None and plan.entry.reentry.mode == "concurrent":
        key = entry_key(plan, properties)
        if key is not None:
            return [run for run in active if run.entry_key == key]
    return active


def may_enter(
    plan: Plan, runs: Sequence[Run], properties: Mapping[str, Any], now: datetime
) -> bool:
    """Whether the re-entry policy lets this customer start another run now."""
    policy = plan.entry.reentry
    if policy.mode == "once":
        return not runs
    if policy.mode == "after":
        if any(run.active for run in runs):
            return False
        last = max((run.updated_at for run in runs), default=None)
        return last is None or now >= last + timedelta(seconds=policy.cooldown_seconds)
    key = entry_key(plan, properties)
    return key is not None and not any(run.active and run.entry_key == key for run in runs)


async def under_cap(conn: asyncpg.Connection, plan: Plan) -> bool:
    """Whether the journey's entry caps leave room for one more entrant (locks the journey's
    entries until the transaction ends, so concurrent batches cannot overshoot)."""
    total, today = await entries_so_far(conn, plan)
    return room_for_one(plan, total, today)


async def entries_so_far(conn: asyncpg.Connection, plan: Plan) -> tuple[int, int]:
    """The journey's runs, in all and entered today (UTC), counted once its caps are set;
    locks its entries until the transaction ends (no count without a cap)."""
    cap = plan.entry.cap
    if cap.total is None and cap.per_day is None:
        return 0, 0
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('entry/' || $1))", plan.journey_id)
    total = today = 0
    if cap.total is not None:
        total = await conn.fetchval(
            "SELECT count(*) FROM journey_runs WHERE journey_id = $1", plan.journey_id
        )
    if cap.per_day is not None:
        today = await conn.fetchval(
            "SELECT count(*) FROM journey_runs WHERE journey_id = $1"
            " AND entered_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
            plan.journey_id,
        )
    return total, today


def room_for_one(plan: Plan, total: int, today: int) -> bool:
    """Whether the caps let one more customer in, with ``total`` and ``today`` entered."""
    cap = plan.entry.cap
    if cap.total is not None and total >= cap.total:
        return False
    return cap.per_day is None or today < cap.per_day


async def enter(
    conn: asyncpg.Connection,
    plan: Plan,
    customer_id: str,
    runs: Sequence[Run],
    properties: Mapping[str, Any],
) -> str | None:
    """Insert the new run's row (so later events route to it at once); its workflow id, or
    None when a concurrent request entered the customer first."""
    workflow_id = workflow_id_for(plan.journey_id, customer_id, len(runs) + 1)
    inserted: str | None = await conn.fetchval(
        "INSERT INTO journey_runs (journey_id, customer_id, version, workflow_id, entry_key)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING workflow_id",
        plan.journey_id,
        customer_id,
        plan.version,
        workflow_id,
        entry_key(plan, properties),
    )
    return inserted
