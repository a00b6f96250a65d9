"""Conversion rates with their uncertainty: intervals and tests on proportions.

Reports show a rate with its interval, never a bare percentage: with 40 entrants a 10 % rate
could be anything from 4 % to 23 %. The Wilson score interval keeps its coverage at small counts
and near 0 or 1 where the textbook (Wald) interval collapses; the difference of two rates uses
Newcombe's method built from the two Wilson intervals, for the same reason.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import NamedTuple

DEFAULT_CONFIDENCE = 0.95


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


class Interval(NamedTuple):
    low: float
    high: float


def wilson(successes: int, trials: int, confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """The Wilson score interval of ``successes / trials``; (0, 1) when there are no trials."""
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return Interval(0.0, 1.0)
    z = _z(confidence)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # Exact ends at 0 and n: rounding must not put the interval beside its own estimate.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Interval(low, high)


def difference_interval(
    successes_a: int,
    trials_a: int,
    successes_b: int,
    trials_b: int,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Interval:
    """Newcombe's interval for rate(b) - rate(a), from the two Wilson intervals."""
    if trials_a == 0 or trials_b == 0:
        return Interval(-1.0, 1.0)
    p_a, p_b = successes_a / trials_a, successes_b / trials_b
    a = wilson(successes_a, trials_a, confidence)
    b = wilson(successes_b, trials_b, confidence)
    delta = p_b - p_a
    low = delta - math.sqrt((p_b - b.low) ** 2 + (a.high - p_a) ** 2)
    high = delta + math.sqrt((b.high - p_b) ** 2 + (p_a - a.low) ** 2)
    return Interval(max(-1.0, low), min(1.0, high))


def two_proportion_p_value(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int
) -> float | None:
    """Two-sided p-value of the pooled z-test that both rates are equal; None when untestable
    (a side with no trials, or every trial the same outcome on both sides)."""
    if trials_a == 0 or trials_b == 0:
        return None
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b))
    if spread == 0:
        return None
    z = (successes_b / trials_b - successes_a / trials_a) / spread
    return 2 * (1 - NormalDist().cdf(abs(z)))
