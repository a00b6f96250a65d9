"""Intervals and tests on conversion rates, checked against published worked values."""

from __future__ import annotations

import pytest

from journeyman.orchestrator.proportions import (
    difference_interval,
    two_proportion_p_value,
    wilson,
)


def test_wilson_matches_newcombe_1998_table() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (Wilson score).
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson(15, 148) == pytest.approx((0.0624, 0.1605), abs=1e-4)
    assert wilson(0, 20) == pytest.approx((0.0, 0.1611), abs=1e-4)
    assert wilson(1, 29) == pytest.approx((0.0061, 0.1718), abs=1e-4)


def test_wilson_is_exact_at_the_ends_and_wide_without_trials() -> None:
    assert wilson(0, 10).low == 0.0
    assert wilson(10, 10).high == 1.0
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(50, 100, 0.99).high > wilson(50, 100, 0.95).high


def test_difference_interval_matches_newcombe_1998_table() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, Table II, example (a), method 10:
    # 56/70 - 48/80 = 0.2000, 95 % interval 0.0524 to 0.3339.
    found = difference_interval(48, 80, 56, 70)
    assert found == pytest.approx((0.0524, 0.3339), abs=1e-4)


def test_two_proportion_p_value() -> None:
    # 56/70 vs 48/80: Pearson's chi-square of the 2x2 table (no continuity correction) is
    # n(ad - bc)^2 / (row and column totals) = 7.0234, and with one degree of freedom
    # p = 0.00805; the pooled z-test is the same test (z^2 = chi-square).
    a, b, c, d = 56, 14, 48, 32
    chi2 = 150 * (a * d - b * c) ** 2 / (70 * 80 * 104 * 46)
    assert chi2 == pytest.approx(7.0234, abs=1e-4)
    assert two_proportion_p_value(48, 80, 56, 70) == pytest.approx(0.00805, abs=1e-5)
    assert two_proportion_p_value(5, 10, 5, 10) == pytest.approx(1.0)
    assert two_proportion_p_value(0, 10, 0, 12) is None
    assert two_proportion_p_value(0, 0, 3, 10) is None


@pytest.mark.parametrize(("successes", "trials"), [(-1, 5), (6, 5), (1, -1)])
def test_impossible_counts_are_refused(successes: int, trials: int) -> None:
    with pytest.raises(ValueError, match="successes"):
        wilson(successes, trials)
