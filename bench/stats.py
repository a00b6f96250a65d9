"""Latency summaries: nearest-rank percentiles, so every reported figure is a measured value."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) by nearest rank; 0 for no values.

    Nearest rank never interpolates: the p99 of 300 samples is the third-largest sample,
    something that really happened, and the max is ``percentile(values, 1)``.
    """
    if not 0 <= q <= 1:
        raise ValueError(f"a quantile is between 0 and 1, not {q}")
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[rank]


@dataclass(frozen=True)
class Summary:
    """Count, p50, p90, p99 and max of a set of durations, in milliseconds."""

    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def summarize(seconds: Sequence[float]) -> Summary:
    """Durations given in seconds, summarised in milliseconds (rounded to 0.1 ms)."""

    def ms(q: float) -> float:
        return round(percentile(seconds, q) * 1000, 1)

    return Summary(
        count=len(seconds), p50_ms=ms(0.5), p90_ms=ms(0.9), p99_ms=ms(0.99), max_ms=ms(1)
    )
