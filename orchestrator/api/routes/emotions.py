"""The emotion curve: average satisfaction per stage and per touchpoint of one journey.

``GET /api/journeys/{id}/emotions`` answers JSON, or CSV (one row per stage, then one per
touchpoint, told apart by ``level``) with ``?format=csv`` or an ``Accept: text/csv`` header.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from journeyman.orchestrator.storage.satisfaction import emotion_curve

from ..auth import AdminDep, ServicesDep
from ..errors import NulGuard, error_responses
from ..reports import CSV_RESPONSE, csv_response, journey_plan, send_steps, wants_csv

router = APIRouter(
    prefix="/api/journeys",
    tags=["emotions"],
    dependencies=[AdminDep, NulGuard],
    responses=error_responses(401),
)


class EmotionPointPublic(BaseModel):
    stage: str | None
    step_id: str | None
    answers: int
    rejected: int
    average: float | None
    csat_answers: int
    csat_average: float | None
    nps_answers: int
    nps_average: float | None
    nps: float | None
    promoters: int
    passives: int
    detractors: int
    score_answers: int
    score_average: float | None


class EmotionsPublic(BaseModel):
    journey_id: str
    version: str | None
    stages: list[EmotionPointPublic]
    touchpoints: list[EmotionPointPublic]


@dataclass(frozen=True)
class EmotionRow:
    """One CSV row: a stage or a touchpoint (an ``EmotionPoint`` with its level in front)."""

    level: Literal["stage", "touchpoint"]
    stage: str | None
    step_id: str | None
    answers: int
    rejected: int
    average: float | None
    csat_answers: int
    csat_average: float | None
    nps_answers: int
    nps_average: float | None
    nps: float | None
    promoters: int
    passives: int
    detractors: int
    score_answers: int
    score_average: float | None


@router.get(
    "/{journey_id}/emotions",
    response_model=EmotionsPublic,
    responses={**CSV_RESPONSE, **error_responses(400, 404, s404="no such journey or version")},
)
async def journey_emotions(
    journey_id: str,
    request: Request,
    services: ServicesDep,
    version: str | None = None,
    format: str | None = None,
) -> EmotionsPublic | Response:
    """Per stage (in the journey's order) and per touchpoint: satisfaction answers, the
    average of each measure, the common 0-10 average the curve is drawn from, and NPS."""
    as_csv = wants_csv(request, format)
    plan = await journey_plan(services, journey_id, version)
    curve = await emotion_curve(
        services.pool,
        journey_id=journey_id,
        stages=[stage.name for stage in plan.stages],
        steps=[(step_id, stage) for step_id, stage, _ in send_steps(plan)],
        version=version,
    )
    if as_csv:
        rows = [EmotionRow("stage", **asdict(p)) for p in curve.stages] + [
            EmotionRow("touchpoint", **asdict(p)) for p in curve.touchpoints
        ]
        return csv_response(rows, EmotionRow, f"{journey_id}-emotions.csv")
    return EmotionsPublic(
        journey_id=journey_id,
        version=version,
        stages=[EmotionPointPublic(**asdict(p)) for p in curve.stages],
        touchpoints=[EmotionPointPublic(**asdict(p)) for p in curve.touchpoints],
    )
