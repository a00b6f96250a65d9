"""Per-touchpoint KPIs, time to convert per stage and entry/conversion trends of one journey.

Every query starts from one journey's rows through an index: ``deliveries`` by
``(journey_id, created_at)``, ``stage_transitions`` by ``(journey_id, at)`` (migration 0011),
``journey_runs`` by ``(journey_id, customer_id)``, and the customers' tracking events by
``(customer_id, event, occurred_at)``, their page and screen views by ``(customer_id,
occurred_at)`` (migration 0014). None reads the whole event history.

Runs are joined by their keys: a run's ``run_key`` is ``<workflow_id>@<temporal run id>`` and
each of its messages' ``send_key`` starts with the run key, so a message belongs to the run
whose workflow id it starts with (followed by ``@``).

A touchpoint's KPI (declared in the journey) counts its events (a tracked event, or page or
screen views): for a send step, a recipient's within the attribution window after the message;
for an observed touchpoint, a customer's while in its stage. Its ``where`` tests run in SQL with
the meaning ``workflows.conditions`` gives them, so a KPI counts exactly the events a goal with
the same filter would match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

import asyncpg

from journeyman.workflows.plan import Kpi, Plan, SendStep, walk

from .property_sql import where_sql

# Ledger states of a message the provider accepted (whatever became of it afterwards).
SENT: Final = ("queued", "sent", "delivered", "opened", "clicked", "bounced", "complained")
# Accepted and not bounced: the messages a conversion may be attributed to.
TOUCHED: Final = ("queued", "sent", "delivered", "opened", "clicked", "complained")
DELIVERED: Final = ("delivered", "opened", "clicked", "complained")
# The transitions that leave a stage converted: its own goal, or the journey's.
CONVERTING: Final = ("converted", "goal")
LEAVING: Final = ("converted", "goal", "moved_on", "exited", "migrated")

Bucket = Literal["hour", "day"]
TouchpointKind = Literal["message", "observed"]


@dataclass(frozen=True)
class DeclaredTouchpoint:
    """A touchpoint of the journey the report has a row for: a send step (``message``) or a
    touchpoint the engine does not send but measures (``observed``)."""

    id: str
    stage: str
    kind: TouchpointKind
    channel: str | None = None
    goal: str | None = None
    kpi: Kpi | None = None


def declared_touchpoints(plan: Plan) -> list[DeclaredTouchpoint]:
    """Stage by stage, its observed touchpoints, then its send steps in document order
    (nested ones included)."""
    found: list[DeclaredTouchpoint] = []
    for stage in plan.stages:
        for seen in stage.observed:
            found.append(
                DeclaredTouchpoint(seen.id, stage.name, "observed", goal=seen.goal, kpi=seen.kpi)
            )
        for step in walk(stage.steps):
            if isinstance(step, SendStep):
                found.append(
                    DeclaredTouchpoint(
                        step.id, stage.name, "message", step.channel, step.goal, step.kpi
                    )
                )
    return found


@dataclass(frozen=True)
class TouchpointKpis:
    """What became of one send step's messages, and the conversions it was the last touch of;
    for every touchpoint with a KPI, the KPI events counted and the customers who sent them.

    An observed touchpoint sends nothing: its message counts are 0.
    """

    step_id: str  # the touchpoint's id, for an observed one too
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
    kind: TouchpointKind = "message"
    goal: str | None = None
    kpi: str | None = None  # the KPI's name
    kpi_event: str | None = None
    kpi_count: int | None = None  # None: no KPI declared
    kpi_customers: int | None = None


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
    steps: Sequence[DeclaredTouchpoint | tuple[str, str, str]],
    version: str | None = None,
    window: timedelta = timedelta(days=7),
) -> list[TouchpointKpis]:
    """One row per touchpoint of ``steps`` in their order, then send steps only the ledger
    knows (older versions). All versions unless one is named.

    ``steps`` are ``declared_touchpoints(plan)``, or (step id, stage, channel) of send steps
    when goals and KPIs do not matter.

    A converted run counts once, for the last message it was sent (accepted, not bounced)
    within ``window`` before converting; a run with no such message counts for no step.
    KPI events are counted per touchpoint (one event may count for several): see
    ``kpi_counts``.
    """
    rows = await conn.fetch(
        _TOUCHPOINTS_SQL, journey_id, version, window, list(TOUCHED), list(SENT), list(DELIVERED)
    )
    by_step = {r["step_id"]: r for r in rows}
    declared = [
        step if isinstance(step, DeclaredTouchpoint) else _send_step(*step) for step in steps
    ]
    counted = await kpi_counts(
        conn, journey_id=journey_id, declared=declared, version=version, window=window
    )
    sends = {t.id for t in declared if t.kind == "message"}
    older = [DeclaredTouchpoint(step_id, "", "message") for step_id in sorted(set(by_step) - sends)]
    result = []
    for touchpoint in [*declared, *older]:
        # An observed touchpoint sends nothing, even if an older version had a step of its id.
        r = by_step.get(touchpoint.id) if touchpoint.kind == "message" else None

        def n(column: str, r: asyncpg.Record | None = r) -> int:
            return int(r[column]) if r is not None else 0

        kpi = touchpoint.kpi
        count, customers = counted.get((touchpoint.kind, touchpoint.id), (0, 0))
        result.append(
            TouchpointKpis(
                step_id=touchpoint.id,
                stage=touchpoint.stage or None,
                channel=touchpoint.channel or (r["channel"] if r is not None else None),
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
                kind=touchpoint.kind,
                goal=touchpoint.goal,
                kpi=kpi.name if kpi is not None else None,
                kpi_event=counted_as(kpi) if kpi is not None else None,
                kpi_count=count if kpi is not None else None,
                kpi_customers=customers if kpi is not None else None,
            )
        )
    return result


def _send_step(step_id: str, stage: str, channel: str) -> DeclaredTouchpoint:
    return DeclaredTouchpoint(step_id, stage, "message", channel)


# A send step's recipients: its messages the provider accepted and did not bounce (TOUCHED).
_MESSAGES_CTE: Final = """
messages AS (
    SELECT step_id, customer_id, created_at
    FROM deliveries
    WHERE journey_id = $1 AND ($2::text IS NULL OR version = $2)
        AND status = ANY($3::text[]) AND step_id = ANY($4::text[])
)"""
# Each visit of a stage: from the transition into it to the run's next transition (by seq),
# open-ended while the customer is still there. With a version: visits that entered in it.
_VISITS_CTE: Final = """
visits AS (
    SELECT * FROM (
        SELECT customer_id, to_stage AS stage, version, at AS entered_at,
               lead(at) OVER (PARTITION BY run_key ORDER BY seq) AS left_at
        FROM stage_transitions
        WHERE journey_id = $1
    ) spans
    WHERE stage = ANY($5::text[]) AND ($2::text IS NULL OR version = $2)
)"""
# One KPI: the distinct events that match, and their senders. {source} is messages or visits;
# {type} a literal, so that the planner picks the partial index of that type's events.
_KPI_SELECT: Final = """
SELECT {kind} AS kind, {id} AS id,
       count(*) AS kpi_count, count(DISTINCT customer_id) AS kpi_customers
