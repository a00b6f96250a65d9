"""Reading one journey's numbers from Postgres: what the page renders and the stream sends.

A reading is two cheap queries: the journey's row (active version, status) and its per-stage
counters (``stage_kpis``, a few rows). The per-touchpoint KPIs cost more (they read the
journey's deliveries, and the KPI events of its customers), so the live stream refreshes them
less often (``live``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import asyncpg

from journeyman.orchestrator.storage import funnel, load_plan
from journeyman.orchestrator.storage.kpis import declared_touchpoints
from journeyman.orchestrator.storage.touchpoint_report import TouchpointKpis, touchpoints
from journeyman.workflows.plan import Plan

from . import board as boards
from . import charts
from . import formatting as fmt

# The attribution window of the touchpoints' conversions, as in the KPI API's default.
ATTRIBUTION_WINDOW: Final = timedelta(days=7)


@dataclass(frozen=True)
class Head:
    """What the journeys table says of a journey right now."""

    active_version: str
    status: str


async def head(conn: asyncpg.Pool | asyncpg.Connection, journey_id: str) -> Head | None:
    row = await conn.fetchrow(
        "SELECT active_version, status FROM journeys WHERE journey_id = $1", journey_id
    )
    return Head(row["active_version"], row["status"]) if row is not None else None


async def has_version(
    conn: asyncpg.Pool | asyncpg.Connection, journey_id: str, version: str | None
) -> bool:
    """Whether the journey is deployed (in that version, when one is named)."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM journey_versions WHERE journey_id = $1"
        " AND ($2::text IS NULL OR version = $2))",
        journey_id,
        version,
    )
    return found


async def plan_of(
    conn: asyncpg.Pool | asyncpg.Connection, journey_id: str, version: str
) -> Plan | None:
    try:
        return await load_plan(conn, journey_id=journey_id, version=version)
    except KeyError:
        return None


async def read_touchpoints(
    conn: asyncpg.Pool | asyncpg.Connection, plan: Plan, version: str | None
) -> list[TouchpointKpis]:
    """The touchpoints report of ``plan`` (as ``GET /api/journeys/{id}/touchpoints`` reads
    it): observed touchpoints and send steps, with their goals and KPI counts."""
    return await touchpoints(
        conn,
        journey_id=plan.journey_id,
        steps=declared_touchpoints(plan),
        version=version,
        window=ATTRIBUTION_WINDOW,
    )


async def read_board(
    conn: asyncpg.Pool | asyncpg.Connection,
    plan: Plan,
    *,
    version: str | None,
    touchpoint_rows: list[TouchpointKpis] | None = None,
) -> boards.Board:
    """The board of ``plan`` over one version's counters, or every version's (None)."""
    rows = await funnel(
        conn, journey_id=plan.journey_id, stages=[s.name for s in plan.stages], version=version
    )
    if touchpoint_rows is None:
        touchpoint_rows = await read_touchpoints(conn, plan, version)
    return boards.build(plan, rows, touchpoint_rows)


def page_numbers(board: boards.Board, status: str) -> dict[str, str]:
    """Every live value of a journey page: the board's numbers, the funnel's bars, the status.

    A change of status (paused, archived) redraws the page, like a change of the drawing.
    """
    found = {
        **boards.numbers(board),
        **charts.funnel_numbers(board),
        fmt.journey_key("status"): status,
    }
    found[fmt.LAYOUT_KEY] += f"|{status}"
    return found
