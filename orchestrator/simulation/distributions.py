"""Values a scenario draws at random: a constant, a choice, a range, and delays.

How a value is written in a scenario file:

- a plain value is a constant: ``country: FR``;
- a list is a uniform choice: ``timezone: [Europe/Paris, America/New_York]``;
- a mapping of values to weights is a weighted choice: ``gender: {female: 0.6, male: 0.4}``
  (weights are relative; ``null`` is a value like any other);
- ``{between: [low, high]}`` is uniform in a range, both ends included: whole numbers give
  whole numbers, decimals give decimals (two places), quoted dates (``"1960-01-01"``) give dates.

A delay is a duration (``2h``) or ``{between: [1h, 3d]}``, drawn in whole seconds. Parsing raises
``ValueError`` with a message for the scenario's author; drawing is pure given the ``Random``.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from dataclasses import dataclass
from datetime import date
from typing import Any

from journeyman.orchestrator.language import DurationError, parse_duration

Scalar = str | int | float | bool | None

# Decimals drawn from a range are rounded so reports and profiles stay readable.
DECIMALS = 2


@dataclass(frozen=True)
class Constant:
    value: Scalar

    def draw(self, rng: random.Random) -> Scalar:
        return self.value


@dataclass(frozen=True)
class Choice:
    values: tuple[Scalar, ...]
    cumulative: tuple[float, ...]  # running totals of the weights, for bisect

    def draw(self, rng: random.Random) -> Scalar:
        roll = rng.random() * self.cumulative[-1]
        return self.values[bisect.bisect_right(self.cumulative, roll)]


@dataclass(frozen=True)
class Between:
    low: int | float | date
    high: int | float | date

    def draw(self, rng: random.Random) -> Scalar:
        if isinstance(self.low, date) and isinstance(self.high, date):
            day = rng.randint(self.low.toordinal(), self.high.toordinal())
            return date.fromordinal(day).isoformat()
        if isinstance(self.low, int) and isinstance(self.high, int):
            return rng.randint(self.low, self.high)
        assert not isinstance(self.low, date) and not isinstance(self.high, date)
        return round(rng.uniform(self.low, self.high), DECIMALS)


Distribution = Constant | Choice | Between


@dataclass(frozen=True)
class Delay:
    """A reaction delay: ``low`` to ``high`` seconds, uniform (equal for a fixed delay)."""

    low: int
    high: int

    def draw(self, rng: random.Random) -> int:
        return self.low if self.low == self.high else rng.randint(self.low, self.high)


NO_DELAY = Delay(0, 0)


def parse_value(raw: object) -> Distribution:
    """A value as written in a scenario, or ``ValueError`` saying what is expected."""
    if isinstance(raw, list):
        if not raw:
            raise ValueError("a choice needs at least one value")
        values = tuple(_scalar(item) for item in raw)
        return Choice(values, tuple(float(n) for n in range(1, len(values) + 1)))
    if isinstance(raw, dict):
        if set(raw) == {"between"}:
            return _between(raw["between"])
        return _weighted(raw)
    return Constant(_scalar(raw))


def parse_delay(raw: object) -> Delay:
    """A delay as written in a scenario, or ``ValueError``."""
    if isinstance(raw, dict):
        ends = raw.get("between") if set(raw) == {"between"} else None
        if not isinstance(ends, list) or len(ends) != 2:
            raise ValueError("a delay is a duration like 2h, or {between: [1h, 3d]}")
        low, high = (_duration(end) for end in ends)
        if low > high:
            raise ValueError(f"the range is backwards: {ends[0]} is more than {ends[1]}")
        return Delay(low, high)
    seconds = _duration(raw)
    return Delay(seconds, seconds)


def _duration(raw: object) -> int:
    try:
        return parse_duration(raw)
    except DurationError as exc:
        raise ValueError(str(exc)) from None


def _scalar(raw: object) -> Scalar:
    if raw is None or isinstance(raw, str | bool | int):
        return raw
    if isinstance(raw, float) and math.isfinite(raw):
        return raw
    if isinstance(raw, date):
        # YAML reads unquoted dates as dates; profiles and events hold them as ISO text.
        return raw.isoformat()
    if isinstance(raw, list | dict):
        raise ValueError("a choice holds single values, not lists or mappings")
    raise ValueError(f"expected a string, number, boolean or null, got {raw!r}")


def _weighted(raw: dict[object, object]) -> Choice:
    if not raw:
        raise ValueError("a weighted choice needs at least one value")
    weights: list[float] = []
    for value, weight in raw.items():
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or weight < 0
        ):
            raise ValueError(
                f"a mapping is a weighted choice like {{female: 0.6, male: 0.4}}, or"
                f" {{between: [low, high]}}; the weight of {value!r} is {weight!r}, not a"
                " number of 0 or more"
            )
        weights.append(float(weight))
    if sum(weights) <= 0:
        raise ValueError("at least one weight must be more than zero")
    values = tuple(_scalar(value) for value in raw)
    return Choice(values, tuple(itertools.accumulate(weights)))


def _between(ends: object) -> Between:
    if not isinstance(ends, list) or len(ends) != 2:
        raise ValueError("between takes two ends: {between: [18, 75]}")
    low, high = ends
    if all(isinstance(end, date) or _is_iso_date(end) for end in ends):
        return _ordered(_as_date(low), _as_date(high))
    if _is_number(low) and _is_number(high):
        return _ordered(low, high)
    raise ValueError(f"between takes two numbers or two dates, got {low!r} and {high!r}")


def _ordered(low: Any, high: Any) -> Between:
    if low > high:
        raise ValueError(f"the range is backwards: {low} is more than {high}")
    return Between(low, high)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_iso_date(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _as_date(value: object) -> date:
    if isinstance(value, date):
        return value
    assert isinstance(value, str)
    return date.fromisoformat(value)