FROM (
    SELECT DISTINCT e.id, e.customer_id
    FROM {source} s
    JOIN events e ON e.customer_id = s.customer_id AND e.type = '{type}' AND {named}
        AND {during}
    WHERE {mine} AND ({where})
) hits"""
_AFTER_MESSAGE: Final = (
    "e.occurred_at > s.created_at AND e.occurred_at <= s.created_at + $6::interval"
)
_IN_STAGE: Final = (
    "e.occurred_at >= s.entered_at AND (s.left_at IS NULL OR e.occurred_at < s.left_at)"
)


def kpi_sql(
    declared: Sequence[DeclaredTouchpoint],
) -> tuple[str, list[object]] | None:
    """The query counting every declared KPI, and its parameters after the first six
    (journey id, version, TOUCHED, send step ids, stage names, window); None without KPIs.

    One query for them all: the journey's messages and stage visits are read once.
    """
    measured = [t for t in declared if t.kpi is not None]
    if not measured:
        return None
    extra: list[object] = []

    def bind(value: object, cast: str) -> str:
        extra.append(value)
        return f"${6 + len(extra)}::{cast}"

    selects = []
    for touchpoint in measured:
        kpi = touchpoint.kpi
        assert kpi is not None and kpi.type in ("track", "page", "screen")
        message = touchpoint.kind == "message"
        selects.append(
            _KPI_SELECT.format(
                kind=bind(touchpoint.kind, "text"),
                id=bind(touchpoint.id, "text"),
                source="messages" if message else "visits",
                type=kpi.type,
                named=f"e.event = {bind(kpi.event, 'text')}" if kpi.event is not None else "true",
                during=_AFTER_MESSAGE if message else _IN_STAGE,
                mine=f"s.step_id = {bind(touchpoint.id, 'text')}"
                if message
                else f"s.stage = {bind(touchpoint.stage, 'text')}",
                where=where_sql(kpi.where, bind),
            )
        )
    ctes = ",".join([_MESSAGES_CTE, _VISITS_CTE])
    return f"WITH {ctes}\n" + "\nUNION ALL\n".join(selects), extra


async def kpi_counts(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    journey_id: str,
    declared: Sequence[DeclaredTouchpoint],
    version: str | None = None,
    window: timedelta = timedelta(days=7),
) -> dict[tuple[str, str], tuple[int, int]]:
    """(kind, id) -> (KPI events, distinct customers who sent them) per touchpoint with a KPI.

    A send step counts the KPI events its recipients (messages accepted and not bounced) sent
    after the message and at most ``window`` after it; an observed touchpoint, those the
    journey's customers sent while in its stage. Each event counts once per touchpoint.
    """
    built = kpi_sql(declared)
    if built is None:
        return {}
    sql, extra = built
    sends = [t.id for t in declared if t.kind == "message" and t.kpi is not None]
    stages = sorted({t.stage for t in declared if t.kind == "observed" and t.kpi is not None})
    rows = await conn.fetch(sql, journey_id, version, list(TOUCHED), sends, stages, window, *extra)
    return {(r["kind"], r["id"]): (int(r["kpi_count"]), int(r["kpi_customers"])) for r in rows}


def counted_as(kpi: Kpi) -> str:
    """What counts one, in words: the event's name, or ``page`` / ``screen`` views (of one
    name: ``page: Pricing``)."""
    if kpi.type == "track":
        return kpi.event or ""
    return f"{kpi.type}: {kpi.event}" if kpi.event is not None else kpi.type


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
