"""Journey runs and stage transitions, counted into the per-stage KPIs as they happen."""

from __future__ import annotations

from typing import Literal

import asyncpg

Outcome = Literal["entered", "converted", "moved_on", "exited", "goal", "migrated"]
Transition = tuple[str | None, str | None, Outcome]

# Which KPI column a transition adds to on the stage being left.
_LEFT_COLUMN: dict[str, str] = {
    "converted": "converted",
    "moved_on": "moved_on",
    "exited": "exited",
    "goal": "goal",
    "migrated": "migrated",
}
# The run's status once it has left its last stage.
_FINAL_STATUS: dict[str, str] = {"exited": "exited", "goal": "converted"}


async def _bump(
    conn: asyncpg.Connection, journey_id: str, version: str, stage: str, column: str
) -> None:
    # column comes from the fixed map above, never from input.
    await conn.execute(
        f"INSERT INTO stage_kpis (journey_id, version, stage, {column}) VALUES ($1, $2, $3, 1)"
        f" ON CONFLICT (journey_id, version, stage)"
        f" DO UPDATE SET {column} = stage_kpis.{column} + 1",
        journey_id,
        version,
        stage,
    )


async def record_transition(
    conn: asyncpg.Connection,
    *,
    run_key: str,
    seq: int,
    journey_id: str,
    version: str,
    customer_id: str,
    workflow_id: str,
    from_stage: str | None,
    to_stage: str | None,
    outcome: Outcome,
    from_version: str | None = None,
    holdout: bool = False,
) -> bool:
    """Record one transition once; False when (run_key, seq) was already recorded.

    The KPI counters and the customer's current stage change in the same transaction, so a
    funnel read never disagrees with the transitions behind it.
    """
    async with conn.transaction():
        inserted = await conn.fetchval(
            "INSERT INTO stage_transitions"
            " (run_key, seq, journey_id, version, customer_id, from_stage, to_stage, outcome)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING true",
            run_key,
            seq,
            journey_id,
            version,
            customer_id,
            from_stage,
            to_stage,
            outcome,
        )
        if not inserted:
            return False
        if from_stage is not None and outcome in _LEFT_COLUMN:
            left = from_version or version  # a migration leaves a stage of the old version
            await _bump(conn, journey_id, left, from_stage, _LEFT_COLUMN[outcome])
        if to_stage is not None:
            await _bump(conn, journey_id, version, to_stage, "entered")
        status = "active" if to_stage is not None else _FINAL_STATUS.get(outcome, "completed")
        await conn.execute(
            "INSERT INTO journey_runs"
            " (journey_id, customer_id, version, workflow_id, stage, status, converted_at, holdout)"
            " VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $6 = 'converted' THEN now() END, $7)"
            " ON CONFLICT (workflow_id) DO UPDATE"
            " SET stage = coalesce(excluded.stage, journey_runs.stage),"
            "     version = excluded.version, status = excluded.status,"
            "     converted_at = coalesce(excluded.converted_at, journey_runs.converted_at),"
            "     holdout = journey_runs.holdout OR excluded.holdout,"
            "     updated_at = now()",
            journey_id,
            customer_id,
            version,
            workflow_id,
            to_stage,
            status,
            holdout,
        )
    return True
