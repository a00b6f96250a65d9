"""Journey KPIs for dashboards and spreadsheets: per touchpoint, time to convert, trends.

Every route answers JSON, or CSV (a header row, then one row per item) with ``?format=csv``
or an ``Accept: text/csv`` header.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from journeyman.orchestrator.storage import list_journeys, load_plan
from journeyman.orchestrator.storage.kpis import (
    StageTiming,
    TouchpointKpis,
    TrendPoint,
    stage_timing,
    touchpoints,
    trends,
)
from journeyman.workflows.plan import Plan, SendStep, walk

from ..auth import AdminDep, ServicesDep
from ..errors import ApiError

router = APIRouter(prefix="/api/journeys", tags=["kpis"], dependencies=[AdminDep])

DEFAULT_WINDOW = "7d"
MAX_WINDOW = timedelta(days=365)
MAX_BUCKETS = 5000
# How far back a trend reaches when no ``since`` is given.
DEFAULT_SPAN: dict[str, timedelta] = {"hour": timedelta(hours=48), "day": timedelta(days=30)}
_DURATION = re.compile(r"^(\d{1,9})([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


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


def _wants_csv(request: Request, format: str | None) -> bool:
    if format is not None:
        if format not in ("json", "csv"):
            raise ApiError(400, "invalid_request", "format must be 'json' or 'csv'")
        return format == "csv"
    return "text/csv" in request.headers.get("accept", "").lower()


def _csv(rows: list[Any], kind: type[Any], filename: str) -> Response:
    """One header row (the dataclass's fields), then a row per item."""
    names = [f.name for f in fields(kind)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        values = asdict(row)
        writer.writerow(
            [
                values[n].isoformat()
                if isinstance(values[n], datetime)
                else ("" if values[n] is None else values[n])
                for n in names
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def parse_window(text: str) -> timedelta:
    """``7d``, ``36h``, ``90m``, ``600s`` or plain seconds; 400 for anything else."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ApiError(
            400, "invalid_request", "window must be a number with s, m, h or d, e.g. 7d or 36h"
        )
    window = timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])
    if not timedelta(0) < window <= MAX_WINDOW:
        raise ApiError(400, "invalid_request", "window must be over 0 and at most 365d")
    return window


async def _plan(services: Any, journey_id: str, version: str | None) -> Plan:
    """The plan of the version asked for, or the active one; 404 for an unknown either."""
    summaries = {j.journey_id: j for j in await list_journeys(services.pool)}
    summary = summaries.get(journey_id)
    if summary is None:
        raise ApiError(404, "not_found", f"no journey {journey_id!r} is deployed")
    if version is not None and version not in summary.versions:
        raise ApiError(404, "not_found", f"journey {journey_id!r} has no version {version!r}")
    return await load_plan(
        services.pool, journey_id=journey_id, version=version or summary.active_version
    )


def send_steps(plan: Plan) -> list[tuple[str, str, str]]:
    """(step id, stage, channel) of every send step, nested ones included, in document order."""
    return [
        (step.id, stage.name, step.channel)
        for stage in plan.stages
        for step in walk(stage.steps)
        if isinstance(step, SendStep)
    ]


@router.get("/{journey_id}/touchpoints", response_model=TouchpointsPublic)
async def journey_touchpoints(
    journey_id: str,
    request: Request,
    services: ServicesDep,
    version: str | None = None,
    window: str = DEFAULT_WINDOW,
    format: str | None = None,
) -> TouchpointsPublic | Response:
    """Per send step: what became of its messages, and the conversions it was the last touch of."""
    as_csv = _wants_csv(request, format)
    span = parse_window(window)
    plan = await _plan(services, journey_id, version)
    rows = await touchpoints(
        services.pool, journey_id=journey_id, steps=send_steps(plan), version=version, window=span
    )
    if as_csv:
        return _csv(rows, TouchpointKpis, f"{journey_id}-touchpoints.csv")
    return TouchpointsPublic(
        journey_id=journey_id,
        version=version,
        window_seconds=int(span.total_seconds()),
        touchpoints=[TouchpointPublic(**asdict(r)) for r in rows],
    )


@router.get("/{journey_id}/stages/timing", response_model=TimingPublic)
async def journey_stage_timing(
    journey_id: str,
    request: Request,
    services: ServicesDep,
    version: str | None = None,
    format: str | None = None,
) -> TimingPublic | Response:
    """Per stage: median and p90 time to convert, and how the customers who entered it left."""
    as_csv = _wants_csv(request, format)
    plan = await _plan(services, journey_id, version)
    rows = await stage_timing(
        services.pool, journey_id=journey_id, stages=[s.name for s in plan.stages], version=version
    )
    if as_csv:
        return _csv(rows, StageTiming, f"{journey_id}-stage-timing.csv")
    return TimingPublic(
        journey_id=journey_id,
        version=version,
        stages=[StageTimingPublic(**asdict(r)) for r in rows],
    )


def _utc(moment: datetime) -> datetime:
    # A time without an offset is read as UTC, the zone the buckets are cut in.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@router.get("/{journey_id}/trends", response_model=TrendsPublic)
async def journey_trends(
    journey_id: str,
    request: Request,
    services: ServicesDep,
    bucket: str = "day",
    stage: str | None = None,
    version: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    format: str | None = None,
) -> TrendsPublic | Response:
    """Entries and conversions per hour or day: the last 48 hours or 30 days unless told."""
    as_csv = _wants_csv(request, format)
    if bucket not in DEFAULT_SPAN:
        raise ApiError(400, "invalid_request", "bucket must be 'hour' or 'day'")
    end = _utc(until) if until is not None else datetime.now(UTC)
    start = _utc(since) if since is not None else end - DEFAULT_SPAN[bucket]
    if start >= end:
        raise ApiError(400, "invalid_request", "since must be before until")
    step = DEFAULT_SPAN[bucket] / (48 if bucket == "hour" else 30)
    if (end - start) / step > MAX_BUCKETS:
        raise ApiError(400, "invalid_request", f"at most {MAX_BUCKETS} buckets; narrow the range")
    plan = await _plan(services, journey_id, version)
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
        return _csv(points, TrendPoint, f"{journey_id}-trends.csv")
    return TrendsPublic(
        journey_id=journey_id,
        version=version,
        stage=stage,
        bucket="hour" if bucket == "hour" else "day",
        since=start,
        until=end,
        points=[TrendPointPublic(**asdict(p)) for p in points],
    )
