"""Local-time scheduling: zones, weekday waits, dates and anniversaries, quiet hours, and DST.

The 2025 transitions used below, in UTC: Paris springs forward 30 March 01:00 and falls back
26 October 01:00; New York 9 March 07:00 and 2 November 06:00; Sydney (southern hemisphere)
falls back 5 April 16:00 and springs forward 4 October 16:00.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from journeyman.workflows.local_time import (
    UTC_ZONE,
    WEEKDAYS,
    Weekday,
    date_from_trait,
    next_date_instant,
    next_local_time,
    quiet_until,
    zone_for,
)

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
SYDNEY = ZoneInfo("Australia/Sydney")

WORKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")
NINE = time(9, 0)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(zone: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A wall time in ``zone`` as the UTC ``now`` the functions take (never used in a DST fold)."""
    return datetime(year, month, day, hour, minute, tzinfo=zone).astimezone(UTC)


def test_the_time_zone_database_is_installed() -> None:
    # Without it every ZoneInfo lookup fails; the `tzdata` package would supply one.
    assert {"Europe/Paris", "America/New_York", "Australia/Sydney"} <= (
        zoneinfo.available_timezones()
    )


# zone_for


def test_zone_for_takes_the_profile_zone_first() -> None:
    assert zone_for("America/New_York", "Europe/Paris").key == "America/New_York"


def test_zone_for_falls_back_past_invalid_names_to_the_journey_default() -> None:
    assert (
        zone_for("Mars/Olympus_Mons", None, "", "Europe/Paris", "America/New_York").key
        == "Europe/Paris"
    )


def test_zone_for_ignores_surrounding_whitespace() -> None:
    assert zone_for(" Europe/Paris\n").key == "Europe/Paris"


@pytest.mark.parametrize(
    "name",
    [
        None,
        "",
        "   ",
        "Mars/Olympus_Mons",
        "europe/paris",
        "America",  # a folder of zones, not a zone
        "../etc",
        "../../etc/passwd",
        "/etc/localtime",
        "Europe/../Europe/Paris",
        "Europe/Paris/",
        "zone.tab",  # a data file beside the zones
        "tzdata.zi",
        "Europe/Paris\x00",
        "A" * 65,
        "Europe/" + "A" * 60,
    ],
)
def test_zone_for_skips_an_invalid_name_and_never_raises(name: str | None) -> None:
    assert zone_for(name) is UTC_ZONE


def test_zone_for_skips_a_trait_that_is_not_text() -> None:
    trait: Any = 42  # profile traits are JSON, whatever the annotation says
    assert zone_for(trait, "Europe/Paris").key == "Europe/Paris"


def test_zone_for_defaults_to_utc() -> None:
    assert zone_for() is UTC_ZONE
    assert zone_for("Etc/GMT+5").key == "Etc/GMT+5"


# next_local_time


def test_friday_evening_waits_for_monday_morning_on_workdays() -> None:
    friday_evening = local(PARIS, 2025, 1, 10, 18)
    assert next_local_time(friday_evening, PARIS, NINE, WORKDAYS) == utc(2025, 1, 13, 8)


def test_an_earlier_time_of_day_is_today() -> None:
    assert next_local_time(local(PARIS, 2025, 1, 10, 7), PARIS, NINE) == utc(2025, 1, 10, 8)


def test_a_passed_time_of_day_is_tomorrow() -> None:
    assert next_local_time(local(PARIS, 2025, 1, 10, 10), PARIS, NINE) == utc(2025, 1, 11, 8)


def test_exactly_at_the_time_is_now_in_utc() -> None:
    now = utc(2025, 1, 10, 8)
    found = next_local_time(now, PARIS, NINE)
    assert found == now
    assert found.tzinfo is UTC


def test_a_moment_after_the_time_is_the_next_allowed_day() -> None:
    now = utc(2025, 1, 13, 8) + timedelta(microseconds=1)  # a Monday
    assert next_local_time(now, PARIS, NINE, ["mon"]) == utc(2025, 1, 20, 8)


def test_the_weekday_is_the_local_one() -> None:
    # Saturday 03:00 UTC is still Friday 22:00 in New York.
    now = utc(2025, 1, 11, 3)
    assert next_local_time(now, NEW_YORK, time(23, 0), ["fri"]) == utc(2025, 1, 11, 4)


def test_a_wall_time_stays_put_across_a_dst_change() -> None:
    saturday = local(PARIS, 2025, 3, 29, 10)
    assert next_local_time(saturday, PARIS, NINE) == utc(2025, 3, 30, 7)  # 09:00 CEST


