"""Duration parsing: the accepted forms, the rejected ones, and the round trip through text."""

from __future__ import annotations

import pytest

from journeyman.orchestrator.language import DurationError, format_duration, parse_duration
from journeyman.orchestrator.language.durations import MAX_SECONDS


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0),
        (45, 45),
        ("0s", 0),
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("3d", 259200),
        ("1w", 604800),
        ("1d12h", 129600),
        ("1w2d3h4m5s", 604800 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5),
        ("  2h ", 7200),
        ("3650d", MAX_SECONDS),
    ],
)
def test_parses(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "text like 90s, 15m, 2h, 3d, 1w or 1d12h, got ''"),
        ("3 days", "got '3 days'"),
        ("2H", "got '2H'"),  # uppercase would make "M" ambiguous with months
        ("12h1d", "got '12h1d'"),  # units largest first
        ("1d1d", "got '1d1d'"),
        ("90", "got '90'"),  # bare numbers are written as YAML integers, not text
        ("1.5h", "got '1.5h'"),
        (1.5, "got 1.5"),
        (True, "got True"),  # YAML reads yes/no/on/off as booleans
        (None, "got None"),
        ([1], "got [1]"),
        (-1, "must not be negative, got -1"),
        ("3651d", "must be at most 3650d"),
        (MAX_SECONDS + 1, "must be at most 3650d"),
    ],
)
def test_rejects(value: object, message: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(value)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59, "59s"), (60, "1m"), (129600, "1d12h"), (694861, "1w1d1h1m1s")],
)
def test_format_round_trips(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
