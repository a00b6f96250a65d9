"""Experiment and holdout results of one journey: each variant's rate against the control's,
and the treated runs' rate against the held-out ones'.

One builder for ``GET /api/journeys/{id}/experiments`` and the journey page's experiments
section, so both show the same numbers and differ only in how they show them. The counts and
what converting means are ``experiment_reports``'s; this module gathers them per experiment
step (every version's steps in ``plans``, the first plan's definition winning) and puts each
group's Wilson interval and its comparison with the baseline beside its counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import asyncpg

from journeyman.workflows.plan import ExperimentStep, Plan

from .experiment_reports import (
    Comparison,
    GoalConversion,
    GroupCounts,
    MetricConversion,
    Rate,
    StoredDecision,
    compare,
    experiment_steps,
    holdout_counts,
    rate_of,
    stored_decision,
    variant_counts,
)

ConversionKind = Literal["metric", "goal"]


@dataclass(frozen=True)
class VariantResult:
    """One variant of an experiment step, against the control."""

    name: str
    control: bool
    rate: Rate
    versus: Comparison | None  # None for the control itself
    winner: bool  # the stored decision chose it


@dataclass(frozen=True)
class ExperimentResult:
    """One experiment step: its variants in the plan's order (then any only an older version
    had), and the decision stored for it."""

    step: ExperimentStep
    stage: str
    decision: StoredDecision | None
    variants: tuple[VariantResult, ...]


@dataclass(frozen=True)
class HoldoutResult:
    """The treated runs against the held-out ones, by the journey's goal."""

    versions: tuple[str, ...]  # the versions that hold customers out
    treated: Rate
    held_out: Rate
    uplift: Comparison  # treated against held out


@dataclass(frozen=True)
class ExperimentResults:
    """Every experiment step in scope, and the holdout."""

    experiments: tuple[ExperimentResult, ...]
    holdout: HoldoutResult | None  # None when no version in scope holds customers out


def goal_windows(plans: Sequence[Plan]) -> dict[str, timedelta | None]:
    """Each version's goal ``within`` (None: that version has no goal)."""
    return {
        plan.version: timedelta(seconds=plan.goal.within_seconds) if plan.goal else None
        for plan in plans
    }


async def _experiment(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    journey_id: str,
    step: ExperimentStep,
    stage: str,
    conversion: MetricConversion | GoalConversion,
    version: str | None,
    confidence: float,
    now: datetime,
) -> ExperimentResult:
    """One experiment step's variants; with ``version``, only entrants whose run is of it."""
    counts = await variant_counts(
        conn,
        journey_id=journey_id,
        step_id=step.id,
        conversion=conversion,
        now=now,
        version=version,
    )
    names = [v.name for v in step.variants]
    names += sorted(set(counts) - set(names))  # variants only an older version had
    groups = {name: counts.get(name, GroupCounts(name, 0, 0, 0)) for name in names}
    decision = await stored_decision(conn, journey_id=journey_id, step_id=step.id)
    control = groups[step.control]
    return ExperimentResult(
        step=step,
        stage=stage,
        decision=decision,
        variants=tuple(
            VariantResult(
                name=name,
                control=name == step.control,
                rate=rate_of(group, confidence),
                versus=None if name == step.control else compare(control, group, confidence),
                winner=decision is not None and decision.winner == name,
            )
            for name, group in groups.items()
        ),
    )


async def _holdout(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    journey_id: str,
    plans: Sequence[Plan],
    confidence: float,
    now: datetime,
) -> HoldoutResult | None:
    """The holdout of the versions in ``plans`` that hold customers out; None without any."""
    holding = [plan for plan in plans if plan.entry.holdout_percent > 0]
    if not holding:
        return None
    treated, held_out = await holdout_counts(
        conn, journey_id=journey_id, conversion=GoalConversion(goal_windows(holding)), now=now
    )
    return HoldoutResult(
        versions=tuple(plan.version for plan in holding),
        treated=rate_of(treated, confidence),
        held_out=rate_of(held_out, confidence),
        uplift=compare(held_out, treated, confidence),
    )


async def experiment_results(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    journey_id: str,
    plans: Sequence[Plan],
    conversion: ConversionKind,
    version: str | None,
    confidence: float,
    now: datetime,
) -> ExperimentResults:
    """Every experiment step of ``plans`` and their holdout.

    ``conversion`` ``metric`` counts each step's metric event within its window; ``goal``
    counts the journey's goal, each version's ``within`` as ``plans`` define it.
    """
    windows = goal_windows(plans)
    experiments = []
    for step, stage in experiment_steps(plans):
        by: MetricConversion | GoalConversion = (
            MetricConversion(step.metric, timedelta(seconds=step.window_seconds))
            if conversion == "metric"
            else GoalConversion(windows)
        )
        experiments.append(
            await _experiment(
                conn,
                journey_id=journey_id,
                step=step,
                stage=stage,
                conversion=by,
                version=version,
                confidence=confidence,
                now=now,
            )
        )
    return ExperimentResults(
        experiments=tuple(experiments),
        holdout=await _holdout(
            conn, journey_id=journey_id, plans=plans, confidence=confidence, now=now
        ),
    )
