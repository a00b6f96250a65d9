"""Two versions of a journey side by side: per stage conversion, exits and time to convert.

One builder for ``GET /api/journeys/{id}/compare`` and the dashboard's compare page, so both
show the same numbers, rounding included, and differ only in how they show them. Per stage,
each version's entrants and conversions (the stage's goal and the journey's goal, as time to
convert counts them) with the Wilson interval, the difference b - a with Newcombe's interval
and the two-proportion p-value; exits by reason (held-out customers as ``holdout``) as shares
of the stage's entrants; the median and 90th percentile time to convert.

The stages are version a's, then those only b has, then any that neither plan has but either
version's counters know (a stage an older plan had).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import asyncpg

from journeyman.orchestrator.proportions import (
    DEFAULT_CONFIDENCE,
    difference_interval,
    two_proportion_p_value,
    wilson,
)
from journeyman.workflows.plan import Plan

from .exits import EXIT_REASONS, HOLDOUT
from .funnel import StageFunnel, funnel
from .stage_reports import StageTiming, stage_timing

# The report's precision: rates and differences to 4 decimals, p-values to 6.
DIGITS: Final = 4
P_DIGITS: Final = 6


@dataclass(frozen=True)
class Side:
    """One stage in one version."""

    entered: int
    converted: int  # the stage's goal or the journey's goal
    still_in: int
    rate: float
    rate_low: float
    rate_high: float
    median_seconds: float | None
    p90_seconds: float | None


@dataclass(frozen=True)
class StagePair:
    """One stage in versions a and b; ``difference`` is rate b - rate a."""

    stage: str
    in_a: bool  # the stage is in version a's plan
    in_b: bool
    a: Side
    b: Side
    difference: float
    difference_low: float
    difference_high: float
    p_value: float | None

    @property
    def comparable(self) -> bool:
        """Both versions had entrants: a difference means something."""
        return self.a.entered > 0 and self.b.entered > 0

    @property
    def significant(self) -> bool | None:
        """Whether the p-value is below 1 - the confidence of the intervals."""
        return None if self.p_value is None else self.p_value < 1 - DEFAULT_CONFIDENCE


@dataclass(frozen=True)
class ExitPair:
    """Leaves of one stage for one reason (or ``holdout``) in versions a and b."""

    stage: str
    reason: str
    a: int
    b: int
    a_share: float  # of the stage's entrants in a
    b_share: float


@dataclass(frozen=True)
class VersionComparison:
    stages: tuple[StagePair, ...]
    exits: tuple[ExitPair, ...]  # per stage in the stages' order, by reason


def _side(found: StageFunnel | None, timing: StageTiming | None) -> Side:
    entered, converted, still_in = 0, 0, 0
    if found is not None:
        # Never more conversions than entries, even if a counter was once bumped alone.
        entered = found.entered
        converted = min(found.converted + found.goal, found.entered)
        still_in = max(found.current, 0)
    low, high = wilson(converted, entered)
    return Side(
        entered=entered,
        converted=converted,
        still_in=still_in,
        rate=round(converted / entered if entered else 0.0, DIGITS),
        rate_low=round(low, DIGITS),
        rate_high=round(high, DIGITS),
        median_seconds=timing.median_seconds if timing else None,
        p90_seconds=timing.p90_seconds if timing else None,
    )


def _pair(stage: str, plans: tuple[Plan, Plan], a: Side, b: Side) -> StagePair:
    difference = difference_interval(a.converted, a.entered, b.converted, b.entered)
    p = two_proportion_p_value(a.converted, a.entered, b.converted, b.entered)
    # From the counts, not the rounded rates: the difference is rounded once.
    rate_a = a.converted / a.entered if a.entered else 0.0
    rate_b = b.converted / b.entered if b.entered else 0.0
    return StagePair(
        stage=stage,
        in_a=any(s.name == stage for s in plans[0].stages),
        in_b=any(s.name == stage for s in plans[1].stages),
        a=a,
        b=b,
        difference=round(rate_b - rate_a, DIGITS),
        difference_low=round(difference.low, DIGITS),
        difference_high=round(difference.high, DIGITS),
        p_value=round(p, P_DIGITS) if p is not None else None,
    )


def _exits(stage: str, a: StageFunnel | None, b: StageFunnel | None) -> list[ExitPair]:
    by_a = a.exits_by_reason if a else {}
    by_b = b.exits_by_reason if b else {}
    order = [*EXIT_REASONS, HOLDOUT]
    reasons = sorted(
        set(by_a) | set(by_b), key=lambda r: (order.index(r) if r in order else len(order), r)
    )
    entered_a, entered_b = (a.entered if a else 0), (b.entered if b else 0)
    return [
        ExitPair(
            stage=stage,
            reason=reason,
            a=by_a.get(reason, 0),
            b=by_b.get(reason, 0),
            a_share=round(by_a.get(reason, 0) / entered_a, DIGITS) if entered_a else 0.0,
            b_share=round(by_b.get(reason, 0) / entered_b, DIGITS) if entered_b else 0.0,
        )
        for reason in reasons
    ]


async def compare_versions(
    conn: asyncpg.Connection | asyncpg.Pool, *, journey_id: str, plan_a: Plan, plan_b: Plan
) -> VersionComparison:
    """Versions ``plan_a`` and ``plan_b`` of the journey, stage by stage."""
    a, b = plan_a.version, plan_b.version
    names = [s.name for s in plan_a.stages]
    names += [s.name for s in plan_b.stages if s.name not in names]
    funnels: dict[str, dict[str, StageFunnel]] = {}
    timings: dict[str, dict[str, StageTiming]] = {}
    for version in (a, b):
        rows = await funnel(conn, journey_id=journey_id, stages=names, version=version)
        funnels[version] = {f.stage: f for f in rows}
        times = await stage_timing(conn, journey_id=journey_id, stages=names, version=version)
        timings[version] = {t.stage: t for t in times}
    # Stages neither plan has still show when either version's counters know them.
    ordered = names + sorted((set(funnels[a]) | set(funnels[b])) - set(names))
    stages = tuple(
        _pair(
            stage,
            (plan_a, plan_b),
            _side(funnels[a].get(stage), timings[a].get(stage)),
            _side(funnels[b].get(stage), timings[b].get(stage)),
        )
        for stage in ordered
    )
    leaves = tuple(
        row
        for stage in ordered
        for row in _exits(stage, funnels[a].get(stage), funnels[b].get(stage))
    )
    return VersionComparison(stages=stages, exits=leaves)
