"""What each dashboard page shows, gathered from storage: the journeys list, one journey,
one customer. The routes render these with the templates in ``api/templates/dashboard``.

The journey page has three sections beyond the map and the charts: exits by reason and
cohorts, experiments and holdout, and the emotion curve. Each has a slot in ``SECTIONS`` and
a block of the same name in ``journey.html``: a section registers a ``SectionHook`` under its
slot (the hook gathers its data; ``sections`` registers the three) and ships
``dashboard/sections/<slot>.html`` (which renders it as ``section``). The emotion curve's
block sits under the map; exits and cohorts render in two places (``part``): the exits beside
the funnel, the cohorts (a wide table) across the page in the ``cohorts`` block.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import asyncpg
from markupsafe import Markup
from temporalio.client import Client

from journeyman.orchestrator.customers.view import CustomerPublic, customer_view, identify
from journeyman.orchestrator.storage import list_journeys
from journeyman.orchestrator.storage.journeys import JourneySummary
from journeyman.orchestrator.storage.stage_reports import (
    StageTiming,
    TrendPoint,
    stage_timing,
    trends,
)
from journeyman.orchestrator.storage.touchpoint_report import TouchpointKpis
from journeyman.workflows.plan import Plan

from . import charts, metro, readings, time_charts
from .board import Board, Totals

Bucket = Literal["hour", "day"]
TREND_SPAN: Final[dict[str, timedelta]] = {"hour": timedelta(hours=48), "day": timedelta(days=30)}

# --- extension slots of the journey page --------------------------------------------------


@dataclass(frozen=True)
class JourneyRef:
    """What a section hook is told: which journey, which plan is drawn, which versions count."""

    journey_id: str
    plan: Plan
    version: str | None  # None: every version's numbers
    versions: tuple[str, ...] = ()  # every deployed version, oldest first


SectionHook = Callable[[asyncpg.Pool, JourneyRef], Awaitable[dict[str, Any]]]

# Slot name -> hook; a slot without a hook shows nothing. Filled by ``sections``.
SECTIONS: dict[str, SectionHook | None] = {
    "exits_and_cohorts": None,
    "experiments": None,
    "emotions": None,
}


async def _sections(pool: asyncpg.Pool, ref: JourneyRef) -> dict[str, dict[str, Any]]:
    """Every filled slot's data; the hooks read the pool side by side, each on its own
    connections, so the page waits for the slowest section rather than for all in turn."""
    hooks = [(name, hook) for name, hook in SECTIONS.items() if hook is not None]
    found = await asyncio.gather(*(hook(pool, ref) for _, hook in hooks))
    return {name: data for (name, _), data in zip(hooks, found, strict=True)}


# --- the journeys list ----------------------------------------------------------------------


@dataclass(frozen=True)
class JourneyRow:
    summary: JourneySummary
    totals: Totals
    bar: Markup


async def journeys_list(pool: asyncpg.Pool) -> list[JourneyRow]:
    """Every deployed journey with its totals over all versions."""
    rows = []
    for summary in await list_journeys(pool):
        plan = await readings.plan_of(pool, summary.journey_id, summary.active_version)
        if plan is None:  # pragma: no cover - a journey's active version always exists
            continue
        board = await readings.read_board(pool, plan, version=None, touchpoint_rows=[])
        totals = board.totals
        bar = Markup(charts.rate_bar(totals.converted, totals.entered))
        rows.append(JourneyRow(summary, totals, bar))
    return rows


# --- one journey ----------------------------------------------------------------------------


class UnknownJourney(LookupError):
    """No such journey, or no such version of it; the message says which."""


@dataclass(frozen=True)
class JourneyPage:
    summary: JourneySummary
    plan: Plan
    version: str | None
    bucket: Bucket
    board: Board
    touchpoints: list[TouchpointKpis]
    timing: list[StageTiming]
    trend: list[TrendPoint]
    numbers: dict[str, str]
    metro_svg: Markup
    funnel_svg: Markup
    trends_svg: Markup
    timing_svg: Markup
    read_at: datetime
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)


async def journey_page(
    pool: asyncpg.Pool,
    journey_id: str,
    *,
    version: str | None = None,
    bucket: Bucket = "day",
    now: datetime | None = None,
) -> JourneyPage:
    """One journey: the map of the version asked for (the active one by default), over that
    version's numbers (every version's by default)."""
    summaries = {s.journey_id: s for s in await list_journeys(pool)}
    summary = summaries.get(journey_id)
    if summary is None:
        raise UnknownJourney(f"no journey {journey_id!r} is deployed")
    if version is not None and version not in summary.versions:
        raise UnknownJourney(f"journey {journey_id!r} has no version {version!r}")
    plan = await readings.plan_of(pool, journey_id, version or summary.active_version)
    if plan is None:  # pragma: no cover - listed versions always have a plan
        raise UnknownJourney(f"journey {journey_id!r} has no version {version!r}")
    touchpoint_rows = await readings.read_touchpoints(pool, plan, version)
    board = await readings.read_board(pool, plan, version=version, touchpoint_rows=touchpoint_rows)
    timing = await stage_timing(
        pool, journey_id=journey_id, stages=[s.name for s in plan.stages], version=version
    )
    until = now or datetime.now(UTC)
    trend = await trends(
        pool,
        journey_id=journey_id,
        bucket=bucket,
        since=until - TREND_SPAN[bucket],
        until=until,
        version=version,
    )
    return JourneyPage(
        summary=summary,
        plan=plan,
        version=version,
        bucket=bucket,
        board=board,
        touchpoints=touchpoint_rows,
        timing=timing,
        trend=trend,
        numbers=readings.page_numbers(board, summary.status),
        metro_svg=Markup(metro.metro_map(board, journey_name=plan.name)),
        funnel_svg=Markup(charts.funnel_chart(board)),
        trends_svg=Markup(time_charts.trends_chart(trend, bucket=bucket)),
        timing_svg=Markup(time_charts.timing_chart(timing)),
        read_at=until,
        sections=await _sections(
            pool, JourneyRef(journey_id, plan, version, tuple(summary.versions))
        ),
    )


# --- one customer ---------------------------------------------------------------------------

# A customer page must not hang on Temporal: past this, positions come from Postgres.
TEMPORAL_CONNECT_SECONDS: Final = 3.0


async def _temporal(connect: Callable[[], Awaitable[Client | None]]) -> tuple[Client | None, str]:
    try:
        client = await asyncio.wait_for(connect(), TEMPORAL_CONNECT_SECONDS)
    except Exception as exc:  # the reason is the exception's type; its text may be long
        return None, f"unavailable ({type(exc).__name__})"
    return client, "ok" if client is not None else "not configured"


async def customer_exists(pool: asyncpg.Pool, customer_id: str) -> bool:
    """Whether anything is stored under this id or an alias of it."""
    return await identify(pool, customer_id) is not None


async def customer_page(
    pool: asyncpg.Pool,
    customer_id: str,
    *,
    temporal: Callable[[], Awaitable[Client | None]],
) -> CustomerPublic | None:
    """The customer's whole picture (as ``GET /api/customers/{id}``); None when unknown."""
    found = await identify(pool, customer_id)
    if found is None:
        return None
    client, status = await _temporal(temporal)
    return await customer_view(pool, found, temporal=client, temporal_status=status)
