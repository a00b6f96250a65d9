"""Per-touchpoint KPIs, time to convert per stage and entry/conversion trends of one journey.

Every query starts from one journey's rows through an index: ``deliveries`` by
``(journey_id, created_at)``, ``stage_transitions`` by ``(journey_id, at)`` (migration 0011),
``journey_runs`` by ``(journey_id, customer_id)``, and the customers' tracking events by
``(customer_id, event, occurred_at)``. None reads the whole event history.

Runs are joined by their keys: a run's ``run_key`` is ``<workflow_id>@<temporal run id>`` and
each of its messages' ``send_key`` starts with the run key, so a message belongs to the run
whose workflow id it starts with (followed by ``@``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

import asyncpg

# Ledger states of a message the provider accepted (whatever became of it afterwards).
SENT: Final = ("queued", "sent", "delivered", "opened", "clicked", "bounced", "complained")
# Accepted and not bounced: the messages a conversion may be attributed to.
TOUCHED: Final = ("queued", "sent", "delivered", "opened", "clicked", "complained")
DELIVERED: Final = ("delivered", "opened", "clicked", "complained")
# The transitions that leave a stage converted: its own goal, or the journey's.
CONVERTING: Final = ("converted", "goal")
LEAVING: Final = ("converted", "goal", "moved_on", "exited", "migrated")

Bucket = Literal["hour", "day"]


@dataclass(frozen=True)
class TouchpointKpis:
    """What became of one send step's messages, and the conversions it was the last touch of."""

    step_id: str
    stage: str | None  # None for a step only an older version had
    channel: str | None
    total: int  # every ledger row, pending ones included
    sent: int
    delivered: int
    opened: int
    clicked: int
    unsubscribed: int  # messages whose unsubscribe link was used
    failed: int
    bounced: int
    complained: int
    suppressed: int  # suppressed_rule + skipped + capped
    suppressed_rule: int
    skipped: int
    capped: int
    conversions: int  # converted runs this step was the last touch of, within the window


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


_TOUCHPOINTS_SQL: Final = """
WITH d AS (
    SELECT send_key, customer_id, step_id, channel, status, created_at,
           delivered_at, opened_at, clicked_at
    FROM deliveries
    WHERE journey_id = $1 AND ($2::text IS NULL OR version = $2)
), tracked AS (
    SELECT e.properties->>'send_key' AS send_key,
           bool_or(e.event = 'Email Opened') AS opened,
           bool_or(e.event = 'Link Clicked') AS clicked,
           bool_or(e.event = 'Unsubscribed') AS unsubscribed
    FROM (SELECT DISTINCT customer_id FROM d) c
    JOIN events e ON e.customer_id = c.customer_id AND e.type = 'track'
        AND e.event IN ('Email Opened', 'Link Clicked', 'Unsubscribed')
    WHERE e.properties ? 'send_key'
    GROUP BY 1
), conversions AS (
    SELECT run, min(customer_id) AS customer_id, min(at) AS at FROM (
        SELECT workflow_id AS run, customer_id, converted_at AS at
        FROM journey_runs
        WHERE journey_id = $1 AND converted_at IS NOT NULL
        UNION ALL
        SELECT substring(run_key FROM '^(.*)@[^@]*$'), customer_id, at
        FROM stage_transitions
        WHERE journey_id = $1 AND outcome = 'goal'
    ) found
    WHERE run IS NOT NULL
    GROUP BY run
), last_touch AS (
    SELECT DISTINCT ON (c.run) c.run, d.step_id
    FROM conversions c
    JOIN d ON d.customer_id = c.customer_id AND starts_with(d.send_key, c.run || '@')
        AND d.status = ANY($4::text[])
        AND d.created_at <= c.at AND d.created_at >= c.at - $3::interval
    ORDER BY c.run, d.created_at DESC, d.send_key DESC
), per_step AS (
    SELECT d.step_id,
        min(d.channel) AS channel,
        count(*) AS total,
        count(*) FILTER (WHERE d.status = ANY($5::text[])) AS sent,
        count(*) FILTER (WHERE d.status = ANY($6::text[]) OR d.delivered_at IS NOT NULL)
            AS delivered,
        count(*) FILTER (WHERE d.status IN ('opened', 'clicked') OR d.opened_at IS NOT NULL
            OR d.clicked_at IS NOT NULL OR t.opened OR t.clicked) AS opened,
        count(*) FILTER (WHERE d.status = 'clicked' OR d.clicked_at IS NOT NULL OR t.clicked)
            AS clicked,
        count(*) FILTER (WHERE t.unsubscribed) AS unsubscribed,
        count(*) FILTER (WHERE d.status = 'failed') AS failed,
        count(*) FILTER (WHERE d.status = 'bounced') AS bounced,
        count(*) FILTER (WHERE d.status = 'complained') AS complained,
        count(*) FILTER (WHERE d.status = 'suppressed') AS suppressed_rule,
        count(*) FILTER (WHERE d.status = 'skipped') AS skipped,
        count(*) FILTER (WHERE d.status = 'capped') AS capped
    FROM d LEFT JOIN tracked t ON t.send_key = d.send_key
    GROUP BY d.step_id
)
SELECT p.*, coalesce(lt.conversions, 0) AS conversions
FROM per_step p
LEFT JOIN (SELECT step_id, count(*) AS conversions FROM last_touch GROUP BY step_id) lt
    ON lt.step_id = p.step_id
"""


async def touchpoints(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    journey_id: str,
    steps: list[tuple[str, str, str]],
    version: str | None = None,
    window: timedelta = timedelta(days=7),
) -> list[TouchpointKpis]:
    """One row per send step: ``steps`` (step id, stage, channel) first in their order, then
    steps only the ledger knows (older versions). All versions unless one is named.

    A converted run counts once, for the last message it was sent (accepted, not bounced)
    within ``window`` before converting; a run with no such message counts for no step.
    """
    rows = await conn.fetch(
        _TOUCHPOINTS_SQL, journey_id, version, window, list(TOUCHED), list(SENT), list(DELIVERED)
    )
    by_step = {r["step_id"]: r for r in rows}
    known = {step_id: (stage, channel) for step_id, stage, channel in steps}
    ordered = [s[0] for s in steps] + sorted(set(by_step) - set(known))
    result = []
    for step_id in ordered:
        r = by_step.get(step_id)
        stage, channel = known.get(step_id, (None, None))

        def n(column: str, r: asyncpg.Record | None = r) -> int:
            return int(r[column]) if r is not None else 0

        result.append(
            TouchpointKpis(
                step_id=step_id,
                stage=stage,
                channel=channel or (r["channel"] if r is not None else None),
                total=n("total"),
                sent=n("sent"),
                delivered=n("delivered"),
                opened=n("opened"),
                clicked=n("clicked"),
                unsubscribed=n("unsubscribed"),
                failed=n("failed"),
                bounced=n("bounced"),
                complained=n("complained"),
                suppressed=n("suppressed_rule") + n("skipped") + n("capped"),
                suppressed_rule=n("suppressed_rule"),
                skipped=n("skipped"),
                capped=n("capped"),
                conversions=n("conversions"),
            )
        )
    return result


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