@pytest.mark.parametrize(
    ("zone", "now", "expected"),
    [
        # 02:30 does not exist: read with the offset before the gap, it is 03:30 after it.
        (PARIS, utc(2025, 3, 30), utc(2025, 3, 30, 1, 30)),
        (NEW_YORK, utc(2025, 3, 9, 5), utc(2025, 3, 9, 7, 30)),
        (SYDNEY, utc(2025, 10, 4, 12), utc(2025, 10, 4, 16, 30)),
        # 02:30 happens twice: the first one, still on summer time.
        (PARIS, utc(2025, 10, 26), utc(2025, 10, 26, 0, 30)),
        (SYDNEY, utc(2025, 4, 5, 12), utc(2025, 4, 5, 15, 30)),
    ],
)
def test_dst_nights_at_0230(zone: ZoneInfo, now: datetime, expected: datetime) -> None:
    assert next_local_time(now, zone, time(2, 30)) == expected


def test_new_york_fall_back_takes_the_first_0130() -> None:
    assert next_local_time(utc(2025, 11, 2, 4), NEW_YORK, time(1, 30)) == utc(2025, 11, 2, 5, 30)


@pytest.mark.parametrize(
    ("zone", "at", "between_the_two", "next_day"),
    [
        (PARIS, time(2, 30), utc(2025, 10, 26, 0, 45), utc(2025, 10, 27, 1, 30)),
        (NEW_YORK, time(1, 30), utc(2025, 11, 2, 5, 45), utc(2025, 11, 3, 6, 30)),
    ],
)
def test_the_repeated_wall_time_never_fires_twice(
    zone: ZoneInfo, at: time, between_the_two: datetime, next_day: datetime
) -> None:
    # A daily send at that time already went out at the first occurrence.
    assert next_local_time(between_the_two, zone, at) == next_day


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2025, 1, 15), utc(2025, 1, 15, 22)),  # summer: 09:00 AEDT is 22:00 UTC the day before
        (utc(2025, 7, 15), utc(2025, 7, 15, 23)),  # winter: 09:00 AEST
    ],
)
def test_sydney_seasons_are_the_other_way_round(now: datetime, expected: datetime) -> None:
    assert next_local_time(now, SYDNEY, NINE) == expected


def test_no_weekdays_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one day"):
        next_local_time(utc(2025, 1, 10), PARIS, NINE, [])


def test_an_unknown_weekday_is_an_error() -> None:
    days: Any = ["mon", "funday"]
    with pytest.raises(ValueError, match="unknown weekdays \\['funday'\\]"):
        next_local_time(utc(2025, 1, 10), PARIS, NINE, days)


def test_weekdays_are_in_calendar_order() -> None:
    assert [date(2025, 1, 6 + i).weekday() for i in range(7)] == list(range(len(WEEKDAYS)))
    assert WEEKDAYS[date(2025, 1, 10).weekday()] == "fri"


def test_a_naive_now_is_an_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_local_time(datetime(2025, 1, 10, 8), PARIS, NINE)


def test_a_time_with_a_zone_is_an_error() -> None:
    with pytest.raises(ValueError, match="without tzinfo"):
        next_local_time(utc(2025, 1, 10), PARIS, time(9, 0, tzinfo=UTC))


# date_from_trait


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1964-03-02", date(1964, 3, 2)),
        (" 1964-03-02\n", date(1964, 3, 2)),
        # The date as written, not as it would be in UTC or anywhere else.
        ("2024-02-29T23:30:00Z", date(2024, 2, 29)),
        ("2024-02-29T23:30:00.123Z", date(2024, 2, 29)),
        ("2024-02-29T23:30:00-05:00", date(2024, 2, 29)),
        ("2024-03-01T00:30:00+05:30", date(2024, 3, 1)),
        ("2024-02-29 10:00", date(2024, 2, 29)),
        (date(1964, 3, 2), date(1964, 3, 2)),
        (datetime(2024, 3, 1, 0, 30, tzinfo=ZoneInfo("Asia/Kolkata")), date(2024, 3, 1)),
        (datetime(2024, 2, 29, 23, 30), date(2024, 2, 29)),
    ],
)
def test_date_from_trait_reads(value: object, expected: date) -> None:
    found = date_from_trait(value)
    assert found == expected
    assert type(found) is date


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        19640302,
        -1.5,
        "",
        "garbage",
        "19640302",
        "1964-3-2",
        "02/03/1964",
        "1964-13-02",
        "2023-02-29",
        "0000-01-01",
        "1964-W10-1",
        "1964-03-02x10:00",
        "1964-03-02T25:00",
        "1964-03-02 garbage",
        "\u0661\u0669\u0666\u0664-03-02",  # Arabic-Indic digits
        ["1964-03-02"],
        {"date": "1964-03-02"},
    ],
)
def test_date_from_trait_rejects(value: object) -> None:
    assert date_from_trait(value) is None


# next_date_instant


