"""Experiment and holdout results of one journey: conversion per variant with intervals.

``GET /api/journeys/{id}/experiments`` answers JSON, or CSV (one row per variant, then the
treated and held-out groups) with ``?format=csv`` or an ``Accept: text/csv`` header.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from journeyman.orchestrator.proportions import DEFAULT_CONFIDENCE
from journeyman.orchestrator.storage import list_journeys
from journeyman.orchestrator.storage.experiment_reports import Comparison, report_plans
from journeyman.orchestrator.storage.experiment_results import (
    ConversionKind,
    ExperimentResult,
    HoldoutResult,
    VariantResult,
    experiment_results,
    goal_windows,
)
from journeyman.workflows.plan import Plan

from ..auth import AdminDep, ServicesDep
from ..errors import ApiError, NulGuard, error_responses
from ..reports import CSV_RESPONSE, csv_response, journey_plan, wants_csv

router = APIRouter(
    prefix="/api/journeys",
    tags=["experiments"],
    dependencies=[AdminDep, NulGuard],
    responses=error_responses(401),
)


class RatePublic(BaseModel):
    entrants: int
    conversions: int
    pending: int
    rate: float | None
    rate_low: float
    rate_high: float


class VariantPublic(RatePublic):
    name: str
    control: bool
    difference: float | None
    difference_low: float | None
    difference_high: float | None
    relative_difference: float | None
    p_value: float | None
    significant: bool | None


class DecisionPublic(BaseModel):
    winner: str
    decided_at: datetime
    results: dict[str, Any]


class ExperimentPublic(BaseModel):
    step_id: str
    stage: str
    control: str
    metric_event: str | None  # None when conversion is the journey's goal
    window_seconds: int | None
    decision: DecisionPublic | None
    variants: list[VariantPublic]


class HoldoutPublic(BaseModel):
    versions: list[str]
    treated: RatePublic
    held_out: RatePublic
    uplift: float | None
    uplift_low: float | None
    uplift_high: float | None
    relative_uplift: float | None
    p_value: float | None
    significant: bool | None


class ExperimentsPublic(BaseModel):
    journey_id: str
    version: str | None
    confidence: float
    conversion: ConversionKind
    experiments: list[ExperimentPublic]
    holdout: HoldoutPublic | None


@dataclass(frozen=True)
class ReportRow:
    """One CSV row: a variant of an experiment, or the treated or held-out group."""

    kind: Literal["experiment", "holdout"]
    step_id: str | None
    stage: str | None
    group: str
    baseline: bool  # the control variant, or the held-out group
    entrants: int
    conversions: int
    pending: int
    rate: float | None
    rate_low: float
    rate_high: float
    difference: float | None
    difference_low: float | None
    difference_high: float | None
    relative_difference: float | None
    p_value: float | None
    significant: bool | None
    winner: str | None
    decided_at: datetime | None


def _confidence(value: float) -> float:
    # NaN fails both comparisons, so it is refused too.
    if not 0.5 < value < 1:
        raise ApiError(
            400, "invalid_request", "confidence must be above 0.5 and below 1, e.g. 0.95"
        )
    return value


def _conversion(value: str) -> ConversionKind:
    if value == "metric":
        return "metric"
    if value == "goal":
        return "goal"
    raise ApiError(400, "invalid_request", "conversion must be 'metric' or 'goal'")


async def _plans(services: Any, journey_id: str, version: str | None) -> list[Plan]:
    """The version asked for; or the active one first, then the others, newest first."""
    first = await journey_plan(services, journey_id, version)
    summary = next(j for j in await list_journeys(services.pool) if j.journey_id == journey_id)
    return await report_plans(
        services.pool, first, summary.versions, only_first=version is not None
    )


# The control is not compared with itself: its comparison fields are all empty.
_NO_COMPARISON = Comparison(None, None, None, None, None, None)


def _variant(variant: VariantResult) -> VariantPublic:
    return VariantPublic(
        name=variant.name,
        control=variant.control,
        **asdict(variant.rate),
        **asdict(variant.versus or _NO_COMPARISON),
    )


def _experiment(result: ExperimentResult, kind: ConversionKind) -> ExperimentPublic:
    step, decision = result.step, result.decision
    return ExperimentPublic(
        step_id=step.id,
        stage=result.stage,
        control=step.control,
        metric_event=step.metric.event if kind == "metric" else None,
        window_seconds=step.window_seconds if kind == "metric" else None,
        decision=DecisionPublic(**asdict(decision)) if decision is not None else None,
        variants=[_variant(v) for v in result.variants],
    )


def _holdout(result: HoldoutResult | None) -> HoldoutPublic | None:
    if result is None:
        return None
    uplift = result.uplift
    return HoldoutPublic(
        versions=list(result.versions),
        treated=RatePublic(**asdict(result.treated)),
        held_out=RatePublic(**asdict(result.held_out)),
        uplift=uplift.difference,
        uplift_low=uplift.difference_low,
        uplift_high=uplift.difference_high,
        relative_uplift=uplift.relative_difference,
        p_value=uplift.p_value,
        significant=uplift.significant,
    )


def _rows(report: ExperimentsPublic) -> list[ReportRow]:
    rows = []
    for experiment in report.experiments:
        decided = experiment.decision
        for v in experiment.variants:
            rows.append(
                ReportRow(
                    kind="experiment",
                    step_id=experiment.step_id,
                    stage=experiment.stage,
                    group=v.name,
                    baseline=v.control,
                    **v.model_dump(exclude={"name", "control"}),
                    winner=decided.winner if decided else None,
                    decided_at=decided.decided_at if decided else None,
                )
            )
    holdout = report.holdout
    if holdout is not None:
        for name, rate in (("treated", holdout.treated), ("held_out", holdout.held_out)):
            treated = name == "treated"
            rows.append(
                ReportRow(
                    kind="holdout",
                    step_id=None,
                    stage=None,
                    group=name,
                    baseline=not treated,
                    **rate.model_dump(),
                    difference=holdout.uplift if treated else None,
                    difference_low=holdout.uplift_low if treated else None,
                    difference_high=holdout.uplift_high if treated else None,
                    relative_difference=holdout.relative_uplift if treated else None,
                    p_value=holdout.p_value if treated else None,
                    significant=holdout.significant if treated else None,
                    winner=None,
                    decided_at=None,
                )
            )
    return rows


@router.get(
    "/{journey_id}/experiments",
    response_model=ExperimentsPublic,
    responses={**CSV_RESPONSE, **error_responses(400, 404, s404="no such journey or version")},
)
async def journey_experiments(
    journey_id: str,
    request: Request,
    services: ServicesDep,
    version: str | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    conversion: str = "metric",
    format: str | None = None,
) -> ExperimentsPublic | Response:
    """Per experiment step: each variant's conversion rate against the control's, and the
    stored decision; and the journey's treated runs against its held-out ones."""
    as_csv = wants_csv(request, format)
    confidence = _confidence(confidence)
    kind = _conversion(conversion)
    plans = await _plans(services, journey_id, version)
    if kind == "goal" and not any(goal_windows(plans).values()):
        raise ApiError(
            400,
            "invalid_request",
            f"journey {journey_id!r} has no conversion goal"
            + (f" in version {version!r}" if version else "")
            + ": use conversion=metric",
        )
    results = await experiment_results(
        services.pool,
        journey_id=journey_id,
        plans=plans,
        conversion=kind,
        version=version,
        confidence=confidence,
        now=datetime.now(UTC),
    )
    report = ExperimentsPublic(
        journey_id=journey_id,
        version=version,
        confidence=confidence,
        conversion=kind,
        experiments=[_experiment(result, kind) for result in results.experiments],
        holdout=_holdout(results.holdout),
    )
    if as_csv:
        return csv_response(_rows(report), ReportRow, f"{journey_id}-experiments.csv")
    return report
