"""Two versions of a journey side by side: the compare page.

Its numbers are those of ``GET /api/journeys/{id}/compare`` (docs/reports.md), built by the
same function (``storage.version_comparison``), rounding included: per stage, each version's
entrants, conversions (the stage's goal and the journey's goal) with the Wilson interval, the
difference b - a with Newcombe's interval and the two-proportion p-value; exits by reason
(held-out customers as ``holdout``) as shares of the stage's entrants; time to convert. This
module finds the two versions and draws them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from markupsafe import Markup

from journeyman.orchestrator.storage import list_journeys
from journeyman.orchestrator.storage.journeys import JourneySummary
from journeyman.orchestrator.storage.version_comparison import (
    ExitPair,
    Side,
    StagePair,
    compare_versions,
)
from journeyman.workflows.plan import Plan

from . import comparison_charts, readings
from .views import UnknownJourney

# The pairs are the storage builder's; the page's charts and tests name them from here.
__all__ = ["ComparePage", "ExitPair", "SameVersion", "Side", "StagePair", "compare_page"]


class SameVersion(ValueError):
    """Both sides name the same version: there is nothing to compare."""


@dataclass(frozen=True)
class ComparePage:
    summary: JourneySummary
    plan_a: Plan
    plan_b: Plan
    stages: tuple[StagePair, ...]
    exits: tuple[ExitPair, ...]
    conversion_svg: Markup
    exits_svg: Markup | None  # None while no one left without converting in either
    timing_svg: Markup
    read_at: datetime

    @property
    def a(self) -> str:
        return self.plan_a.version

    @property
    def b(self) -> str:
        return self.plan_b.version


async def compare_page(
    pool: asyncpg.Pool, journey_id: str, *, a: str, b: str, now: datetime | None = None
) -> ComparePage:
    """Versions ``a`` and ``b`` of the journey side by side."""
    if a == b:
        raise SameVersion("a and b must be two different versions")
    summary = next((s for s in await list_journeys(pool) if s.journey_id == journey_id), None)
    if summary is None:
        raise UnknownJourney(f"no journey {journey_id!r} is deployed")
    for version in (a, b):
        if version not in summary.versions:
            raise UnknownJourney(f"journey {journey_id!r} has no version {version!r}")
    plan_a = await readings.plan_of(pool, journey_id, a)
    plan_b = await readings.plan_of(pool, journey_id, b)
    if plan_a is None or plan_b is None:  # pragma: no cover - listed versions have a plan
        raise UnknownJourney(f"journey {journey_id!r} has no version {a!r} or {b!r}")
    compared = await compare_versions(pool, journey_id=journey_id, plan_a=plan_a, plan_b=plan_b)
    stages, leaves = compared.stages, compared.exits
    return ComparePage(
        summary=summary,
        plan_a=plan_a,
        plan_b=plan_b,
        stages=stages,
        exits=leaves,
        conversion_svg=Markup(comparison_charts.conversion_pairs(stages, (a, b))),
        exits_svg=Markup(comparison_charts.exit_pairs(leaves, (a, b))) if leaves else None,
        timing_svg=Markup(comparison_charts.timing_pairs(stages, (a, b))),
        read_at=now or datetime.now(UTC),
    )
