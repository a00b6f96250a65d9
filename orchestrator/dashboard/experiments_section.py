"""The journey page's section on experiments and the holdout.

The numbers are those of ``GET /api/journeys/{id}/experiments`` with its defaults (conversion
by each experiment's metric, 95 % confidence; docs/experiments.md), built by the same function
(``storage.experiment_results``): without a version, every version's experiment steps (the
active one's first) and every entrant; with one, that version's steps and the entrants whose
run is of it. The holdout compares the runs of the versions that hold customers out. This
module only draws them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
from markupsafe import Markup

from journeyman.orchestrator.proportions import DEFAULT_CONFIDENCE
from journeyman.orchestrator.storage.experiment_reports import (
    Comparison,
    StoredDecision,
    report_plans,
)
from journeyman.orchestrator.storage.experiment_results import (
    ExperimentResult,
    HoldoutResult,
    VariantResult,
    experiment_results,
)

from . import experiment_charts as charts
from .experiment_charts import Group
from .views import JourneyRef

CONFIDENCE: Final = DEFAULT_CONFIDENCE


@dataclass(frozen=True)
class Experiment:
    step_id: str
    stage: str
    control: str
    metric_event: str
    window_seconds: int
    decision: StoredDecision | None
    groups: tuple[Group, ...]
    chart: Markup


@dataclass(frozen=True)
class Holdout:
    versions: tuple[str, ...]
    treated: Group
    held_out: Group
    chart: Markup

    @property
    def uplift(self) -> Comparison:
        assert self.treated.versus is not None  # the treated group is compared by definition
        return self.treated.versus


def _group(variant: VariantResult) -> Group:
    return Group(
        name=variant.name,
        baseline=variant.control,
        rate=variant.rate,
        versus=variant.versus,
        winner=variant.winner,
    )


def _experiment(result: ExperimentResult) -> Experiment:
    step = result.step
    groups = tuple(_group(v) for v in result.variants)
    chart = charts.rates_chart(
        groups,
        title=f"Experiment {step.id}: conversion per variant",
        description=f"For each variant of {step.id}, the share of its entrants who sent "
        f"{step.metric.event} within the window, with its 95% Wilson interval, against the "
        f"control {step.control}.",
        baseline="the control",
        baseline_tag="control",
        class_="experiment",
    )
    return Experiment(
        step_id=step.id,
        stage=result.stage,
        control=step.control,
        metric_event=step.metric.event,
        window_seconds=step.window_seconds,
        decision=result.decision,
        groups=groups,
        chart=Markup(chart),
    )


def _holdout(result: HoldoutResult | None) -> Holdout | None:
    if result is None:
        return None
    treated = Group(name="treated", baseline=False, rate=result.treated, versus=result.uplift)
    # Named as the page says it; the numbers are the report's.
    held = Group(name="held out", baseline=True, rate=result.held_out, versus=None)
    chart = charts.rates_chart(
        (treated, held),
        title="Holdout: treated against held-out customers",
        description="The share of treated and of held-out customers who reached the journey's "
        "goal, with 95% Wilson intervals; the difference is the journey's uplift.",
        baseline="held out",
        baseline_tag="baseline",
        class_="holdout",
    )
    return Holdout(versions=result.versions, treated=treated, held_out=held, chart=Markup(chart))


async def experiments(
    pool: asyncpg.Pool, ref: JourneyRef, *, now: datetime | None = None
) -> dict[str, Any]:
    """The section's data: ``experiments`` (one per experiment step) and ``holdout`` (None
    when no version in scope holds customers out)."""
    plans = await report_plans(pool, ref.plan, ref.versions, only_first=ref.version is not None)
    results = await experiment_results(
        pool,
        journey_id=ref.journey_id,
        plans=plans,
        conversion="metric",
        version=ref.version,
        confidence=CONFIDENCE,
        now=now or datetime.now(UTC),
    )
    return {
        "experiments": [_experiment(result) for result in results.experiments],
        "holdout": _holdout(results.holdout),
        "confidence": CONFIDENCE,
        "verdict": charts.verdict,
        "versus_text": charts.versus_text,
    }
