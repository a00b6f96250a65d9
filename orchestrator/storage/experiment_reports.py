"""Experiment and holdout results: entrants and conversions per group, with their uncertainty.

An entrant of an experiment is a row of ``experiment_assignments``; the run it belongs to is
the customer's run of the journey that entered closest before the assignment (assignments are
written once per customer and step, runs may be several). It converts

- by the step's metric (what the decision rule counts, as ``experiments.results`` does): the
  metric event, its ``where`` tests passing, within the window after the assignment. It is
  counted once the window has closed; until then it is *pending*.
- by the journey's goal: its run converted (``journey_runs.status = 'converted'``). It is
  counted once the outcome is known: the run has ended, or the goal's ``within`` since the
  run's entry has passed; until then it is pending.

The holdout compares the runs of the versions that hold customers out, treated against held
out, by the journey's goal with the same rule. Runs still ``entering`` are not compared: their
holdout draw has not been recorded yet.

Every read is one journey's (and step's) rows through an index: assignments by their key,
runs by ``(journey_id, customer_id)`` and ``(journey_id, version, holdout)`` (migration 0013),
metric events by ``(customer_id, event, occurred_at)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg

from journeyman.orchestrator.proportions import (
    difference_interval,
    two_proportion_p_value,
    wilson,
)
from journeyman.workflows.conditions import matches_properties
from journeyman.workflows.plan import EventMatch, ExperimentStep, Plan, walk

from .journeys import load_plan


async def report_plans(
    conn: asyncpg.Connection | asyncpg.Pool,
    first: Plan,
    versions: Sequence[str],
    *,
    only_first: bool,
) -> list[Plan]:
    """The plans a report covers: ``first`` alone, or ``first`` (the active version) then the
    journey's other ``versions``, newest first."""
    if only_first:
        return [first]
    others = [v for v in reversed(versions) if v != first.version]
    return [first] + [await load_plan(conn, journey_id=first.journey_id, version=v) for v in others]


def experiment_steps(plans: Sequence[Plan]) -> list[tuple[ExperimentStep, str]]:
    """Each experiment step once (by id) with its stage, as the first plan that has it
    defines it."""
    found: dict[str, tuple[ExperimentStep, str]] = {}
    for plan in plans:
        for stage in plan.stages:
            for step in walk(stage.steps):
                if isinstance(step, ExperimentStep) and step.id not in found:
                    found[step.id] = (step, stage.name)
    return list(found.values())


@dataclass(frozen=True)
class MetricConversion:
    """Conversion by an experiment's metric event within ``window`` of the assignment."""

    match: EventMatch
    window: timedelta


@dataclass(frozen=True)
class GoalConversion:
    """Conversion by the journey's goal; ``windows`` maps each version to its goal's
    ``within`` (None: that version has no goal, so only ended runs have an outcome)."""

    windows: Mapping[str, timedelta | None]


@dataclass(frozen=True)
class GroupCounts:
    name: str
    entrants: int  # with a known outcome: the denominator
    conversions: int
    pending: int  # entered, outcome not known yet: not counted


@dataclass(frozen=True)
class Rate:
    """A group's conversion rate with its Wilson interval."""

    entrants: int
    conversions: int
    pending: int
    rate: float | None  # None without entrants
    rate_low: float
    rate_high: float


@dataclass(frozen=True)
class Comparison:
    """A group against its baseline (the control, or the held-out runs)."""

    difference: float | None  # rate - baseline rate, absolute
    difference_low: float | None  # Newcombe's interval
    difference_high: float | None
    relative_difference: float | None  # difference / baseline rate
    p_value: float | None  # two-sided, pooled two-proportion z-test
    significant: bool | None  # p_value below 1 - confidence


@dataclass(frozen=True)
class StoredDecision:
    winner: str
    decided_at: datetime
    results: dict[str, Any]  # variant -> {"entrants", "conversions"} the decision saw


def rate_of(counts: GroupCounts, confidence: float) -> Rate:
    low, high = wilson(counts.conversions, counts.entrants, confidence)
    return Rate(
        entrants=counts.entrants,
        conversions=counts.conversions,
        pending=counts.pending,
        rate=counts.conversions / counts.entrants if counts.entrants else None,
        rate_low=low,
        rate_high=high,
    )


def compare(baseline: GroupCounts, group: GroupCounts, confidence: float) -> Comparison:
    """``group`` against ``baseline``; every field None when either has no entrants."""
    if not baseline.entrants or not group.entrants:
        return Comparison(None, None, None, None, None, None)
    base_rate = baseline.conversions / baseline.entrants
    difference = group.conversions / group.entrants - base_rate
    low, high = difference_interval(
        baseline.conversions, baseline.entrants, group.conversions, group.entrants, confidence
    )
    p_value = two_proportion_p_value(
        baseline.conversions, baseline.entrants, group.conversions, group.entrants
    )
    return Comparison(
        difference=difference,
        difference_low=low,
        difference_high=high,
        relative_difference=difference / base_rate if base_rate else None,
        p_value=p_value,
        significant=None if p_value is None else p_value < 1 - confidence,
    )