def test_a_date_is_at_nine_local_by_default() -> None:
    found = next_date_instant(utc(2025, 6, 1), PARIS, date(2025, 6, 15))
    assert found == utc(2025, 6, 15, 7)
    assert found is not None and found.tzinfo is UTC


def test_a_date_at_a_given_time() -> None:
    found = next_date_instant(utc(2025, 6, 1), NEW_YORK, date(2025, 6, 15), at=time(18, 30))
    assert found == utc(2025, 6, 15, 22, 30)


@pytest.mark.parametrize(
    ("zone", "expiry", "expected"),
    [
        (PARIS, date(2025, 4, 3), utc(2025, 3, 27, 8)),  # 09:00 CEST -> 09:00 CET
        (NEW_YORK, date(2025, 3, 12), utc(2025, 3, 5, 14)),  # 09:00 EDT -> 09:00 EST
    ],
)
def test_a_week_before_an_expiry_across_dst_keeps_nine_local(
    zone: ZoneInfo, expiry: date, expected: datetime
) -> None:
    found = next_date_instant(utc(2025, 3, 1), zone, expiry, offset_seconds=-7 * 86400)
    assert found == expected


def test_a_day_after_across_fall_back_keeps_nine_local() -> None:
    found = next_date_instant(utc(2025, 10, 1), PARIS, date(2025, 10, 25), offset_seconds=86400)
    assert found == utc(2025, 10, 26, 8)


def test_an_offset_in_hours_is_an_absolute_duration() -> None:
    # 36 hours before 09:00 CEST on 31 March is 20:00 CET on the 29th, not 21:00.
    found = next_date_instant(utc(2025, 3, 1), PARIS, date(2025, 3, 31), offset_seconds=-36 * 3600)
    assert found == utc(2025, 3, 29, 19)


def test_an_hour_before() -> None:
    found = next_date_instant(utc(2025, 6, 1), PARIS, date(2025, 6, 15), offset_seconds=-3600)
    assert found == utc(2025, 6, 15, 6)


@pytest.mark.parametrize(
    ("now", "offset_seconds"),
    [
        (utc(2025, 6, 1), 0),  # the day before yesterday
        (utc(2025, 5, 30, 7, 0, 1), 0),  # a second after 09:00 on the day
        (utc(2025, 5, 25), -7 * 86400),  # the reminder was due a week before the date
    ],
)
def test_a_passed_date_is_none(now: datetime, offset_seconds: int) -> None:
    found = next_date_instant(now, PARIS, date(2025, 5, 30), offset_seconds=offset_seconds)
    assert found is None


def test_exactly_at_the_date_is_now() -> None:
    assert next_date_instant(utc(2025, 5, 30, 7), PARIS, date(2025, 5, 30)) == utc(2025, 5, 30, 7)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2025, 1, 1), utc(2025, 3, 2, 8)),
        (utc(2025, 3, 2, 7, 59), utc(2025, 3, 2, 8)),
        (utc(2025, 3, 2, 8), utc(2025, 3, 2, 8)),
        (utc(2025, 3, 2, 8, 1), utc(2026, 3, 2, 8)),
        (utc(2025, 5, 1), utc(2026, 3, 2, 8)),
    ],
)
def test_a_birthday_is_the_next_anniversary(now: datetime, expected: datetime) -> None:
    assert next_date_instant(now, PARIS, date(1964, 3, 2), yearly=True) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2025, 1, 1), utc(2025, 2, 28, 8)),  # 2025 has no 29 February
        (utc(2025, 3, 1), utc(2026, 2, 28, 8)),
        (utc(2027, 3, 1), utc(2028, 2, 29, 8)),
        (utc(2028, 2, 28, 12), utc(2028, 2, 29, 8)),  # leap year: not the 28th
    ],
)
def test_a_leap_day_birthday(now: datetime, expected: datetime) -> None:
    assert next_date_instant(now, PARIS, date(2000, 2, 29), yearly=True) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2025, 12, 20), utc(2025, 12, 27, 8)),  # for the 2026 birthday
        (utc(2025, 12, 28), utc(2026, 12, 27, 8)),
    ],
)
def test_a_week_before_a_birthday_in_early_january(now: datetime, expected: datetime) -> None:
    found = next_date_instant(now, PARIS, date(1990, 1, 3), offset_seconds=-7 * 86400, yearly=True)
    assert found == expected


def test_days_after_a_renewal_can_fall_in_the_next_year() -> None:
    # The 2025 renewal's follow-up, not the 2026 one.
    found = next_date_instant(
        utc(2026, 1, 2), PARIS, date(2020, 12, 30), offset_seconds=5 * 86400, yearly=True
    )
    assert found == utc(2026, 1, 4, 8)


def test_an_offset_longer_than_a_year() -> None:
    # 400 days after the 2024 anniversary (1 June) is 6 July 2025.
    found = next_date_instant(
        utc(2025, 7, 1), PARIS, date(2020, 6, 1), offset_seconds=400 * 86400, yearly=True
    )
    assert found == utc(2025, 7, 6, 7)


