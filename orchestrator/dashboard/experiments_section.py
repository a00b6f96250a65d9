"""The journey page's section on experiments and the holdout.

The numbers are those of ``GET /api/journeys/{id}/experiments`` with its defaults (conversion
by each experiment's metric, 95 % confidence; docs/experiments.md), read by the same storage
functions and gathered the same way: without a version, every version's experiment steps
(the active one's first) and every entrant; with one, that version's steps and the entrants
whose run is of it. The holdout compares the runs of the versions that hold customers out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import asyncpg
from markupsafe import Markup

from journeyman.orchestrator.proportions import DEFAULT_CONFIDENCE
from journeyman.orchestrator.storage.experiment_reports import (
    Comparison,
    GoalConversion,
    GroupCounts,
    MetricConversion,
    StoredDecision,
    compare,
    experiment_steps,
    holdout_counts,
    rate_of,
    report_plans,
    stored_decision,
    variant_counts,
)
from journeyman.workflows.plan import ExperimentStep, Plan

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


def _group(counts: GroupCounts, baseline: GroupCounts | None, *, winner: bool = False) -> Group:
    """A group compared with ``baseline``; the baseline itself when that is None."""
    return Group(
        name=counts.name,
        baseline=baseline is None,
        rate=rate_of(counts, CONFIDENCE),
        versus=compare(baseline, counts, CONFIDENCE) if baseline is not None else None,
        winner=winner,
    )


async def _experiment(
    pool: asyncpg.Pool, ref: JourneyRef, step: ExperimentStep, stage: str, now: datetime
) -> Experiment:
    counts = await variant_counts(
        pool,
        journey_id=ref.journey_id,
        step_id=step.id,
        conversion=MetricConversion(step.metric, timedelta(seconds=step.window_seconds)),
        now=now,
        version=ref.version,
    )
    names = [v.name for v in step.variants]
    names += sorted(set(counts) - set(names))  # variants only an older version had
    found = {name: counts.get(name, GroupCounts(name, 0, 0, 0)) for name in names}
    decision = await stored_decision(pool, journey_id=ref.journey_id, step_id=step.id)
    control = found[step.control]
    groups = tuple(
        _group(
            counts,
            None if name == step.control else control,
            winner=decision is not None and decision.winner == name,
        )
        for name, counts in found.items()
    )
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
        stage=stage,
        control=step.control,
        metric_event=step.metric.event,
        window_seconds=step.window_seconds,
        decision=decision,
        groups=groups,
        chart=Markup(chart),
    )


async def _holdout(
    pool: asyncpg.Pool, ref: JourneyRef, plans: list[Plan], now: datetime
) -> Holdout | None:
    holding = [plan for plan in plans if plan.entry.holdout_percent > 0]
    if not holding:
        return None
    windows = {
        plan.version: timedelta(seconds=plan.goal.within_seconds) if plan.goal else None
        for plan in holding
    }
    treated, held_out = await holdout_counts(
        pool, journey_id=ref.journey_id, conversion=GoalConversion(windows), now=now
    )
    # Named as the page says it; the counts are the report's.
    held_out = replace(held_out, name="held out")
    held = _group(held_out, None)
    treated_group = _group(treated, held_out)
    chart = charts.rates_chart(
        (treated_group, held),
        title="Holdout: treated against held-out customers",
        description="The share of treated and of held-out customers who reached the journey's "
        "goal, with 95% Wilson intervals; the difference is the journey's uplift.",
        baseline="held out",
        baseline_tag="baseline",
        class_="holdout",
    )
    return Holdout(
        versions=tuple(plan.version for plan in holding),
        treated=treated_group,
        held_out=held,
        chart=Markup(chart),
    )


async def experiments(
    pool: asyncpg.Pool, ref: JourneyRef, *, now: datetime | None = None
) -> dict[str, Any]:
    """The section's data: ``experiments`` (one per experiment step) and ``holdout`` (None
    when no version in scope holds customers out)."""
    moment = now or datetime.now(UTC)
    plans = await report_plans(pool, ref.plan, ref.versions, only_first=ref.version is not None)
    return {
        "experiments": [
            await _experiment(pool, ref, step, stage, moment)
            for step, stage in experiment_steps(plans)
        ],
        "holdout": await _holdout(pool, ref, plans, moment),
        "confidence": CONFIDENCE,
        "verdict": charts.verdict,
        "versus_text": charts.versus_text,
    }
