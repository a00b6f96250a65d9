"""The touchpoints report of one journey: per touchpoint, what became of its messages, the
conversions it was the last touch of, and its KPI's count.

Every query starts from one journey's rows through an index: ``deliveries`` by
``(journey_id, created_at)``, ``stage_transitions`` by ``(journey_id, at)`` (migration 0011),
``journey_runs`` by ``(journey_id, customer_id)``, and the customers' tracked opens, clicks and
unsubscribes by ``(customer_id, event, occurred_at)``. None reads the whole event history. The
KPI counts come from ``kpis``.

Runs are joined by their keys: a run's ``run_key`` is ``<workflow_id>@<temporal run id>`` and
each of its messages' ``send_key`` starts with the run key, so a message belongs to the run
whose workflow id it starts with (followed by ``@``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import asyncpg

from .kpis import (
    DELIVERED,
    SENT,
    TOUCHED,
    DeclaredTouchpoint,
    TouchpointKind,
    counted_as,
    kpi_counts,
)


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
