"""Time to convert per stage, and entries and conversions over time, of one journey.

Both read ``stage_transitions`` by ``(journey_id, at)`` (migration 0011), never the whole
history: a stage visit is a transition into the stage, paired with the run's next transition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

import asyncpg

# The transitions that leave a stage converted: its own goal, or the journey's.
CONVERTING: Final = ("converted", "goal")
LEAVING: Final = ("converted", "goal", "moved_on", "exited", "migrated")

Bucket = Literal["hour", "day"]


@dataclass(frozen=True)
class StageTiming:
    """How long customers took to convert in a stage, and how everyone left it."""

    stage: str
    entered: int
    converted: int  # left converted: the stage's goal or the journey's goal
    median_seconds: float | None
    p90_seconds: float | None
    left_converted: int  # the stage's own goal, on to the next stage
    left_goal: int  # the journey's conversion goal
    moved_on: int
    exited: int
    migrated: int
    still_in: int


@dataclass(frozen=True)
class TrendPoint:
    bucket: datetime  # the bucket's start, UTC
    entered: int
    converted: int


_TIMING_SQL: Final = """
WITH spans AS (
    SELECT to_stage AS stage, version, at AS entered_at,
           lead(at) OVER w AS left_at, lead(outcome) OVER w AS left_outcome
    FROM stage_transitions
    WHERE journey_id = $1
    WINDOW w AS (PARTITION BY run_key ORDER BY seq)
)
SELECT stage,
    count(*) AS entered,
    count(*) FILTER (WHERE left_outcome = ANY($3::text[])) AS converted,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM left_at - entered_at))
        FILTER (WHERE left_outcome = ANY($3::text[])) AS median_seconds,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM left_at - entered_at))
        FILTER (WHERE left_outcome = ANY($3::text[])) AS p90_seconds,
    count(*) FILTER (WHERE left_outcome = 'converted') AS left_converted,
    count(*) FILTER (WHERE left_outcome = 'goal') AS left_goal,
    count(*) FILTER (WHERE left_outcome = 'moved_on') AS moved_on,
    count(*) FILTER (WHERE left_outcome = 'exited') AS exited,
    count(*) FILTER (WHERE left_outcome = 'migrated') AS migrated,
    count(*) FILTER (WHERE left_outcome IS NULL) AS still_in
FROM spans
WHERE stage IS NOT NULL AND ($2::text IS NULL OR version = $2)
GROUP BY stage
"""


async def stage_timing(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    journey_id: str,
    stages: list[str],
    version: str | None = None,
) -> list[StageTiming]:
    """Per stage visit (a transition into it, paired with the run's next transition by seq):
    percentiles of the time to leave it converted, and how the visits ended.

    ``version`` selects visits that entered the stage in that version; the transition that
    ends a visit may be in another one (a migration), so all of the journey's are paired.
    """
    rows = await conn.fetch(_TIMING_SQL, journey_id, version, list(CONVERTING))
    by_stage = {r["stage"]: r for r in rows}
    result = []
    for stage in stages + sorted(set(by_stage) - set(stages)):
        r = by_stage.get(stage)

        def n(column: str, r: asyncpg.Record | None = r) -> int:
            return int(r[column]) if r is not None else 0

        def seconds(column: str, r: asyncpg.Record | None = r) -> float | None:
            value = r[column] if r is not None else None
            return round(float(value), 3) if value is not None else None

        result.append(
            StageTiming(
                stage=stage,
                entered=n("entered"),
                converted=n("converted"),
                median_seconds=seconds("median_seconds"),
                p90_seconds=seconds("p90_seconds"),
                left_converted=n("left_converted"),
                left_goal=n("left_goal"),
                moved_on=n("moved_on"),
                exited=n("exited"),
                migrated=n("migrated"),
                still_in=n("still_in"),
            )
        )
    return result


_TRENDS_SQL: Final = """
WITH counted AS (
    SELECT date_trunc($2, at, 'UTC') AS bucket,
        count(*) FILTER (WHERE CASE WHEN $5::text IS NULL
            THEN outcome = 'entered' AND from_stage IS NULL
            ELSE to_stage = $5 END) AS entered,
        count(*) FILTER (WHERE CASE WHEN $5::text IS NULL
            THEN outcome = 'goal'
            ELSE from_stage = $5 AND outcome = ANY($7::text[]) END) AS converted
    FROM stage_transitions
    WHERE journey_id = $1 AND at >= $3 AND at < $4 AND ($6::text IS NULL OR version = $6)
    GROUP BY 1
)
SELECT b.bucket, coalesce(c.entered, 0) AS entered, coalesce(c.converted, 0) AS converted
FROM generate_series(date_trunc($2, $3::timestamptz, 'UTC'),
                     $4::timestamptz - interval '1 microsecond',
                     ('1 ' || $2)::interval) AS b(bucket)
LEFT JOIN counted c ON c.bucket = b.bucket
ORDER BY b.bucket
"""


async def trends(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    journey_id: str,
    bucket: Bucket,
    since: datetime,
    until: datetime,
    stage: str | None = None,
    version: str | None = None,
) -> list[TrendPoint]:
    """Entries and conversions per UTC hour or day in ``[since, until)``, empty buckets as 0.

    With a stage: transitions into it, and out of it converted (its goal or the journey's).
    Without: entries into the journey, and conversions by the journey's goal.
    """
    rows = await conn.fetch(
        _TRENDS_SQL, journey_id, bucket, since, until, stage, version, list(CONVERTING)
    )
    return [
        TrendPoint(bucket=r["bucket"], entered=int(r["entered"]), converted=int(r["converted"]))
        for r in rows
    ]
