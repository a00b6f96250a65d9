"""Per-stage conversion read from the KPI counters: a few rows, never the event history."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from .exits import exits_by_reason


@dataclass(frozen=True)
class StageFunnel:
    stage: str
    entered: int
    current: int  # in the stage now
    converted: int  # reached the stage's goal and moved to the next stage
    conversion_rate: float  # converted / entered
    moved_on: int  # left without the goal: no goal set, or max dwell with "continue"
    exited: int  # left the journey without converting (max dwell, an exit step or event)
    goal: int = 0  # left because the journey's conversion goal was reached
    migrated: int = 0  # moved to another version by an explicit migration
    # moved_on + exited + migrated by reason (``exits.EXIT_REASONS``) for treated customers,
    # and ``holdout`` for held-out ones whatever their reason.
    exits_by_reason: dict[str, int] = field(default_factory=dict)


async def funnel(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    journey_id: str,
    stages: list[str],
    version: str | None = None,
) -> list[StageFunnel]:
    """One row per stage, in the order given; all versions summed unless one is named."""
    rows = await conn.fetch(
        "SELECT stage, sum(entered) AS entered, sum(converted) AS converted,"
        " sum(moved_on) AS moved_on, sum(exited) AS exited, sum(goal) AS goal,"
        " sum(migrated) AS migrated FROM stage_kpis"
        " WHERE journey_id = $1 AND ($2::text IS NULL OR version = $2) GROUP BY stage",
        journey_id,
        version,
    )
    by_stage = {r["stage"]: r for r in rows}
    reasons = await exits_by_reason(conn, journey_id=journey_id, version=version)
    ordered = stages + sorted(set(by_stage) - set(stages))  # stages only older versions had
    result = []
    for stage in ordered:
        r = by_stage.get(stage)
        entered = int(r["entered"]) if r else 0
        converted = int(r["converted"]) if r else 0
        moved_on = int(r["moved_on"]) if r else 0
        exited = int(r["exited"]) if r else 0
        goal = int(r["goal"]) if r else 0
        migrated = int(r["migrated"]) if r else 0
        result.append(
            StageFunnel(
                stage=stage,
                entered=entered,
                current=entered - converted - moved_on - exited - goal - migrated,
                converted=converted,
                conversion_rate=round(converted / entered, 4) if entered else 0.0,
                moved_on=moved_on,
                exited=exited,
                goal=goal,
                migrated=migrated,
                exits_by_reason=reasons.get(stage, {}),
            )
        )
    return result
