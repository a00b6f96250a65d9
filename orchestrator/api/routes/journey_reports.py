"""Exit reasons, cohorts by entry week and version comparison of one journey.

Every route answers JSON, or CSV (a header row, then one row per item) with ``?format=csv``
or an ``Accept: text/csv`` header. What each number means: docs/reports.md.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from journeyman.orchestrator.proportions import (
    DEFAULT_CONFIDENCE,
    difference_interval,
    two_proportion_p_value,
    wilson,
)
from journeyman.orchestrator.storage.cohorts import Cohort, cohorts
from journeyman.orchestrator.storage.exits import EXIT_REASONS, HOLDOUT, StageExit, exits
from journeyman.orchestrator.storage.funnel import StageFunnel, funnel
from journeyman.orchestrator.storage.kpis import StageTiming, stage_timing

from ..auth import AdminDep, ServicesDep
from ..errors import ApiError, NulGuard, error_responses
from ..reports import CSV_RESPONSE, IsoDate, csv_response, journey_plan, wants_csv

router = APIRouter(
    prefix="/api/journeys",
    tags=["journey reports"],
    dependencies=[AdminDep, NulGuard],
    responses=error_responses(401),
)

_RESPONSES = {**CSV_RESPONSE, **error_responses(400, 404, s404="no such journey or version")}


DEFAULT_WEEKS = 12
MAX_WEEKS = 104  # two years of weekly cohorts


# --- exits ---------------------------------------------------------------------------------


class ExitPublic(BaseModel):
    stage: str
    outcome: str
    reason: str
    detail: str | None
    treated: int
    holdout: int
    total: int


class ExitsPublic(BaseModel):
    journey_id: str
    version: str | None
    exits: list[ExitPublic]


@router.get("/{journey_id}/exits", response_model=ExitsPublic, responses=_RESPONSES)
async def journey_exits(
    journey_id: str,
    request: Request,
    services: ServicesDep,
    version: str | None = None,
    format: str | None = None,
) -> ExitsPublic | Response:
    """Per stage, outcome and reason: customers who left without converting, held-out apart."""
    as_csv = wants_csv(request, format)
    plan = await journey_plan(services, journey_id, version)
    rows = await exits(
        services.pool, journey_id=journey_id, stages=[s.name for s in plan.stages], version=version
    )
    if as_csv:
        return csv_response(rows, StageExit, f"{journey_id}-exits.csv")
    return ExitsPublic(
        journey_id=journey_id, version=version, exits=[ExitPublic(**asdict(r)) for r in rows]
    )


# --- cohorts -------------------------------------------------------------------------------


class CohortPublic(BaseModel):
    week: date
    entered: int
    reached: dict[str, int]
    converted: int
    exited: int
    completed: int
    active: int
    conversion_rate: float


class CohortsPublic(BaseModel):
    journey_id: str
    version: str | None
    weeks: int
    stages: list[str]
    cohorts: list[CohortPublic]


def _cohorts_csv(rows: list[Cohort], stages: list[str], filename: str) -> Response:
    """Wide CSV, one column per stage reached: spreadsheets chart a cohort table as it is."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "week",
            "entered",
            *(f"reached_{s}" for s in stages),
            *("converted", "exited", "completed", "active", "conversion_rate"),
        ]
    )
    for c in rows:
        writer.writerow(
            [
                c.week.isoformat(),
                c.entered,
                *(c.reached.get(s, 0) for s in stages),
                *(c.converted, c.exited, c.completed, c.active, c.conversion_rate),
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/{journey_id}/cohorts", response_model=CohortsPublic, responses=_RESPONSES)
async def journey_cohorts(
    journey_id: str,
    request: Request,
    services: ServicesDep,
    version: str | None = None,
    weeks: int = DEFAULT_WEEKS,
    until: IsoDate = None,
    format: str | None = None,
) -> CohortsPublic | Response:
    """Per ISO week of entry: entered, reached each stage, converted, exited, still active."""
    as_csv = wants_csv(request, format)
    if not 1 <= weeks <= MAX_WEEKS:
        raise ApiError(400, "invalid_request", f"weeks must be from 1 to {MAX_WEEKS}")
    plan = await journey_plan(services, journey_id, version)
    rows = await cohorts(
        services.pool,
        journey_id=journey_id,
        stages=[s.name for s in plan.stages],
        weeks=weeks,
        until=until or datetime.now(UTC),
        version=version,
    )
    stages = list(rows[0].reached) if rows else [s.name for s in plan.stages]
    if as_csv:
        return _cohorts_csv(rows, stages, f"{journey_id}-cohorts.csv")
    return CohortsPublic(
        journey_id=journey_id,
        version=version,
        weeks=weeks,
        stages=stages,
        cohorts=[CohortPublic(**asdict(c)) for c in rows],
    )


# --- comparing two versions ----------------------------------------------------------------


@dataclass(frozen=True)
class StageComparison:
    """One stage in versions a and b; ``difference`` is rate b - rate a."""

    stage: str
    a_entered: int
    a_converted: int
    a_still_in: int
    a_rate: float
    a_rate_low: float
    a_rate_high: float
    a_median_seconds: float | None
    a_p90_seconds: float | None
    b_entered: int
    b_converted: int
    b_still_in: int
    b_rate: float
    b_rate_low: float
    b_rate_high: float
    b_median_seconds: float | None
    b_p90_seconds: float | None
    difference: float
    difference_low: float
    difference_high: float
    p_value: float | None


@dataclass(frozen=True)
class ExitComparison:
    """Leaves of one stage for one reason (or ``holdout``) in versions a and b."""

    stage: str
    reason: str
    a: int
    b: int
    a_rate: float  # share of the stage's entrants in a
    b_rate: float


class ComparisonPublic(BaseModel):
    journey_id: str
    a: str
    b: str
    confidence: float
    stages: list[StageComparison]
    exits: list[ExitComparison]


def _side(f: StageFunnel | None) -> tuple[int, int, int]:
    """(entered, converted, still in) of a stage in one version; converted counts the
    stage's goal and the journey's goal, as time to convert does."""
    if f is None:
        return 0, 0, 0
    # Never more conversions than entries, even if a counter was once bumped alone.
    return f.entered, min(f.converted + f.goal, f.entered), max(f.current, 0)


def _compare_stage(
    stage: str,
    a: tuple[StageFunnel | None, StageTiming | None],
    b: tuple[StageFunnel | None, StageTiming | None],
) -> StageComparison:
    (ea, ca, sa), (eb, cb, sb) = _side(a[0]), _side(b[0])
    wa, wb = wilson(ca, ea), wilson(cb, eb)
    rate_a, rate_b = (ca / ea if ea else 0.0), (cb / eb if eb else 0.0)
    diff = difference_interval(ca, ea, cb, eb)
    p = two_proportion_p_value(ca, ea, cb, eb)
    return StageComparison(
        stage=stage,
        a_entered=ea,
        a_converted=ca,
        a_still_in=sa,
        a_rate=round(rate_a, 4),
        a_rate_low=round(wa.low, 4),
        a_rate_high=round(wa.high, 4),
        a_median_seconds=a[1].median_seconds if a[1] else None,
        a_p90_seconds=a[1].p90_seconds if a[1] else None,
        b_entered=eb,
        b_converted=cb,
        b_still_in=sb,
        b_rate=round(rate_b, 4),
        b_rate_low=round(wb.low, 4),
        b_rate_high=round(wb.high, 4),
        b_median_seconds=b[1].median_seconds if b[1] else None,
        b_p90_seconds=b[1].p90_seconds if b[1] else None,
        difference=round(rate_b - rate_a, 4),
        difference_low=round(diff.low, 4),
        difference_high=round(diff.high, 4),
        p_value=round(p, 6) if p is not None else None,
    )


def _compare_exits(
    stage: str, a: StageFunnel | None, b: StageFunnel | None
) -> list[ExitComparison]:
    by_a = a.exits_by_reason if a else {}
    by_b = b.exits_by_reason if b else {}
    order = [*EXIT_REASONS, HOLDOUT]
    reasons = sorted(
        set(by_a) | set(by_b), key=lambda r: (order.index(r) if r in order else len(order), r)
    )
    entered_a, entered_b = (a.entered if a else 0), (b.entered if b else 0)
    return [
        ExitComparison(
            stage=stage,
            reason=reason,
            a=by_a.get(reason, 0),
            b=by_b.get(reason, 0),
            a_rate=round(by_a.get(reason, 0) / entered_a, 4) if entered_a else 0.0,
            b_rate=round(by_b.get(reason, 0) / entered_b, 4) if entered_b else 0.0,
        )
        for reason in reasons
    ]


@router.get("/{journey_id}/compare", response_model=ComparisonPublic, responses=_RESPONSES)
async def journey_compare(
    journey_id: str,
    request: Request,
    services: ServicesDep,
    a: str,
    b: str,
    table: str = "stages",
    format: str | None = None,
) -> ComparisonPublic | Response:
    """Two versions side by side: per stage conversion with intervals, the difference with
    its interval and p-value, exits by reason, and time to convert."""
    as_csv = wants_csv(request, format)
    if table not in ("stages", "exits"):
        raise ApiError(400, "invalid_request", "table must be 'stages' or 'exits'")
    if a == b:
        raise ApiError(400, "invalid_request", "a and b must be two different versions")
    plan_a = await journey_plan(services, journey_id, a)
    plan_b = await journey_plan(services, journey_id, b)
    names = [s.name for s in plan_a.stages]
    names += [s.name for s in plan_b.stages if s.name not in names]
    pool = services.pool
    funnels = {
        v: {f.stage: f for f in await funnel(pool, journey_id=journey_id, stages=names, version=v)}
        for v in (a, b)
    }
    timings = {
        v: {
            t.stage: t
            for t in await stage_timing(pool, journey_id=journey_id, stages=names, version=v)
        }
        for v in (a, b)
    }
    # Stages neither plan has still show when either version's counters know them.
    ordered = names + sorted((set(funnels[a]) | set(funnels[b])) - set(names))
    stages = [
        _compare_stage(
            stage,
            (funnels[a].get(stage), timings[a].get(stage)),
            (funnels[b].get(stage), timings[b].get(stage)),
        )
        for stage in ordered
    ]
    leaves = [
        row
        for stage in ordered
        for row in _compare_exits(stage, funnels[a].get(stage), funnels[b].get(stage))
    ]
    if as_csv and table == "exits":
        return csv_response(leaves, ExitComparison, f"{journey_id}-compare-exits.csv")
    if as_csv:
        return csv_response(stages, StageComparison, f"{journey_id}-compare.csv")
    return ComparisonPublic(
        journey_id=journey_id,
        a=a,
        b=b,
        confidence=DEFAULT_CONFIDENCE,
        stages=stages,
        exits=leaves,
    )
