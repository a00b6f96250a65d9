"""Cohorts by entry week: what became of the runs that entered a journey in each ISO week.

A run belongs to the week (Monday, UTC) it entered in and to the version it entered with, for
life: a later migration does not move it. ``stage_cohort_kpis`` (migration 0012) is bumped in
the transaction that records each transition (``runs.py``), so a report reads a few rows per
week, never the transitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

import asyncpg

# How a run that leaves its last stage, or the journey, ends: the cohort column it adds to.
_ENDING: Final[dict[str, str]] = {
    "goal": "converted",  # the journey's conversion goal
    "converted": "converted",  # the last stage's goal
    "exited": "exited",
    "moved_on": "completed",  # past the last stage without converting
}
_COLUMNS: Final = ("entered", "reached", "converted", "exited", "completed")


def cohort_week(moment: date | datetime) -> date:
    """The Monday of the ISO week ``moment`` falls in, in UTC (a naive time is read as UTC)."""
    if isinstance(moment, datetime):
        day = (moment.astimezone(UTC) if moment.tzinfo else moment).date()
    else:
        day = moment
    return day - timedelta(days=day.weekday())


async def _cohort_of(
    conn: asyncpg.Connection,
    *,
    run_key: str,
    workflow_id: str,
    version: str,
    outcome: str,
    entered_at: datetime | None,
    at: datetime,
) -> tuple[str, date] | None:
    """The run's (entry version, cohort week), or None for a run whose entry is unknown."""
    if outcome == "entered":
        return version, cohort_week(entered_at or at)
    entry = await conn.fetchrow(
        "SELECT version, at FROM stage_transitions"
        " WHERE run_key = $1 AND seq = 1 AND outcome = 'entered'",
        run_key,
    )
    if entry is None:
        # Erasure records a run's exit under a key of its own: the run's row still knows it.
        entry = await conn.fetchrow(
            "SELECT version, entered_at AS at FROM journey_runs WHERE workflow_id = $1",
            workflow_id,
        )
    if entry is None:
        return None
    return entry["version"], cohort_week(entered_at or entry["at"])


async def count_transition(
    conn: asyncpg.Connection,
    *,
    run_key: str,
    seq: int,
    journey_id: str,
    version: str,
    workflow_id: str,
    from_stage: str | None,
    to_stage: str | None,
    outcome: str,
    entered_at: datetime | None,
    at: datetime,
) -> None:
    """Count a newly recorded transition into its run's cohort; the caller holds the
    transaction that recorded it (``at`` is its time)."""
    cohort = await _cohort_of(
        conn,
        run_key=run_key,
        workflow_id=workflow_id,
        version=version,
        outcome=outcome,
        entered_at=entered_at,
        at=at,
    )
    if cohort is None:
        return
    bumps: list[tuple[str, str]] = []
    if outcome == "entered" and to_stage is not None:
        bumps += [(to_stage, "entered"), (to_stage, "reached")]
    elif to_stage is not None:
        # A stage counts once per run, however often a goto brings the run back to it.
        seen = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM stage_transitions"
            " WHERE run_key = $1 AND seq < $2 AND to_stage = $3)",
            run_key,
            seq,
            to_stage,
        )
        if not seen:
            bumps.append((to_stage, "reached"))
    if to_stage is None and from_stage is not None and outcome in _ENDING:
        bumps.append((from_stage, _ENDING[outcome]))
    cohort_version, week = cohort
    for stage, column in bumps:
        # column comes from the fixed names above, never from input.
        await conn.execute(
            f"INSERT INTO stage_cohort_kpis (journey_id, cohort_week, version, stage, {column})"
            " VALUES ($1, $2, $3, $4, 1)"
            " ON CONFLICT (journey_id, cohort_week, version, stage)"
            f" DO UPDATE SET {column} = stage_cohort_kpis.{column} + 1",
            journey_id,
            week,
            cohort_version,
            stage,
        )


@dataclass(frozen=True)
class Cohort:
    """The runs that entered in one week, and what became of them so far."""

    week: date  # the Monday, UTC
    entered: int
    reached: dict[str, int]  # stage -> runs that reached it, once per run
    converted: int  # the journey's goal, or converting out of the last stage
    exited: int
    completed: int  # moved on past the last stage without converting
    active: int  # still in the journey
    conversion_rate: float  # converted / entered


async def cohorts(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    journey_id: str,
    stages: list[str],
    weeks: int,
    until: date | datetime,
    version: str | None = None,
) -> list[Cohort]:
    """The ``weeks`` ISO weeks up to the one ``until`` falls in, oldest first, empty ones as
    zeros; ``reached`` lists ``stages`` in order, then stages only older versions had. All
    versions summed unless one is named (the version runs entered with)."""
    if weeks < 1:
        raise ValueError(f"weeks must be at least 1, not {weeks}")
    last = cohort_week(until)
    first = last - timedelta(weeks=weeks - 1)
    rows = await conn.fetch(
        "SELECT cohort_week, stage, sum(entered) AS entered, sum(reached) AS reached,"
        " sum(converted) AS converted, sum(exited) AS exited, sum(completed) AS completed"
        " FROM stage_cohort_kpis"
        " WHERE journey_id = $1 AND cohort_week BETWEEN $2 AND $3"
        " AND ($4::text IS NULL OR version = $4)"
        " GROUP BY cohort_week, stage",
        journey_id,
        first,
        last,
        version,
    )
    ordered = stages + sorted({r["stage"] for r in rows} - set(stages))
    by_week: dict[date, list[asyncpg.Record]] = {}
    for r in rows:
        by_week.setdefault(r["cohort_week"], []).append(r)
    result = []
    for n in range(weeks):
        week = first + timedelta(weeks=n)
        found = by_week.get(week, [])
        total = {c: sum(int(r[c]) for r in found) for c in _COLUMNS}
        reached = dict.fromkeys(ordered, 0)
        for r in found:
            reached[r["stage"]] += int(r["reached"])
        entered = total["entered"]
        result.append(
            Cohort(
                week=week,
                entered=entered,
                reached=reached,
                converted=total["converted"],
                exited=total["exited"],
                completed=total["completed"],
                active=entered - total["converted"] - total["exited"] - total["completed"],
                conversion_rate=round(total["converted"] / entered, 4) if entered else 0.0,
            )
        )
    return result
