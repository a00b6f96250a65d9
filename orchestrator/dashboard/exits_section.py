"""The journey page's section on why customers leave, and what became of each week's entrants.

The numbers are the journey reports' (docs/reports.md), read by the same storage functions:
the funnel's exits by reason for the chart, ``GET /api/journeys/{id}/exits`` for the table,
and ``GET /api/journeys/{id}/cohorts`` with its default of 12 weeks for the cohorts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
from markupsafe import Markup

from journeyman.orchestrator.storage.cohorts import cohorts
from journeyman.orchestrator.storage.exits import exits
from journeyman.orchestrator.storage.funnel import funnel

from . import exit_charts
from .views import JourneyRef

COHORT_WEEKS: Final = 12  # the cohorts report's default
OUTCOME_LABELS: Final[dict[str, str]] = {
    "moved_on": "moved on",
    "exited": "exited",
    "migrated": "migrated",
}


async def exits_and_cohorts(
    pool: asyncpg.Pool, ref: JourneyRef, *, now: datetime | None = None
) -> dict[str, Any]:
    """The section's data: ``leaves`` and ``chart`` (per stage and reason), ``exits`` (the
    exits report's rows), ``cohorts`` with their ``stages`` and ``weeks``."""
    stages = [s.name for s in ref.plan.stages]
    journey_id = ref.journey_id
    rows = await funnel(pool, journey_id=journey_id, stages=stages, version=ref.version)
    leaves = exit_charts.stage_leaves(rows, stages)
    found = await exits(pool, journey_id=journey_id, stages=stages, version=ref.version)
    weeks = await cohorts(
        pool,
        journey_id=journey_id,
        stages=stages,
        weeks=COHORT_WEEKS,
        until=now or datetime.now(UTC),
        version=ref.version,
    )
    return {
        "leaves": leaves,
        "chart": Markup(exit_charts.exits_chart(leaves)) if any(s.any for s in leaves) else None,
        "exits": found,
        "outcome_labels": OUTCOME_LABELS,
        "cohorts": weeks,
        "stages": list(weeks[0].reached) if weeks else stages,
        "weeks": COHORT_WEEKS,
        "entered": sum(c.entered for c in weeks),
    }
