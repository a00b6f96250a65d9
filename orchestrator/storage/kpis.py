"""Touchpoint KPIs: the touchpoints a journey declares, and the events each one's KPI counts.

A touchpoint's KPI (declared in the journey) counts its events (a tracked event, or page or
screen views): for a send step, a recipient's within the attribution window after the message;
for an observed touchpoint, a customer's while in its stage. Its ``where`` tests run in SQL with
the meaning ``workflows.conditions`` gives them, so a KPI counts exactly the events a goal with
the same filter would match.

The queries start from one journey's rows through an index: ``deliveries`` by
``(journey_id, created_at)``, ``stage_transitions`` by ``(journey_id, at)`` (migration 0011),
and the customers' tracking events by ``(customer_id, event, occurred_at)``, their page and
screen views by ``(customer_id, occurred_at)`` (migration 0014). None reads the whole event
history. The report of every touchpoint is ``touchpoint_report``; time to convert per stage and
trends are ``stage_reports``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Literal

import asyncpg

from journeyman.workflows.plan import Kpi, Plan, SendStep, walk

from .property_sql import where_sql

# Ledger states of a message the provider accepted (whatever became of it afterwards).
SENT: Final = ("queued", "sent", "delivered", "opened", "clicked", "bounced", "complained")
# Accepted and not bounced: the messages a conversion may be attributed to.
TOUCHED: Final = ("queued", "sent", "delivered", "opened", "clicked", "complained")
DELIVERED: Final = ("delivered", "opened", "clicked", "complained")

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
