"""Cron expressions: parsing errors, firing times, day-field rules, time zones and DST."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from journeyman.orchestrator.scheduling import Cron, CronError, due_times
from journeyman.workflows.plan import Schedule

PARIS = ZoneInfo("Europe/Paris")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[arg-type,misc]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "5 fields"),
        ("61 * * * *", "minute: 61 is outside 0-59"),
        ("* 24 * * *", "hour: 24 is outside 0-23"),
        ("* * 0 * *", "day of month: 0 is outside 1-31"),
        ("* * * foo * ", "month: 'foo' is not a number"),
        ("* * * * 8", "day of week: 8 is outside 0-7"),
        ("*/0 * * * *", "minute: a step must be at least 1"),
        ("5-1 * * * *", "minute: range 5-1 goes backwards"),
        ("1,,2 * * * *", "minute: cannot read ''"),
    ],
)
def test_bad_expressions_say_which_field(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        Cron.parse(expression)


def test_every_monday_at_nine_in_paris() -> None:
    cron = Cron.parse("0 9 * * mon")
    # Wednesday 2026-11-25 12:00 UTC -> Monday 2026-11-30 09:00 Paris (08:00 UTC, winter).
    assert cron.next_after(utc(2026, 11, 25, 12), PARIS) == utc(2026, 11, 30, 8)
    # In summer Paris is UTC+2.
    assert cron.next_after(utc(2026, 6, 3), PARIS) == utc(2026, 6, 8, 7)


def test_steps_ranges_lists_and_names() -> None:
    cron = Cron.parse("*/15 8-10 * jan,jul 1-5")
    assert cron.minutes == {0, 15, 30, 45}
    assert cron.hours == {8, 9, 10}
    assert cron.months == {1, 7}
    assert cron.weekdays == {1, 2, 3, 4, 5}
    assert Cron.parse("0 0 * * 7").weekdays == {0}  # Sunday is 0 or 7


def test_restricted_day_fields_match_either() -> None:
    cron = Cron.parse("0 12 1 * fri")  # the 1st of the month, or any Friday
    tz = ZoneInfo("UTC")
    assert cron.next_after(utc(2026, 11, 25), tz) == utc(2026, 11, 27, 12)  # a Friday
    assert cron.next_after(utc(2026, 11, 28), tz) == utc(2026, 12, 1, 12)  # the 1st


def test_leap_day_is_found_years_ahead() -> None:
    assert Cron.parse("0 0 29 2 *").next_after(utc(2026, 3, 1), ZoneInfo("UTC")) == utc(2028, 2, 29)


def test_a_date_that_never_comes_gives_none() -> None:
    assert Cron.parse("0 0 31 2 *").next_after(utc(2026, 1, 1), ZoneInfo("UTC")) is None


def test_due_times_gives_only_the_latest_missed_firing() -> None:
    schedule = Schedule(cron="0 9 * * *", timezone="UTC")
    since, now = utc(2026, 11, 20, 10), utc(2026, 11, 25, 10)
    assert due_times(schedule, since, now) == utc(2026, 11, 25, 9)
    assert due_times(schedule, utc(2026, 11, 25, 9), now) is None
    once = Schedule(at=utc(2026, 11, 24, 12))
    assert due_times(once, since, now) == utc(2026, 11, 24, 12)
    assert due_times(once, utc(2026, 11, 24, 12), now) is None
