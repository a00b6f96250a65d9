"""Experiments: which variant each entrant got, and the winner once the decision rule fires.

The decision compares each variant's conversion rate (the metric event within the window after
assignment) with the control's by a two-proportion z-test; a variant wins only when it beats
the control at the asked confidence, otherwise the control does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import Any

import asyncpg


@dataclass(frozen=True)
class VariantResult:
    name: str
    entrants: int
    conversions: int

    @property
    def rate(self) -> float:
        return self.conversions / self.entrants if self.entrants else 0.0


def pick_winner(results: Sequence[VariantResult], control: str, confidence: float) -> str:
    """The best variant that beats the control significantly (one-sided), else the control."""
    base = next(r for r in results if r.name == control)
    z_needed = NormalDist().inv_cdf(confidence)
    best, best_rate = control, base.rate
    for result in results:
        if result.name == control or result.rate <= best_rate:
            continue
        pooled = (result.conversions + base.conversions) / (result.entrants + base.entrants)
        spread = math.sqrt(pooled * (1 - pooled) * (1 / result.entrants + 1 / base.entrants))
        if spread > 0 and (result.rate - base.rate) / spread >= z_needed:
            best, best_rate = result.name, result.rate
    return best


async def winner(conn: asyncpg.Connection, *, journey_id: str, step_id: str) -> str | None:
    found: str | None = await conn.fetchval(
        "SELECT winner FROM experiment_decisions WHERE journey_id = $1 AND step_id = $2",
        journey_id,
        step_id,
    )
    return found


async def assign(
    conn: asyncpg.Connection,
    *,
    journey_id: str,
    step_id: str,
    customer_id: str,
    variant: str,
    at: datetime,
) -> str:
    """Record the customer's variant once; a repeated call returns the first one."""
    found: str = await conn.fetchval(
        "INSERT INTO experiment_assignments (journey_id, step_id, customer_id, variant,"
        " assigned_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (journey_id, step_id, customer_id)"
        " DO UPDATE SET variant = experiment_assignments.variant RETURNING variant",
        journey_id,
        step_id,
        customer_id,
        variant,
        at,
    )
    return found


async def results(
    conn: asyncpg.Connection,
    *,
    journey_id: str,
    step_id: str,
    metric_event: str,
    window: timedelta,
    now: datetime,
    accept: Callable[[Mapping[str, Any]], bool],
) -> tuple[list[VariantResult], datetime | None]:
    """Conversions per variant among entrants whose window has closed, and the first entry."""
    first: datetime | None = await conn.fetchval(
        "SELECT min(assigned_at) FROM experiment_assignments"
        " WHERE journey_id = $1 AND step_id = $2",
        journey_id,
        step_id,
    )
    rows = await conn.fetch(
        "SELECT a.variant, a.customer_id, e.properties"
        " FROM experiment_assignments a LEFT JOIN events e"
        "   ON e.customer_id = a.customer_id AND e.type = 'track' AND e.event = $3"
        "  AND e.occurred_at >= a.assigned_at AND e.occurred_at <= a.assigned_at + $4::interval"
        " WHERE a.journey_id = $1 AND a.step_id = $2"
        "   AND a.assigned_at <= $5::timestamptz - $4::interval",
        journey_id,
        step_id,
        metric_event,
        window,
        now,
    )
    entrants: dict[str, set[str]] = {}
    converted: dict[str, set[str]] = {}
    for row in rows:
        entrants.setdefault(row["variant"], set()).add(row["customer_id"])
        if row["properties"] is not None and accept(row["properties"]):
            converted.setdefault(row["variant"], set()).add(row["customer_id"])
    found = [
        VariantResult(name, len(ids), len(converted.get(name, ())))
        for name, ids in entrants.items()
    ]
    return found, first


async def decide(
    conn: asyncpg.Connection,
    *,
    journey_id: str,
    step_id: str,
    winner_name: str,
    found: Sequence[VariantResult],
) -> str:
    """Store the decision once; concurrent deciders all get the first one stored."""
    payload = {r.name: {"entrants": r.entrants, "conversions": r.conversions} for r in found}
    stored: str = await conn.fetchval(
        "INSERT INTO experiment_decisions (journey_id, step_id, winner, results)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (journey_id, step_id)"
        " DO UPDATE SET winner = experiment_decisions.winner RETURNING winner",
        journey_id,
        step_id,
        winner_name,
        payload,
    )
    return stored
