"""Journey runs and stage transitions, counted into the per-stage KPIs as they happen.

One transition bumps, in its own transaction: ``stage_kpis`` (the funnel), ``stage_exit_kpis``
when it leaves a stage without converting (``exits.py``) and ``stage_cohort_kpis`` (its run's
entry week, ``cohorts.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg

from . import cohorts, exits

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
    reason: str | None = None,
    reason_detail: str | None = None,
    entered_at: datetime | None = None,
    at: datetime | None = None,
) -> bool:
    """Record one transition once; False when (run_key, seq) was already recorded.

    The KPI counters and the customer's current stage change in the same transaction, so a
    funnel read never disagrees with the transitions behind it. ``reason`` and
    ``reason_detail`` say why a run leaves without converting (``exits.leave_reason``);
    ``entered_at`` is when the run entered, its cohort week (else its entry's record time).
    ``at`` is when the transition happened on the run's clock; the record time without it.
    The run's clock is the one its messages are stamped with, so time to convert and
    attribution compare like with like even when a transition is recorded late (a retried
    activity) or the run's clock is not the wall clock (a time-skipping test server).
    """
    why = exits.leave_reason(outcome=outcome, reason=reason, run_key=run_key)
    detail = reason_detail[: exits.MAX_DETAIL] if why is not None and reason_detail else None
    async with conn.transaction():
        at = await conn.fetchval(
            "INSERT INTO stage_transitions (run_key, seq, journey_id, version, customer_id,"
            " from_stage, to_stage, outcome, reason, reason_detail, at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, coalesce($11, now()))"
            " ON CONFLICT DO NOTHING RETURNING at",
            run_key,
            seq,
            journey_id,
            version,
            customer_id,
            from_stage,
            to_stage,
            outcome,
            why,
            detail,
            at,
        )
        if at is None:
            return False
        if from_stage is not None and outcome in _LEFT_COLUMN:
            left = from_version or version  # a migration leaves a stage of the old version
            await _bump(conn, journey_id, left, from_stage, _LEFT_COLUMN[outcome])
            if why is not None:
                await exits.count_exit(
                    conn,
                    journey_id=journey_id,
                    version=left,
                    stage=from_stage,
                    outcome=outcome,
                    reason=why,
                    detail=detail,
                    holdout=holdout,
                )
        if to_stage is not None:
            await _bump(conn, journey_id, version, to_stage, "entered")
        status = "active" if to_stage is not None else _FINAL_STATUS.get(outcome, "completed")
        await conn.execute(
            "INSERT INTO journey_runs"
            " (journey_id, customer_id, version, workflow_id, stage, status, converted_at, holdout)"
            " VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $6 = 'converted' THEN $8::timestamptz END,"
            " $7)"
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
            at,
        )
        await cohorts.count_transition(
            conn,
            run_key=run_key,
            seq=seq,
            journey_id=journey_id,
            version=version,
            workflow_id=workflow_id,
            from_stage=from_stage,
            to_stage=to_stage,
            outcome=outcome,
            entered_at=entered_at,
            at=at,
        )
    return True
