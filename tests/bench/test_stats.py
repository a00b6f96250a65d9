"""Latency statistics: nearest-rank percentiles and the millisecond summary."""

from __future__ import annotations

import pytest

from bench.stats import percentile, summarize


def test_percentiles_are_values_that_were_measured() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.9) == 90
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1) == 100
    assert percentile(values, 0) == 1
    # Order does not matter, and nothing is interpolated between samples.
    assert percentile([3.0, 1.0, 2.0, 10.0], 0.5) == 2
    assert percentile([3.0, 1.0, 2.0, 10.0], 0.9) == 10


def test_p99_of_fifty_calls_is_the_slowest_one() -> None:
    # Why the report says so: with 50 samples the nearest-rank p99 is the maximum.
    values = [0.01] * 49 + [0.5]
    assert percentile(values, 0.99) == 0.5
    assert percentile(values, 0.5) == 0.01


def test_no_values_give_zero_and_a_bad_quantile_is_refused() -> None:
    assert percentile([], 0.5) == 0.0
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentile([1.0], 99)


def test_summary_is_in_milliseconds_rounded_to_a_tenth() -> None:
    summary = summarize([0.0101, 0.0202, 0.0303, 0.0404, 1.23456])
    assert summary.count == 5
    assert summary.p50_ms == 30.3
    assert summary.p90_ms == 1234.6
    assert summary.max_ms == 1234.6
    assert summary.as_dict() == {
        "count": 5,
        "p50_ms": 30.3,
        "p90_ms": 1234.6,
        "p99_ms": 1234.6,
        "max_ms": 1234.6,
    }
