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

from journeyman.orchestrator.proportions import DEFAULT_CONFIDENCE
from journeyman.orchestrator.storage.cohorts import Cohort, cohorts
from journeyman.orchestrator.storage.exits import StageExit, exits
from journeyman.orchestrator.storage.version_comparison import (
    ExitPair,
    StagePair,
    compare_versions,
)

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


def _stage_row(pair: StagePair) -> StageComparison:
    """A stage pair as one flat row: each side's fields prefixed ``a_`` and ``b_``."""
    return StageComparison(
        stage=pair.stage,
        **{f"a_{name}": value for name, value in asdict(pair.a).items()},
        **{f"b_{name}": value for name, value in asdict(pair.b).items()},
        difference=pair.difference,
        difference_low=pair.difference_low,
        difference_high=pair.difference_high,
        p_value=pair.p_value,
    )


def _exit_row(pair: ExitPair) -> ExitComparison:
    return ExitComparison(
        stage=pair.stage,
        reason=pair.reason,
        a=pair.a,
        b=pair.b,
        a_rate=pair.a_share,
        b_rate=pair.b_share,
    )


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
    compared = await compare_versions(
        services.pool, journey_id=journey_id, plan_a=plan_a, plan_b=plan_b
    )
    stages = [_stage_row(pair) for pair in compared.stages]
    leaves = [_exit_row(pair) for pair in compared.exits]
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