def test_a_future_date_recurs_from_itself_not_before() -> None:
    found = next_date_instant(utc(2025, 1, 1), PARIS, date(2027, 6, 1), yearly=True)
    assert found == utc(2027, 6, 1, 7)


def test_an_instant_past_year_9999_overflows() -> None:
    with pytest.raises(OverflowError):
        next_date_instant(utc(2025, 1, 1), NEW_YORK, date(9999, 12, 31), at=time(23, 0))


def test_next_date_instant_rejects_a_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_date_instant(datetime(2025, 1, 1), PARIS, date(2025, 6, 1))


# quiet_until

EVENING, MORNING = time(21, 0), time(8, 0)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (local(PARIS, 2025, 1, 15, 20, 59), None),
        (local(PARIS, 2025, 1, 15, 21, 0), utc(2025, 1, 16, 7)),
        (local(PARIS, 2025, 1, 15, 23, 59), utc(2025, 1, 16, 7)),
        (local(PARIS, 2025, 1, 16, 0, 30), utc(2025, 1, 16, 7)),  # still the 15th in UTC
        (local(PARIS, 2025, 1, 16, 7, 59), utc(2025, 1, 16, 7)),
        (local(PARIS, 2025, 1, 16, 8, 0), None),
        (local(PARIS, 2025, 1, 16, 12, 0), None),
    ],
)
def test_quiet_hours_that_wrap_midnight(now: datetime, expected: datetime | None) -> None:
    found = quiet_until(now, PARIS, EVENING, MORNING)
    assert found == expected
    assert found is None or found.tzinfo is UTC


@pytest.mark.parametrize(
    ("hour", "minute", "expected"),
    [(11, 59, None), (12, 0, utc(2025, 1, 15, 13)), (13, 30, utc(2025, 1, 15, 13)), (14, 0, None)],
)
def test_quiet_hours_within_a_day(hour: int, minute: int, expected: datetime | None) -> None:
    now = local(PARIS, 2025, 1, 15, hour, minute)
    assert quiet_until(now, PARIS, time(12, 0), time(14, 0)) == expected


def test_equal_start_and_end_means_no_quiet_hours() -> None:
    assert quiet_until(local(PARIS, 2025, 1, 15, 21), PARIS, EVENING, EVENING) is None


@pytest.mark.parametrize(
    ("zone", "now", "expected"),
    [
        # The night the clocks go forward is an hour shorter in UTC...
        (PARIS, utc(2025, 3, 29, 21), utc(2025, 3, 30, 6)),
        (NEW_YORK, utc(2025, 3, 9, 4), utc(2025, 3, 9, 12)),
        (SYDNEY, utc(2025, 10, 4, 12), utc(2025, 10, 4, 21)),
        # ...and the night they go back an hour longer: quiet hours end at 08:00 on the wall.
        (PARIS, utc(2025, 10, 25, 20), utc(2025, 10, 26, 7)),
        (NEW_YORK, utc(2025, 11, 2, 3), utc(2025, 11, 2, 13)),
        (SYDNEY, utc(2025, 4, 5, 12), utc(2025, 4, 5, 22)),
    ],
)
def test_quiet_hours_across_a_dst_night(zone: ZoneInfo, now: datetime, expected: datetime) -> None:
    assert quiet_until(now, zone, time(22, 0), time(8, 0)) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2025, 10, 26, 0, 15), utc(2025, 10, 26, 0, 30)),  # 02:15 CEST, first time round
        (utc(2025, 10, 26, 0, 45), None),  # 02:45 CEST
        (utc(2025, 10, 26, 1, 0), utc(2025, 10, 26, 1, 30)),  # 02:00 CET: quiet again
        (utc(2025, 10, 26, 1, 15), utc(2025, 10, 26, 1, 30)),  # not a day later
        (utc(2025, 10, 26, 1, 30), None),
    ],
)
def test_quiet_hours_ending_in_the_repeated_hour_follow_the_wall_clock(
    now: datetime, expected: datetime | None
) -> None:
    assert quiet_until(now, PARIS, EVENING, time(2, 30)) == expected


def test_quiet_hours_ending_in_the_gap_end_as_late_as_next_local_time_says() -> None:
    # 01:45 CET; the clock jumps from 02:00 to 03:00, and 02:30 reads as 03:30 CEST.
    assert quiet_until(utc(2025, 3, 30, 0, 45), PARIS, EVENING, time(2, 30)) == utc(
        2025, 3, 30, 1, 30
    )


def test_quiet_hours_in_utc() -> None:
    assert quiet_until(utc(2025, 1, 15, 22), zone_for(None), EVENING, MORNING) == utc(
        2025, 1, 16, 8
    )