# Whether run ``r`` converted by the journey's goal; NULL while that is not known yet.
# ``w.seconds`` is the goal's ``within`` for the run's version (NULL: no goal, or unknown).
_GOAL_OUTCOME: Final = """CASE
    WHEN r.status = 'converted' OR r.converted_at IS NOT NULL THEN true
    WHEN r.status IN ('exited', 'completed') THEN false
    WHEN w.seconds IS NOT NULL AND r.entered_at + make_interval(secs => w.seconds) <= $now
        THEN false
    END"""

_ASSIGNMENTS_SQL: Final = """
SELECT a.variant, a.assigned_at, GOAL_OUTCOME AS goal_outcome,
       CASE WHEN $4::text IS NOT NULL THEN ARRAY(
           SELECT e.properties FROM events e
           WHERE e.customer_id = a.customer_id AND e.type = 'track' AND e.event = $4
             AND e.occurred_at >= a.assigned_at
             AND e.occurred_at <= a.assigned_at + $5::interval
           ORDER BY e.occurred_at
           LIMIT $6::bigint) END AS hits
FROM experiment_assignments a
LEFT JOIN LATERAL (
    SELECT r.version, r.status, r.entered_at, r.converted_at
    FROM journey_runs r
    WHERE r.journey_id = a.journey_id AND r.customer_id = a.customer_id
    ORDER BY r.entered_at > a.assigned_at,
             abs(extract(epoch FROM r.entered_at - a.assigned_at)), r.workflow_id
    LIMIT 1
) r ON true
LEFT JOIN unnest($8::text[], $9::float8[]) AS w(version, seconds) ON w.version = r.version
WHERE a.journey_id = $1 AND a.step_id = $2 AND ($3::text IS NULL OR r.version = $3)
""".replace("GOAL_OUTCOME", _GOAL_OUTCOME.replace("$now", "$7::timestamptz"))


def _windows(conversion: GoalConversion | None) -> tuple[list[str], list[float | None]]:
    items = sorted(conversion.windows.items()) if conversion is not None else []
    return (
        [version for version, _ in items],
        [None if window is None else window.total_seconds() for _, window in items],
    )


async def variant_counts(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    journey_id: str,
    step_id: str,
    conversion: MetricConversion | GoalConversion,
    now: datetime,
    version: str | None = None,
) -> dict[str, GroupCounts]:
    """Entrants, conversions and pending entrants per variant of one experiment step.

    With ``version``, only entrants whose run is of that version (its current one).
    """
    metric = conversion if isinstance(conversion, MetricConversion) else None
    goal = conversion if isinstance(conversion, GoalConversion) else None
    rows = await conn.fetch(
        _ASSIGNMENTS_SQL,
        journey_id,
        step_id,
        version,
        metric.match.event if metric else None,
        metric.window if metric else timedelta(0),
        # Without property tests, one event in the window settles it: read no more.
        None if metric is None or metric.match.where else 1,
        now,
        *_windows(goal),
    )
    tallies: dict[str, list[int]] = {}  # variant -> [entrants, conversions, pending]
    for row in rows:
        tally = tallies.setdefault(row["variant"], [0, 0, 0])
        converted: bool | None = row["goal_outcome"]
        if metric is not None:
            closed = row["assigned_at"] + metric.window <= now
            converted = (
                any(matches_properties(metric.match, hit) for hit in row["hits"])
                if closed
                else None
            )
        if converted is None:
            tally[2] += 1
        else:
            tally[0] += 1
            tally[1] += int(converted)
    return {name: GroupCounts(name, *t) for name, t in tallies.items()}


async def stored_decision(
    conn: asyncpg.Connection | asyncpg.Pool, *, journey_id: str, step_id: str
) -> StoredDecision | None:
    row = await conn.fetchrow(
        "SELECT winner, decided_at, results FROM experiment_decisions"
        " WHERE journey_id = $1 AND step_id = $2",
        journey_id,
        step_id,
    )
    if row is None:
        return None
    return StoredDecision(row["winner"], row["decided_at"], dict(row["results"]))


_HOLDOUT_SQL: Final = """
SELECT r.holdout,
       count(*) FILTER (WHERE o.converted IS NOT NULL) AS entrants,
       count(*) FILTER (WHERE o.converted) AS conversions,
       count(*) FILTER (WHERE o.converted IS NULL) AS pending
FROM journey_runs r
JOIN unnest($2::text[], $3::float8[]) AS w(version, seconds) ON w.version = r.version
CROSS JOIN LATERAL (SELECT GOAL_OUTCOME AS converted) o
WHERE r.journey_id = $1 AND r.version = ANY($2::text[]) AND r.status <> 'entering'
GROUP BY r.holdout
""".replace("GOAL_OUTCOME", _GOAL_OUTCOME.replace("$now", "$4::timestamptz"))


async def holdout_counts(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    journey_id: str,
    conversion: GoalConversion,
    now: datetime,
) -> tuple[GroupCounts, GroupCounts]:
    """(treated, held out) runs of the versions in ``conversion.windows``, by the goal."""
    rows = await conn.fetch(_HOLDOUT_SQL, journey_id, *_windows(conversion), now)
    found = {r["holdout"]: r for r in rows}

    def group(name: str, held_out: bool) -> GroupCounts:
        row = found.get(held_out)
        if row is None:
            return GroupCounts(name, 0, 0, 0)
        return GroupCounts(name, int(row["entrants"]), int(row["conversions"]), int(row["pending"]))

    return group("treated", False), group("held_out", True)
