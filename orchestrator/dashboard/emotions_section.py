"""The journey page's emotion curve: how customers feel at each stage and touchpoint.

The numbers are those of ``GET /api/journeys/{id}/emotions`` (docs/emotions.md), read by the
same storage function: satisfaction answers counted per stage and per touchpoint as they
arrived, every measure on the common 0-10 scale, and NPS where it was asked.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from markupsafe import Markup

from journeyman.orchestrator.storage.kpis import declared_touchpoints
from journeyman.orchestrator.storage.satisfaction import emotion_curve

from . import emotion_charts
from .views import JourneyRef


async def emotions(pool: asyncpg.Pool, ref: JourneyRef) -> dict[str, Any]:
    """The section's data: ``stages`` and ``touchpoints`` (the report's points), ``answers``
    and ``rejected`` over every stage, and ``chart`` (None before the first answer)."""
    plan_stages = [s.name for s in ref.plan.stages]
    curve = await emotion_curve(
        pool,
        journey_id=ref.journey_id,
        stages=plan_stages,
        steps=[(t.id, t.stage) for t in declared_touchpoints(ref.plan) if t.kind == "message"],
        version=ref.version,
    )
    answers = sum(p.answers for p in curve.stages)
    # The curve runs along the plan's stages; stages only older versions had are in the table.
    drawn = [p for p in curve.stages if p.stage in plan_stages]
    return {
        "stages": curve.stages,
        "touchpoints": curve.touchpoints,
        "plan_stages": plan_stages,
        "answers": answers,
        "rejected": sum(p.rejected for p in curve.stages),
        "nps_measured": any(p.nps_answers for p in curve.stages),
        "chart": Markup(emotion_charts.emotion_curve(drawn)) if answers else None,
    }
