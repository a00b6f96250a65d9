"""Journey KPIs for dashboards and spreadsheets: per touchpoint, time to convert, trends.

Every route answers JSON, or CSV (a header row, then one row per item) with ``?format=csv``
or an ``Accept: text/csv`` header.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from journeyman.orchestrator.storage.kpis import TouchpointKind, declared_touchpoints
from journeyman.orchestrator.storage.stage_reports import (
    StageTiming,
    TrendPoint,
    stage_timing,
    trends,
)
from journeyman.orchestrator.storage.touchpoint_report import TouchpointKpis, touchpoints

from ..auth import AdminDep, ServicesDep
from ..errors import ApiError, NulGuard, error_responses
from ..reports import (
    CSV_RESPONSE,
    IsoDateTime,
    as_utc,
    csv_response,
    journey_plan,
    parse_window,
    wants_csv,
)

router = APIRouter(
    prefix="/api/journeys",
    tags=["kpis"],
    dependencies=[AdminDep, NulGuard],
    responses=error_responses(401),
)

_RESPONSES = {**CSV_RESPONSE, **error_responses(400, 404, s404="no such journey or version")}


DEFAULT_WINDOW = "7d"
MAX_BUCKETS = 5000
# How far back a trend reaches when no ``since`` is given.
DEFAULT_SPAN: dict[str, timedelta] = {"hour": timedelta(hours=48), "day": timedelta(days=30)}


class TouchpointPublic(BaseModel):
    step_id: str
    stage: str | None
    channel: str | None
    total: int
    sent: int
    delivered: int
    opened: int
    clicked: int
    unsubscribed: int
    failed: int
    bounced: int
    complained: int
    suppressed: int
    suppressed_rule: int
    skipped: int
    capped: int
    conversions: int
    kind: TouchpointKind
    goal: str | None
    kpi: str | None
    kpi_event: str | None
    kpi_count: int | None
    kpi_customers: int | None


class TouchpointsPublic(BaseModel):
    journey_id: str
    version: str | None
    window_seconds: int
    touchpoints: list[TouchpointPublic]


class StageTimingPublic(BaseModel):
    stage: str
    entered: int
    converted: int
    median_seconds: float | None
    p90_seconds: float | None
    left_converted: int
    left_goal: int
    moved_on: int
    exited: int
    migrated: int
    still_in: int


class TimingPublic(BaseModel):
    journey_id: str
    version: str | None
    stages: list[StageTimingPublic]


class TrendPointPublic(BaseModel):
    bucket: datetime
    entered: int
    converted: int


class TrendsPublic(BaseModel):
    journey_id: str
    version: str | None
    stage: str | None
    bucket: Literal["hour", "day"]
    since: datetime
    until: datetime
    points: list[TrendPointPublic]


@router.get("/{journey_id}/touchpoints", response_model=TouchpointsPublic, responses=_RESPONSES)
async def journey_touchpoints(
    journey_id: str,
    request: Request,
    services: ServicesDep,
    version: str | None = None,
    window: str = DEFAULT_WINDOW,
    format: str | None = None,
) -> TouchpointsPublic | Response:
    """Per send step: what became of its messages and the conversions it was the last touch
    of; per touchpoint with a KPI (observed ones too): its goal and the KPI events counted."""
    as_csv = wants_csv(request, format)
    span = parse_window(window)
    plan = await journey_plan(services, journey_id, version)
    rows = await touchpoints(
        services.pool,
        journey_id=journey_id,
        steps=declared_touchpoints(plan),
        version=version,
        window=span,
    )
    if as_csv:
        return csv_response(rows, TouchpointKpis, f"{journey_id}-touchpoints.csv")
    return TouchpointsPublic(
        journey_id=journey_id,
        version=version,
        window_seconds=int(span.total_seconds()),
        touchpoints=[TouchpointPublic(**asdict(r)) for r in rows],
    )


@router.get("/{journey_id}/stages/timing", response_model=TimingPublic, responses=_RESPONSES)
async def journey_stage_timing(
    journey_id: str,
    request: Request,
    services: ServicesDep,
    version: str | None = None,
    format: str | None = None,
) -> TimingPublic | Response:
    """Per stage: median and p90 time to convert, and how the customers who entered it left."""
    as_csv = wants_csv(request, format)
    plan = await journey_plan(services, journey_id, version)
    rows = await stage_timing(
        services.pool, journey_id=journey_id, stages=[s.name for s in plan.stages], version=version
    )
    if as_csv:
        return csv_response(rows, StageTiming, f"{journey_id}-stage-timing.csv")
    return TimingPublic(
        journey_id=journey_id,
        version=version,
        stages=[StageTimingPublic(**asdict(r)) for r in rows],
    )


@router.get("/{journey_id}/trends", response_model=TrendsPublic, responses=_RESPONSES)
async def journey_trends(
    journey_id: str,
    request: Request,
    services: ServicesDep,
    bucket: str = "day",
    stage: str | None = None,
    version: str | None = None,
    since: IsoDateTime = None,
    until: IsoDateTime = None,
    format: str | None = None,
) -> TrendsPublic | Response:
    """Entries and conversions per hour or day: the last 48 hours or 30 days unless told."""
    as_csv = wants_csv(request, format)
    if bucket not in DEFAULT_SPAN:
        raise ApiError(400, "invalid_request", "bucket must be 'hour' or 'day'")
    end = as_utc(until) if until is not None else datetime.now(UTC)
    start = as_utc(since) if since is not None else end - DEFAULT_SPAN[bucket]
    if start >= end:
        raise ApiError(400, "invalid_request", "since must be before until")
    step = DEFAULT_SPAN[bucket] / (48 if bucket == "hour" else 30)
    if (end - start) / step > MAX_BUCKETS:
        raise ApiError(400, "invalid_request", f"at most {MAX_BUCKETS} buckets; narrow the range")
    plan = await journey_plan(services, journey_id, version)
    if stage is not None:
        known = {s.name for s in plan.stages} | {
            r["stage"]
            for r in await services.pool.fetch(
                "SELECT DISTINCT stage FROM stage_kpis WHERE journey_id = $1", journey_id
            )
        }
        if stage not in known:
            raise ApiError(400, "invalid_request", f"journey {journey_id!r} has no stage {stage!r}")
    points = await trends(
        services.pool,
        journey_id=journey_id,
        bucket="hour" if bucket == "hour" else "day",
        since=start,
        until=end,
        stage=stage,
        version=version,
    )
    if as_csv:
        return csv_response(points, TrendPoint, f"{journey_id}-trends.csv")
    return TrendsPublic(
        journey_id=journey_id,
        version=version,
        stage=stage,
        bucket="hour" if bucket == "hour" else "day",
        since=start,
        until=end,
        points=[TrendPointPublic(**asdict(p)) for p in points],
    )
